/*
 * sd_notify without libsystemd (contract in sdnotify.h).
 *
 * Design: the protocol is one datagram per notification to the socket in
 * $NOTIFY_SOCKET; there is no reply.  Each call opens a fresh
 * SOCK_DGRAM socket, sends and closes it: a handful of system calls every
 * few seconds at most (the watchdog ping), no shared descriptor to guard
 * with a lock, and nothing left open across fork/exec of an MDA.  The
 * environment is read on every call and never modified, so threads may
 * call these functions at any time.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"
#include "util.h"

/* The address in $NOTIFY_SOCKET; 0 without one, -1 (errno) if unusable. */
static int
notify_addr(struct sockaddr_un *sun, socklen_t *len_r)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;

	if (e == NULL || *e == '\0')
		return 0;
	n = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || n >= sizeof sun->sun_path) {
		errno = EINVAL;
		return -1;
	}
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, e, n);
	if (e[0] == '@') {
		/* Abstract: a leading NUL, and the length says where the
		 * name ends (no terminating NUL). */
		sun->sun_path[0] = '\0';
		*len_r = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else
		*len_r = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    n + 1);
	return 1;
}

int
sdnotify_send(const char *msg)
{
	struct sockaddr_un sun;
	socklen_t len;
	ssize_t n;
	int fd, r, saved;

	if ((r = notify_addr(&sun, &len)) <= 0)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	do
		n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		    (struct sockaddr *)&sun, len);
	while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	return 1;
}

int
sdnotify_ready(void)
{
	return sdnotify_send("READY=1");
}

int
sdnotify_status(const char *fmt, ...)
{
	va_list ap;
	char *text, *msg, *p;
	int r;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	/* A newline would end the assignment and start another. */
	for (p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	msg = xasprintf("STATUS=%s", text);
	r = sdnotify_send(msg);
	free(msg);
	free(text);
	return r;
}

int
sdnotify_stopping(void)
{
	return sdnotify_send("STOPPING=1");
}

int
sdnotify_reloading(void)
{
	char msg[64];

	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld",
	    mono_us());
	return sdnotify_send(msg);
}

int
sdnotify_watchdog(void)
{
	return sdnotify_send("WATCHDOG=1");
}

/* A decimal number that fills all of s (no sign, no blanks); -1 if not. */
static int
parse_u64(const char *s, unsigned long long *v_r)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v_r = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

uint64_t
sdnotify_watchdog_usec(void)
{
	unsigned long long usec, pid;
	const char *p = getenv("WATCHDOG_PID");

	if (parse_u64(getenv("WATCHDOG_USEC"), &usec) < 0)
		return 0;
	if (p != NULL && *p != '\0' &&
	    (parse_u64(p, &pid) < 0 || pid != (unsigned long long)getpid()))
		return 0;
	return usec;
}
