/*
 * Fuzz target: SMTP and LMTP replies (read_reply() and the dialogue around
 * it in deliver-smtp.c).  The input is everything the MTA says; two
 * messages are delivered through the target's ops as the delivery stage
 * would.  The socket is real but made here: the target is linked with
 * --wrap=socket --wrap=connect, so socket() and connect() in the
 * transport (which deliver-smtp.c, compiled in below, connects through)
 * hand out one end of a socket pair whose other end already holds the
 * input (then end of file).  The first input byte picks SMTP over TCP or
 * LMTP over a unix socket.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FUZZ_PEERS 8

static const uint8_t *fuzz_in;
static size_t fuzz_len;
static int fuzz_peer[FUZZ_PEERS];
static size_t fuzz_npeers;

int __wrap_socket(int domain, int type, int protocol);
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len);

/* socket(): our end of a pair whose other end says the whole input. */
int
__wrap_socket(int domain, int type, int protocol)
{
	int sv[2];

	(void)domain;
	(void)protocol;
	if (fuzz_npeers == FUZZ_PEERS) {
		errno = EMFILE;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | (type & (SOCK_CLOEXEC |
	    SOCK_NONBLOCK)), 0, sv) < 0)
		abort();
	if (fuzz_len > 0 && write(sv[1], fuzz_in, fuzz_len) != (ssize_t)fuzz_len)
		abort();
	shutdown(sv[1], SHUT_WR);
	fuzz_peer[fuzz_npeers++] = sv[1];
	return sv[0];
}

/* connect(): the pair is connected already. */
int
__wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	(void)fd;
	(void)sa;
	(void)len;
	return 0;
}

#include "deliver-smtp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Deliver one small message; returns the last status. */
static int
one(const struct deliver_ops *ops, void *ctx, const char *uid)
{
	static const char body[] = "From: a@example.test\nSubject: x\n\n"
	    ".leading dot\nline\n.\n";
	struct deliver_info info;
	void *m = NULL;
	char *err = NULL;
	int r;

	memset(&info, 0, sizeof info);
	info.account = "fuzz";
	info.uid = uid;
	info.size = sizeof body - 1;
	info.sender = "a@example.test";
	info.recipient = "user@example.test";
	r = ops->begin(ctx, &info, &m, &err);
	if (r == PM_OK) {
		r = ops->write(ctx, m, body, sizeof body - 1, &err);
		if (r == PM_OK)
			r = ops->finish(ctx, m, &err);
		else
			ops->abort(ctx, m);
	}
	if (r != PM_OK && err == NULL)
		abort();
	free(err);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct deliver_ops *ops;
	struct deliver_config cfg;
	void *ctx;
	char *err = NULL;
	size_t i;

	/* The socket pair holds the input: keep it within its buffer. */
	if (size < 1 || size > 65536)
		return 0;
	fuzz_in = data + 1;
	fuzz_len = size - 1;
	memset(&cfg, 0, sizeof cfg);
	cfg.account = "fuzz";
	cfg.timeout = 5;
	if (data[0] & 1) {
		ops = &deliver_lmtp_ops;
		cfg.target = "/run/fuzz/lmtp";
	} else {
		ops = &deliver_smtp_ops;
		cfg.target = "127.0.0.1:25";
	}
	if (ops->open(&cfg, &ctx, &err) != PM_OK)
		abort();
	(void)one(ops, ctx, "1");
	(void)one(ops, ctx, "2");
	ops->close(ctx);
	for (i = 0; i < fuzz_npeers; i++)
		close(fuzz_peer[i]);
	fuzz_npeers = 0;
	return 0;
}
