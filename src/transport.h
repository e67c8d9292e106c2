/* The one transport: TCP (IPv4/IPv6) or a unix socket, with GnuTLS,
 * timeouts through poll().  GnuTLS headers appear only in transport.c.
 * Every wait (connect, read, write, handshake) lasts at most the stream's
 * timeout and ends early with PM_ETEMP once the abort fd is readable. */
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
 * and IPv4) with timeout_ms for each (<= 0: 60 s).  timeout_ms is then
 * the stream's timeout.  Errors: PM_ETEMP "HOST:PORT: cannot resolve ..."
 * or "HOST:PORT: cannot connect: REASON" (each address's reason, the
 * address left out when it is HOST itself); PM_ECONFIG for port 0 or
 * above 65535.
 */
int stream_connect(const char *host, unsigned port, int timeout_ms,
    struct stream **s_r, char **err);

/*
 * Connect to the stream socket at path (LMTP to a local MTA).  A listener
 * whose queue is full is tried again every 50 ms for up to timeout_ms
 * (<= 0: 60 s), which is then the stream's timeout.  The stream's name is
 * path.  Errors: PM_ETEMP "PATH: cannot connect: REASON" (no such file,
 * refused, "no connection accepted within N seconds", shutting down);
 * PM_ECONFIG for an empty path or one too long for a socket address.
 */
int stream_connect_unix(const char *path, int timeout_ms,
    struct stream **s_r, char **err);

/*
 * Run the TLS handshake (TLS 1.2 minimum) and verify the peer: the system
 * trust store plus opts->ca_file, the host name, and the pin if set.
 * Anything read before the handshake is discarded.  Errors: PM_ETLS with the
 * verification reason (unknown CA, name mismatch, expired, pin mismatch),
 * PM_ETEMP for I/O failures and timeouts, PM_ECONFIG for an unusable
 * ca_file or a malformed fingerprint, PM_EINTERNAL when TLS is already on
 * or GnuTLS cannot set up the session.  After a failure every later read
 * or write on s is refused with PM_ETLS: nothing goes out in clear.
 */
int stream_starttls(struct stream *s, const struct tls_opts *opts,
    char **err);

int stream_tls_active(const struct stream *s);

/* Write all of buf, waiting at most the timeout each time the peer
 * takes nothing.  Errors: PM_ETEMP ("NAME: write timed out after ...",
 * "NAME: write: REASON"), PM_ETLS after a failed handshake. */
int stream_write(struct stream *s, const void *buf, size_t len, char **err);

/*
 * Read one line ending in LF (CR before it removed too).  *line_r is
 * NUL-terminated (a NUL inside ends it early for string functions; *len_r
 * counts every byte) and valid until the next read.  Each wait for more
 * bytes lasts at most the timeout.  Errors: PM_EPROTO "NAME: line too
 * long" for more than max bytes before the LF (known as soon as max + 2
 * bytes have come without one); PM_ETEMP for a timeout ("NAME: read timed
 * out after ...") or EOF ("NAME: connection closed by the server"), the
 * unfinished line then still there for stream_read(); PM_ETLS after a
 * failed handshake.
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
