/* The one transport: TCP (IPv4/IPv6) with GnuTLS, timeouts through poll().
 * GnuTLS headers appear only in transport.c. */
#ifndef PM_TRANSPORT_H
#define PM_TRANSPORT_H

#include <stddef.h>

struct stream;

struct tls_opts {
	const char *server_name;	/* for SNI and host name checking */
	const char *ca_file;		/* extra trust anchors (PEM), or NULL */
	const char *fingerprint;	/* sha256 pin of the leaf certificate:
					 * hex, colons optional, optional
					 * "sha256:" prefix; NULL: none */
	int no_system_trust;		/* 1: trust only ca_file (tests) */
	const char *system_bundle;	/* the system's CA bundle; NULL: the
					 * one chosen at build time (tests) */
};

/* Once fd is readable, every network wait of every stream fails at once
 * with PM_ETEMP ("shutting down").  Set before threads start; -1: none. */
void transport_set_abort_fd(int fd);
/* That fd, or -1. */
int transport_abort_fd(void);
/* 1 once that fd is readable: the network waits are being cut. */
int transport_aborted(void);

/* The sets of certificate credentials (trust anchors) alive now: streams
 * that trust the same anchors share one (for tests and status). */
unsigned transport_tls_creds(void);

/* Global init/deinit (gnutls_global_init); call once, before threads
 * start and after they end. */
int transport_init(char **err);
void transport_deinit(void);

/*
 * Connect to host:port, trying every address getaddrinfo() returns (IPv6
 * and IPv4) with timeout_ms for each.  Errors: PM_ETEMP naming the host,
 * port and reason.
 */
int stream_connect(const char *host, unsigned port, int timeout_ms,
    struct stream **s_r, char **err);

/*
 * Run the TLS handshake (TLS 1.2 minimum) and verify the peer: the system
 * trust store plus opts->ca_file, the host name, and the pin if set.
 * Anything read before the handshake is discarded.  Errors: PM_ETLS with the
 * verification reason (unknown CA, name mismatch, expired, pin mismatch),
 * PM_ETEMP for I/O failures and timeouts, PM_ECONFIG for an unusable
 * ca_file or a malformed fingerprint.  After a failure every later read or
 * write on s is refused with PM_ETLS: nothing goes out in clear.
 */
int stream_starttls(struct stream *s, const struct tls_opts *opts,
    char **err);

int stream_tls_active(const struct stream *s);

/* Write all of buf.  Errors: PM_ETEMP. */
int stream_write(struct stream *s, const void *buf, size_t len, char **err);

/*
 * Read one line ending in LF (CR before it removed too).  *line_r is
 * NUL-terminated and valid until the next read.  Lines longer than max
 * bytes: PM_EPROTO.  EOF or timeout: PM_ETEMP.
 */
int stream_read_line(struct stream *s, size_t max, const char **line_r,
    size_t *len_r, char **err);

/* Read between 1 and len bytes (buffered data first).  EOF or timeout:
 * PM_ETEMP. */
int stream_read(struct stream *s, void *buf, size_t len, size_t *got_r,
    char **err);

/*
 * Wait at most timeout_ms until s has input (buffered bytes, decrypted
 * bytes inside TLS, or the socket readable, closed or in error: 1) or
 * wake_fd (-1: none) becomes readable or the time runs out (0).  Reads
 * nothing from either.
 */
int stream_await(struct stream *s, int timeout_ms, int wake_fd);

/* Push len bytes back in front of the unread input: the next read returns
 * them first.  A line returned before is invalid afterwards. */
void stream_unread(struct stream *s, const void *buf, size_t len);

/* Set the read/write timeout for later operations. */
void stream_set_timeout(struct stream *s, int timeout_ms);

/* Close (sending TLS close_notify when possible) and free; NULL is fine. */
void stream_close(struct stream *s);

#endif
