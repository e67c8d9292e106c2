/*
 * The one transport: TCP over IPv4 or IPv6, or a unix socket (LMTP), with
 * optional GnuTLS on top.
 * The socket is non-blocking from the start; every wait goes through poll()
 * with the stream's timeout, so a silent server can never hang pullmail.
 * This is the only file that includes GnuTLS headers.
 *
 * Threads: a stream belongs to one thread at a time.  transport_init runs
 * once before threads start.  Certificate credentials (the trust anchors
 * and their parsed form, several hundred KB with the whole system store)
 * are shared by every stream that trusts the same anchors: struct
 * tls_cred entries in creds, made, counted and freed under creds_lock.
 * GnuTLS only reads a credentials structure once it is set up, so many
 * sessions in many threads may use one at once; nothing changes it after
 * cred_get returns it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "log.h"
#include "transport.h"
#include "trust.h"
#include "util.h"

#define STREAM_DEFAULT_TIMEOUT	60000	/* ms */
#define STREAM_BUF_INITIAL	4096	/* grows for long lines; an idle
					 * stream shrinks back to it */
#define STREAM_BYE_TIMEOUT	1000	/* ms, for close_notify */
/* What one recv() under TLS asks for.  GnuTLS pulls a record's 5-byte
 * header, then its body: two system calls a record, and servers send
 * records of a few kB (Dovecot's are 4 kB or less).  Reading ahead takes
 * whatever the socket holds in one call; the buffer exists only while it
 * holds bytes, so an idle connection keeps none. */
#define TLS_READ_AHEAD		(64 * 1024)
#define STREAM_ERRS_MAX		512	/* connect reasons kept, bytes */

/* TLS 1.2 and 1.3 only; everything older is refused. */
#define STREAM_PRIORITY	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#define SHA256_LEN	32

/*
 * Certificate credentials for one set of trust anchors: ca_file's, plus
 * the whole system store (whole) or the system anchors trust_select chose
 * for a peer (anchors, PEM).  Shared by the streams using them (refs);
 * freed when the last one lets go.
 */
struct tls_cred {
	struct tls_cred	*next;
	unsigned	 refs;
	char		*ca_file;	/* or NULL */
	int		 whole;		/* the whole system store */
	char		*anchors;	/* chosen system anchors, or NULL */
	gnutls_certificate_credentials_t cred;
};

static pthread_mutex_t creds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cred *creds;

struct stream {
	int		 fd;
	char		*name;		/* "host:port", "[v6]:port" or the
					 * socket's path */
	char		*host;		/* as given to stream_connect (the
					 * path for a unix socket) */
	int		 timeout_ms;

	gnutls_session_t tls;		/* NULL until stream_starttls */
	unsigned char	*ra;		/* TLS bytes read ahead (tls_pull),
					 * NULL when none */
	size_t		 ra_pos, ra_len;
	struct tls_cred	*cred;		/* shared (see cred_get) */
	int		 tls_ok;	/* handshake done and peer verified */
	int		 broken;	/* a failed handshake: no more I/O */

	char		*buf;		/* bytes read but not yet consumed */
	size_t		 cap;
	size_t		 start;		/* first unconsumed byte */
	size_t		 end;		/* one past the last byte read */
	size_t		 scanned;	/* bytes after start known to hold
					 * no LF */
};

static int transport_initialised;

/* Readable: every wait for the network ends at once (the daemon's
 * shutdown after its grace time).  Set once, before threads start. */
static int abort_fd = -1;

void
transport_set_abort_fd(int fd)
{
	abort_fd = fd;
}

int
transport_abort_fd(void)
{
	return abort_fd;
}

int
transport_aborted(void)
{
	struct pollfd pfd;

	if (abort_fd < 0)
		return 0;
	pfd.fd = abort_fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) > 0;
}

/* Start GnuTLS once for the process. */
int
transport_init(char **err)
{
	int r;

	if (transport_initialised)
		return PM_OK;
	r = gnutls_global_init();
	if (r < 0)
		return errf(err, PM_EINTERNAL, "TLS: cannot initialise GnuTLS: %s",
		    gnutls_strerror(r));
	transport_initialised = 1;
	return PM_OK;
}

/* Release what transport_init set up. */
void
transport_deinit(void)
{
	if (!transport_initialised)
		return;
	gnutls_global_deinit();
	transport_initialised = 0;
}

/* 1 when name is a literal IPv4 or IPv6 address. */
static int
is_ip_literal(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1;
}

/*
 * Wait until fd is ready for events or timeout_ms has passed.  Returns 1
 * when ready, 0 on timeout, -1 with errno on error.  POLLHUP and POLLERR
 * count as ready: the following read or write reports what happened.
 */
static int
wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd	 pfd[2];
	int64_t		 deadline, left;
	int		 n, afd = abort_fd;

	deadline = mono_ms() + timeout_ms;
	for (;;) {
		left = deadline - mono_ms();
		if (left < 0)
			left = 0;
		pfd[0].fd = fd;
		pfd[0].events = events;
		pfd[0].revents = 0;
		pfd[1].fd = afd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		n = poll(pfd, afd >= 0 ? 2 : 1, (int)left);
		if (n > 0 && afd >= 0 && pfd[1].revents != 0) {
			errno = ECANCELED;
			return -1;
		}
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Format "host:port", bracketing IPv6 literals. */
static char *
format_name(const char *host, unsigned port)
{
	if (strchr(host, ':') != NULL)
		return xasprintf("[%s]:%u", host, port);
	return xasprintf("%s:%u", host, port);
}

/* Append one "addr: reason" to the list of connect failures; just the
 * reason when the address is the host as given (the name says it). */
static void
add_reason(char *list, const struct addrinfo *ai, const char *host,
    const char *reason)
{
	char	 addr[INET6_ADDRSTRLEN];
	size_t	 len = strlen(list);

	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL,
	    0, NI_NUMERICHOST) != 0)
		snprintf(addr, sizeof addr, "?");
	if (strcmp(addr, host) == 0)
		snprintf(list + len, STREAM_ERRS_MAX - len, "%s%s",
		    len == 0 ? "" : "; ", reason);
	else
		snprintf(list + len, STREAM_ERRS_MAX - len, "%s%s: %s",
		    len == 0 ? "" : "; ", addr, reason);
}

/*
 * Connect one socket to one address within timeout_ms.  Returns the
 * non-blocking socket, or -1 with a reason added to reasons.
 */
static int
connect_one(const struct addrinfo *ai, const char *host, int timeout_ms,
    char *reasons)
{
	socklen_t	 len;
	int		 fd, r, soerr, one = 1;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		add_reason(reasons, ai, host, pm_strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		goto done;
	if (errno != EINPROGRESS && errno != EINTR) {
		add_reason(reasons, ai, host, pm_strerror(errno));
		close(fd);
		return -1;
	}
	r = wait_fd(fd, POLLOUT, timeout_ms);
	if (r <= 0) {
		if (r == 0)
			add_reason(reasons, ai, host, "connection timed out");
		else
			add_reason(reasons, ai, host, pm_strerror(errno));
		close(fd);
		return -1;
	}
	len = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		add_reason(reasons, ai, host, pm_strerror(soerr));
		close(fd);
		return -1;
	}
done:
	/* Commands are short and interactive: do not let Nagle delay them. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* A stream on the connected socket fd; takes name (malloc'd). */
static struct stream *
stream_new(int fd, char *name, const char *host, int timeout_ms)
{
	struct stream	*s;

	s = xcalloc(1, sizeof *s);
	s->fd = fd;
	s->name = name;
	s->host = xstrdup(host);
	s->timeout_ms = timeout_ms;
	s->cap = STREAM_BUF_INITIAL;
	s->buf = xmalloc(s->cap);
	return s;
}

/* A time span as said in a message. */
struct duration_text {
	char	text[32];
};

/* A timeout for a message: "N seconds" when whole, else "N ms". */
static struct duration_text
duration(int ms)
{
	struct duration_text d;

	if (ms % 1000 == 0)
		snprintf(d.text, sizeof d.text, "%d seconds", ms / 1000);
	else
		snprintf(d.text, sizeof d.text, "%d ms", ms);
	return d;
}

/* Connect to host:port, trying every address in the order getaddrinfo()
 * gives them; timeout_ms <= 0 means the default of 60 s. */
int
stream_connect(const char *host, unsigned port, int timeout_ms,
    struct stream **s_r, char **err)
{
	struct addrinfo	 hints, *res, *ai;
	char		 service[16], reasons[STREAM_ERRS_MAX];
	char		*name;
	int		 fd = -1, r;

	*s_r = NULL;
	if (timeout_ms <= 0)
		timeout_ms = STREAM_DEFAULT_TIMEOUT;
	if (port == 0 || port > 65535)
		return errf(err, PM_ECONFIG, "%s: invalid port %u", host, port);
	name = format_name(host, port);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(service, sizeof service, "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		errf(err, PM_ETEMP, "%s: cannot resolve %s: %s", name, host,
		    r == EAI_SYSTEM ? pm_strerror(errno) : gai_strerror(r));
		free(name);
		return PM_ETEMP;
	}
	reasons[0] = '\0';
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = connect_one(ai, host, timeout_ms, reasons);
	freeaddrinfo(res);
	if (fd == -1) {
		errf(err, PM_ETEMP, "%s: cannot connect: %s", name,
		    reasons[0] != '\0' ? reasons : "no address");
		free(name);
		return PM_ETEMP;
	}
	log_debug("net", "connected to %s", name);
	*s_r = stream_new(fd, name, host, timeout_ms);
	return PM_OK;
}

/* Connect to the unix socket at path (contract in transport.h). */
int
stream_connect_unix(const char *path, int timeout_ms, struct stream **s_r,
    char **err)
{
	struct sockaddr_un sun;
	socklen_t	 len;
	int64_t		 deadline;
	int		 fd, e, w, soerr;

	*s_r = NULL;
	if (timeout_ms <= 0)
		timeout_ms = STREAM_DEFAULT_TIMEOUT;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (*path == '\0' || strlen(path) >= sizeof sun.sun_path)
		return errf(err, PM_ECONFIG, "%s: not a usable socket path "
		    "(empty, or longer than %zu bytes)", path,
		    sizeof sun.sun_path - 1);
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return errf(err, PM_ETEMP, "%s: cannot connect: socket: %s",
		    path, pm_strerror(errno));
	deadline = mono_ms() + timeout_ms;
	while (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN && mono_ms() < deadline) {
			/* The listen queue is full: try again shortly.  A
			 * wait on no descriptor still ends on abort_fd. */
			if (wait_fd(-1, 0, 50) == -1) {
				close(fd);
				return errf(err, PM_ETEMP, "%s: cannot "
				    "connect: stopped (pullmail is shutting "
				    "down)", path);
			}
			continue;
		}
		if (e == EAGAIN) {
			close(fd);
			return errf(err, PM_ETEMP, "%s: cannot connect: no "
			    "connection accepted within %s", path,
			    duration(timeout_ms).text);
		}
		if (e != EINPROGRESS) {
			close(fd);
			return errf(err, PM_ETEMP, "%s: cannot connect: %s",
			    path, pm_strerror(e));
		}
		/* Not seen on Linux, allowed by POSIX: wait as for TCP. */
		w = wait_fd(fd, POLLOUT, (int)(deadline - mono_ms()));
		len = sizeof soerr;
		if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
		    &len) == -1)
			soerr = errno;
		if (w != 1 || soerr != 0) {
			close(fd);
			return errf(err, PM_ETEMP, "%s: cannot connect: %s",
			    path, w == 0 ? "timed out" : w == -1 ?
			    pm_strerror(errno) : pm_strerror(soerr));
		}
		break;
	}
	log_debug("net", "connected to %s", path);
	*s_r = stream_new(fd, xstrdup(path), path, timeout_ms);
	return PM_OK;
}

/* Push function for GnuTLS: send() with MSG_NOSIGNAL, so that writing to a
 * peer that went away is an error, never a SIGPIPE. */
static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
	struct stream	*s = ptr;
	ssize_t		 n;

	n = send(s->fd, buf, len, MSG_NOSIGNAL);
	if (n == -1)
		gnutls_transport_set_errno(s->tls, errno);
	return n;
}

/* Bytes read ahead that GnuTLS has not taken yet. */
static int
ra_pending(const struct stream *s)
{
	return s->ra_pos < s->ra_len;
}

/* Give back the read-ahead buffer. */
static void
ra_free(struct stream *s)
{
	free(s->ra);
	s->ra = NULL;
	s->ra_pos = s->ra_len = 0;
}

/* Pull function for GnuTLS: from the bytes read ahead, else one recv() of
 * up to TLS_READ_AHEAD bytes. */
static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct stream	*s = ptr;
	ssize_t		 n;
	size_t		 k;

	if (!ra_pending(s)) {
		if (len >= TLS_READ_AHEAD) {
			n = recv(s->fd, buf, len, 0);
			if (n == -1)
				gnutls_transport_set_errno(s->tls, errno);
			return n;
		}
		if (s->ra == NULL)
			s->ra = xmalloc(TLS_READ_AHEAD);
		n = recv(s->fd, s->ra, TLS_READ_AHEAD, 0);
		if (n <= 0) {
			if (n == -1)
				gnutls_transport_set_errno(s->tls, errno);
			ra_free(s);
			return n;
		}
		s->ra_pos = 0;
		s->ra_len = (size_t)n;
	}
	k = s->ra_len - s->ra_pos < len ? s->ra_len - s->ra_pos : len;
	memcpy(buf, s->ra + s->ra_pos, k);
	s->ra_pos += k;
	if (!ra_pending(s))
		ra_free(s);
	return (ssize_t)k;
}

/* Pull-timeout function for GnuTLS: wait for input up to ms. */
static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct stream	*s = ptr;
	int		 r;

	if (ra_pending(s))
		return 1;
	r = wait_fd(s->fd, POLLIN, ms == GNUTLS_INDEFINITE_TIMEOUT ?
	    s->timeout_ms : (int)ms);
	if (r == -1)
		gnutls_transport_set_errno(s->tls, errno);
	return r;
}

/* Input waiting inside the stream's TLS layers: decrypted in GnuTLS, or
 * read ahead and not yet decrypted.  The socket may have nothing then. */
static int
tls_pending(struct stream *s)
{
	return s->tls != NULL &&
	    (ra_pending(s) || gnutls_record_check_pending(s->tls) > 0);
}

/*
 * Parse a sha256 pin: 64 hex digits, colons allowed between them, an
 * optional "sha256:" prefix.  Returns 0 or -1.
 */
static int
parse_pin(const char *text, unsigned char out[SHA256_LEN])
{
	const char	*p = text;
	size_t		 n = 0;
	int		 hi = -1, v, colon = 0;

	if (strncasecmp(p, "sha256:", 7) == 0)
		p += 7;
	for (; *p != '\0'; p++) {
		/* A colon only between two complete bytes. */
		if (*p == ':' && hi == -1 && n > 0 && !colon) {
			colon = 1;
			continue;
		}
		colon = 0;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else
			return -1;
		if (hi == -1) {
			hi = v;
			continue;
		}
		if (n == SHA256_LEN)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | v);
		hi = -1;
	}
	if (n != SHA256_LEN || hi != -1 || colon)
		return -1;
	return 0;
}

/* Format a digest as colon-separated uppercase hex into out. */
static void
format_pin(const unsigned char *d, char out[SHA256_LEN * 3])
{
	size_t	i;

	for (i = 0; i < SHA256_LEN; i++)
		snprintf(out + i * 3, 4, "%02X%s", d[i],
		    i + 1 == SHA256_LEN ? "" : ":");
}

/* Both NULL or equal strings. */
static int
same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Fill a new entry's credentials with its anchors; creds_lock held. */
static int
cred_load(struct tls_cred *c, char **err)
{
	gnutls_datum_t	pem;
	int		r;

	r = gnutls_certificate_allocate_credentials(&c->cred);
	if (r < 0) {
		c->cred = NULL;
		return errf(err, PM_EINTERNAL, "TLS: %s", gnutls_strerror(r));
	}
	if (c->whole) {
		r = gnutls_certificate_set_x509_system_trust(c->cred);
		if (r < 0)
			log_debug("tls", "system trust store unavailable: %s",
			    gnutls_strerror(r));
	}
	if (c->anchors != NULL) {
		pem.data = (unsigned char *)c->anchors;
		pem.size = (unsigned)strlen(c->anchors);
		r = gnutls_certificate_set_x509_trust_mem(c->cred, &pem,
		    GNUTLS_X509_FMT_PEM);
		if (r < 0)
			log_debug("tls", "CA bundle anchors: %s",
			    gnutls_strerror(r));
	}
	if (c->ca_file != NULL) {
		r = gnutls_certificate_set_x509_trust_file(c->cred,
		    c->ca_file, GNUTLS_X509_FMT_PEM);
		if (r <= 0)
			return errf(err, PM_ECONFIG, "ca_file %s: %s",
			    c->ca_file, r == 0 ? "no certificate found" :
			    gnutls_strerror(r));
	}
	return PM_OK;
}

/* Free an entry that is in no list. */
static void
cred_free(struct tls_cred *c)
{
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	free(c->ca_file);
	free(c->anchors);
	free(c);
}

/* Release an entry from cred_get; the last user frees it. */
static void
cred_put(struct tls_cred *c)
{
	struct tls_cred **pp;

	if (c == NULL)
		return;
	pthread_mutex_lock(&creds_lock);
	if (--c->refs == 0) {
		for (pp = &creds; *pp != c; pp = &(*pp)->next)
			;
		*pp = c->next;
		cred_free(c);
	}
	pthread_mutex_unlock(&creds_lock);
}

/*
 * The shared credentials trusting ca_file (NULL or "": none), the whole
 * system store when whole, and the PEM anchors (NULL: none): an existing
 * entry with one more user, or a new one loaded now.  Errors: PM_ECONFIG
 * (ca_file unusable), PM_EINTERNAL.
 */
static int
cred_get(const char *ca_file, int whole, const char *anchors,
    struct tls_cred **c_r, char **err)
{
	struct tls_cred	*c;
	int		 r;

	if (ca_file != NULL && *ca_file == '\0')
		ca_file = NULL;
	pthread_mutex_lock(&creds_lock);
	for (c = creds; c != NULL; c = c->next)
		if (c->whole == whole && same_str(c->ca_file, ca_file) &&
		    same_str(c->anchors, anchors))
			break;
	if (c != NULL) {
		c->refs++;
		pthread_mutex_unlock(&creds_lock);
		*c_r = c;
		return PM_OK;
	}
	c = xcalloc(1, sizeof *c);
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	c->whole = whole;
	c->anchors = anchors != NULL ? xstrdup(anchors) : NULL;
	if ((r = cred_load(c, err)) != PM_OK) {
		cred_free(c);
		pthread_mutex_unlock(&creds_lock);
		return r;
	}
	c->refs = 1;
	c->next = creds;
	creds = c;
	pthread_mutex_unlock(&creds_lock);
	*c_r = c;
	return PM_OK;
}

/* The credential sets alive now (contract in transport.h). */
unsigned
transport_tls_creds(void)
{
	struct tls_cred	*c;
	unsigned	 n = 0;

	pthread_mutex_lock(&creds_lock);
	for (c = creds; c != NULL; c = c->next)
		n++;
	pthread_mutex_unlock(&creds_lock);
	return n;
}

/* Have the session verify with c instead of its credentials so far. */
static void
cred_switch(struct stream *s, struct tls_cred *c)
{
	int	r;

	r = gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
	if (r < 0) {
		log_debug("tls", "%s: %s", s->name, gnutls_strerror(r));
		cred_put(c);
		return;
	}
	cred_put(s->cred);
	s->cred = c;
}

/*
 * Trust the anchors in the CA bundle at path that can issue the peer's
 * chain (trust.h): after the handshake, before verification.  The session
 * is moved to the shared credentials holding ca_file's anchors and those;
 * to the whole system store's when the bundle cannot be read.
 */
static void
trust_system_for_peer(struct stream *s, const struct tls_opts *opts,
    const char *path, const gnutls_datum_t *certs, unsigned ncerts)
{
	struct trust_der *chain;
	struct tls_cred	 *c;
	const char	 *ca_file = opts != NULL ? opts->ca_file : NULL;
	char		 *text, *err = NULL;
	size_t		  i, count;
	int		  r;

	chain = xcalloc(ncerts, sizeof *chain);
	for (i = 0; i < ncerts; i++) {
		chain[i].data = certs[i].data;
		chain[i].len = certs[i].size;
	}
	r = trust_select(path, chain, ncerts, &text, &count);
	free(chain);
	if (r != 0) {
		log_debug("tls", "CA bundle %s: %s; loading the whole system "
		    "trust store", path, pm_strerror(errno));
		text = NULL;
	} else {
		log_debug("tls", "%s: %zu trust anchor%s from %s", s->name,
		    count, count == 1 ? "" : "s", path);
		if (text == NULL)
			return;
	}
	/* ca_file loaded once already: it cannot fail now but by a race
	 * with its editing, and then the session keeps what it has. */
	if (cred_get(ca_file, r != 0, text, &c, &err) == PM_OK)
		cred_switch(s, c);
	else {
		log_debug("tls", "%s", err);
		free(err);
	}
	free(text);
}

/* Check the leaf's validity period ourselves (see verify_peer). */
static unsigned
check_leaf_times(const gnutls_datum_t *der)
{
	gnutls_x509_crt_t	 crt;
	unsigned		 status = 0;
	time_t			 now = time(NULL);

	if (gnutls_x509_crt_init(&crt) < 0)
		return GNUTLS_CERT_INVALID;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0)
		status = GNUTLS_CERT_INVALID;
	else {
		if (gnutls_x509_crt_get_expiration_time(crt) < now)
			status |= GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED;
		if (gnutls_x509_crt_get_activation_time(crt) > now)
			status |= GNUTLS_CERT_INVALID |
			    GNUTLS_CERT_NOT_ACTIVATED;
	}
	gnutls_x509_crt_deinit(crt);
	return status;
}

/* Check the leaf's names against name ourselves (see verify_peer). */
static unsigned
check_leaf_name(const gnutls_datum_t *der, const char *name)
{
	gnutls_x509_crt_t	 crt;
	unsigned		 status = 0;

	if (gnutls_x509_crt_init(&crt) < 0)
		return GNUTLS_CERT_INVALID;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0 ||
	    !gnutls_x509_crt_check_hostname2(crt, name, 0))
		status = GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER;
	gnutls_x509_crt_deinit(crt);
	return status;
}

/* Turn a verification status into the one-line reason for the user. */
static int
verify_error(struct stream *s, const char *name, unsigned status, char **err)
{
	gnutls_datum_t	 out;
	int		 r;

	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		return errf(err, PM_ETLS, "TLS: certificate of %s is not "
		    "trusted (signer unknown); set ca_file or tls_fingerprint",
		    name);
	if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
		return errf(err, PM_ETLS, "TLS: certificate does not match "
		    "host name '%s'; check the server setting", name);
	if (status & GNUTLS_CERT_EXPIRED)
		return errf(err, PM_ETLS, "TLS: certificate of %s (or of its "
		    "issuer) has expired", name);
	if (status & GNUTLS_CERT_NOT_ACTIVATED)
		return errf(err, PM_ETLS, "TLS: certificate of %s is not yet "
		    "valid; check the system clock", name);
	if (status & GNUTLS_CERT_REVOKED)
		return errf(err, PM_ETLS, "TLS: certificate of %s has been "
		    "revoked", name);
	if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
		return errf(err, PM_ETLS, "TLS: certificate of %s uses an "
		    "insecure algorithm", name);
	if (status & GNUTLS_CERT_SIGNER_NOT_CA)
		return errf(err, PM_ETLS, "TLS: certificate of %s is signed by "
		    "a certificate that is not a CA", name);
	r = gnutls_certificate_verification_status_print(status,
	    GNUTLS_CRT_X509, &out, 0);
	if (r < 0)
		return errf(err, PM_ETLS, "TLS: certificate of %s failed "
		    "verification (status 0x%x)", name, status);
	errf(err, PM_ETLS, "TLS: certificate of %s failed verification: %s",
	    name, (const char *)out.data);
	gnutls_free(out.data);
	return PM_ETLS;
}

/*
 * Verify the peer after the handshake.
 *
 * Without a pin: the chain must verify against the trust anchors (system
 * store and ca_file) and the leaf must carry the host name.
 *
 * With a pin (the fetchmail "sslfingerprint" use case: a self-signed or
 * private-CA server): the leaf's sha256 must match, always.  When it does,
 * the one verification failure forgiven is an unknown issuer, since the pin
 * is exactly how the user chose to trust this certificate.  Everything else
 * still applies: the host name must match, and the leaf must be within its
 * validity period.  GnuTLS may stop checking a chain once the issuer is
 * missing, so in that case the name and dates are checked here as well.
 */
static int
verify_peer(struct stream *s, const struct tls_opts *opts, const char *name,
    const unsigned char *pin, const char *bundle, char **err)
{
	const gnutls_datum_t	*certs;
	unsigned char		 digest[SHA256_LEN];
	char			 hex[SHA256_LEN * 3];
	unsigned		 ncerts = 0, status = 0;
	size_t			 dlen = sizeof digest;
	int			 r;

	certs = gnutls_certificate_get_peers(s->tls, &ncerts);
	if (certs == NULL || ncerts == 0)
		return errf(err, PM_ETLS, "TLS: %s sent no certificate",
		    s->name);
	if (bundle != NULL)
		trust_system_for_peer(s, opts, bundle, certs, ncerts);
	r = gnutls_certificate_verify_peers3(s->tls, name, &status);
	if (r < 0)
		return errf(err, PM_ETLS, "TLS: cannot verify the certificate "
		    "of %s: %s", name, gnutls_strerror(r));

	if (pin != NULL) {
		r = gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], digest,
		    &dlen);
		if (r < 0 || dlen != SHA256_LEN)
			return errf(err, PM_ETLS, "TLS: cannot hash the "
			    "certificate of %s", name);
		format_pin(digest, hex);
		if (memcmp(digest, pin, SHA256_LEN) != 0)
			return errf(err, PM_ETLS, "TLS: certificate of %s does "
			    "not match tls_fingerprint; the server's is "
			    "sha256:%s", name, hex);
		if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
			status &= ~(GNUTLS_CERT_SIGNER_NOT_FOUND |
			    GNUTLS_CERT_INVALID);
			status |= check_leaf_times(&certs[0]);
			status |= check_leaf_name(&certs[0], name);
			if ((status & ~GNUTLS_CERT_INVALID) == 0)
				status = 0;
		}
		if (status == 0)
			log_debug("tls", "%s: certificate matches the pin "
			    "sha256:%s", name, hex);
	}
	if (status != 0)
		return verify_error(s, name, status, err);
	return PM_OK;
}

/* Drop the TLS session after a failure; the stream allows no more I/O. */
static void
tls_fail(struct stream *s)
{
	if (s->tls != NULL)
		gnutls_deinit(s->tls);
	cred_put(s->cred);
	ra_free(s);
	s->tls = NULL;
	s->cred = NULL;
	s->tls_ok = 0;
	s->broken = 1;
}

/* Set up credentials and the session for the handshake; the system
 * trust now unless bundle names where to pick it from later. */
static int
tls_setup(struct stream *s, const struct tls_opts *opts, const char *name,
    const char *bundle, char **err)
{
	const char	*errpos;
	int		 r;

	r = cred_get(opts != NULL ? opts->ca_file : NULL, (opts == NULL ||
	    !opts->no_system_trust) && bundle == NULL, NULL, &s->cred, err);
	if (r != PM_OK)
		return r;

	r = gnutls_init(&s->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (r < 0) {
		s->tls = NULL;
		return errf(err, PM_EINTERNAL, "TLS: %s", gnutls_strerror(r));
	}
	r = gnutls_priority_set_direct(s->tls, STREAM_PRIORITY, &errpos);
	if (r < 0)
		return errf(err, PM_EINTERNAL, "TLS: priority string at '%s': "
		    "%s", errpos, gnutls_strerror(r));
	r = gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE,
	    s->cred->cred);
	if (r < 0)
		return errf(err, PM_EINTERNAL, "TLS: %s", gnutls_strerror(r));
	/* RFC 6066: SNI carries host names only, never addresses. */
	if (!is_ip_literal(name)) {
		r = gnutls_server_name_set(s->tls, GNUTLS_NAME_DNS, name,
		    strlen(name));
		if (r < 0)
			return errf(err, PM_EINTERNAL, "TLS: server name: %s",
			    gnutls_strerror(r));
	}
	gnutls_transport_set_ptr(s->tls, s);
	gnutls_transport_set_push_function(s->tls, tls_push);
	gnutls_transport_set_pull_function(s->tls, tls_pull);
	gnutls_transport_set_pull_timeout_function(s->tls, tls_pull_timeout);
	gnutls_handshake_set_timeout(s->tls, 0);
	return PM_OK;
}

/* Run the handshake on the non-blocking socket within the timeout. */
static int
tls_handshake(struct stream *s, char **err)
{
	int64_t	deadline, left;
	int	r, w;

	deadline = mono_ms() + s->timeout_ms;
	for (;;) {
		r = gnutls_handshake(s->tls);
		if (r == 0)
			return PM_OK;
		if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) {
			if (!gnutls_error_is_fatal(r))
				continue;
			break;
		}
		left = deadline - mono_ms();
		w = left <= 0 ? 0 : wait_fd(s->fd,
		    gnutls_record_get_direction(s->tls) ? POLLOUT : POLLIN,
		    (int)left);
		if (w == 0)
			return errf(err, PM_ETEMP, "TLS handshake with %s timed "
			    "out after %s", s->name,
			    duration(s->timeout_ms).text);
		if (w == -1)
			return errf(err, PM_ETEMP, "TLS handshake with %s: %s",
			    s->name, pm_strerror(errno));
	}

	switch (r) {
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
		return errf(err, PM_ETEMP, "TLS handshake with %s failed: "
		    "connection lost (%s)", s->name, gnutls_strerror(r));
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return errf(err, PM_ETLS, "TLS handshake with %s failed: the "
		    "server sent alert '%s'", s->name,
		    gnutls_alert_get_name(gnutls_alert_get(s->tls)));
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
		return errf(err, PM_ETLS, "TLS handshake with %s failed: the "
		    "server does not offer TLS 1.2 or later", s->name);
	default:
		return errf(err, PM_ETLS, "TLS handshake with %s failed: %s",
		    s->name, gnutls_strerror(r));
	}
}

/* Start TLS on a connected stream, discarding any plain-text input. */
int
stream_starttls(struct stream *s, const struct tls_opts *opts, char **err)
{
	unsigned char	 pin[SHA256_LEN];
	const char	*name, *bundle;
	int		 r;

	if (s->broken)
		return errf(err, PM_ETLS, "TLS: connection to %s is unusable "
		    "after a failed handshake", s->name);
	if (s->tls != NULL)
		return errf(err, PM_EINTERNAL, "TLS: already active on %s",
		    s->name);
	name = s->host;
	if (opts != NULL && opts->server_name != NULL &&
	    *opts->server_name != '\0')
		name = opts->server_name;
	if (opts != NULL && opts->fingerprint != NULL &&
	    parse_pin(opts->fingerprint, pin) != 0)
		return errf(err, PM_ECONFIG, "tls_fingerprint: expected a "
		    "sha256 fingerprint (64 hex digits, colons allowed)");

	/* Bytes that arrived in clear must never be taken as TLS data. */
	if (s->end != s->start)
		log_debug("tls", "%s: discarding %zu bytes received before "
		    "the handshake", s->name, s->end - s->start);
	s->start = s->end = s->scanned = 0;

	/* The system's anchors come from the CA bundle once the chain is
	 * known: only the few it needs are parsed. */
	bundle = NULL;
	if (opts == NULL || !opts->no_system_trust)
		bundle = opts != NULL && opts->system_bundle != NULL ?
		    opts->system_bundle : trust_bundle_path();

	r = tls_setup(s, opts, name, bundle, err);
	if (r == PM_OK)
		r = tls_handshake(s, err);
	if (r == PM_OK)
		r = verify_peer(s, opts, name, opts != NULL &&
		    opts->fingerprint != NULL ? pin : NULL, bundle, err);
	if (r != PM_OK) {
		tls_fail(s);
		return r;
	}
	s->tls_ok = 1;
	log_debug("tls", "%s: %s, %s, certificate verified", s->name,
	    gnutls_protocol_get_name(gnutls_protocol_get_version(s->tls)),
	    gnutls_cipher_get_name(gnutls_cipher_get(s->tls)));
	return PM_OK;
}

/* 1 when the stream runs over a verified TLS session. */
int
stream_tls_active(const struct stream *s)
{
	return s != NULL && s->tls_ok;
}

/* The error for a stream that must not be used any more. */
static int
broken_error(struct stream *s, char **err)
{
	return errf(err, PM_ETLS, "connection to %s is unusable after a "
	    "failed TLS handshake", s->name);
}

/* Report a timeout or poll failure of wait_fd. */
static int
wait_error(struct stream *s, int w, const char *what, char **err)
{
	if (w == 0)
		return errf(err, PM_ETEMP, "%s: %s timed out after %s",
		    s->name, what, duration(s->timeout_ms).text);
	if (errno == ECANCELED)
		return errf(err, PM_ETEMP, "%s: %s: stopped (pullmail is "
		    "shutting down)", s->name, what);
	return errf(err, PM_ETEMP, "%s: %s: %s", s->name, what,
	    pm_strerror(errno));
}

/* Write all of buf to the socket or TLS session. */
int
stream_write(struct stream *s, const void *buf, size_t len, char **err)
{
	const char	*p = buf;
	ssize_t		 n;
	short		 ev;
	int		 w;

	if (s->broken)
		return broken_error(s, err);
	while (len > 0) {
		if (s->tls != NULL) {
			n = gnutls_record_send(s->tls, p, len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				ev = gnutls_record_get_direction(s->tls) ?
				    POLLOUT : POLLIN;
				if ((w = wait_fd(s->fd, ev, s->timeout_ms)) <= 0)
					return wait_error(s, w, "write", err);
				continue;
			}
			if (n < 0)
				return errf(err, PM_ETEMP, "%s: write: %s",
				    s->name, gnutls_strerror((int)n));
		} else {
			n = send(s->fd, p, len, MSG_NOSIGNAL);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)) {
				if ((w = wait_fd(s->fd, POLLOUT,
				    s->timeout_ms)) <= 0)
					return wait_error(s, w, "write", err);
				continue;
			}
			if (n == -1)
				return errf(err, PM_ETEMP, "%s: write: %s",
				    s->name, pm_strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return PM_OK;
}

/* The error for a connection the server closed. */
static int
closed_error(struct stream *s, char **err)
{
	return errf(err, PM_ETEMP, "%s: connection closed by the server",
	    s->name);
}

/* Read between 1 and len bytes from the socket or TLS session, waiting
 * at most the timeout for them. */
static int
raw_read(struct stream *s, void *buf, size_t len, size_t *got_r, char **err)
{
	ssize_t	n;
	short	ev = POLLIN;
	int	w;

	if (s->broken)
		return broken_error(s, err);
	for (;;) {
		if (s->tls != NULL) {
			/* Decrypted data may be waiting inside GnuTLS
			 * while the socket itself has nothing. */
			if (!tls_pending(s) &&
			    (w = wait_fd(s->fd, ev, s->timeout_ms)) <= 0)
				return wait_error(s, w, "read", err);
			n = gnutls_record_recv(s->tls, buf, len);
			if (n > 0)
				break;
			if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
				return closed_error(s, err);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				ev = gnutls_record_get_direction(s->tls) ?
				    POLLOUT : POLLIN;
				continue;
			}
			/* A TLS 1.2 renegotiation request: decline. */
			if (n == GNUTLS_E_REHANDSHAKE ||
			    !gnutls_error_is_fatal((int)n))
				continue;
			return errf(err, PM_ETEMP, "%s: read: %s", s->name,
			    gnutls_strerror((int)n));
		}
		if ((w = wait_fd(s->fd, POLLIN, s->timeout_ms)) <= 0)
			return wait_error(s, w, "read", err);
		n = recv(s->fd, buf, len, 0);
		if (n > 0)
			break;
		if (n == 0)
			return closed_error(s, err);
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		if (errno == ECONNRESET)
			return errf(err, PM_ETEMP, "%s: connection reset by "
			    "server", s->name);
		return errf(err, PM_ETEMP, "%s: read: %s", s->name,
		    pm_strerror(errno));
	}
	*got_r = (size_t)n;
	return PM_OK;
}

/* Read one line, stripping LF and a CR before it. */
int
stream_read_line(struct stream *s, size_t max, const char **line_r,
    size_t *len_r, char **err)
{
	char	*lf, *line;
	size_t	 avail, len, got, need;
	int	 r;

	if (max > SIZE_MAX / 4)
		max = SIZE_MAX / 4;
	/* Room for max bytes, CR and LF: more without LF is too long. */
	need = max + 2;
	for (;;) {
		avail = s->end - s->start;
		lf = memchr(s->buf + s->start + s->scanned, '\n',
		    avail - s->scanned);
		if (lf != NULL) {
			line = s->buf + s->start;
			len = (size_t)(lf - line);
			s->start += len + 1;
			s->scanned = 0;
			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (len > max)
				break;
			line[len] = '\0';
			*line_r = line;
			*len_r = len;
			return PM_OK;
		}
		s->scanned = avail;
		if (avail >= need)
			break;

		/* Make room: move the partial line to the front, grow. */
		if (s->start > 0) {
			memmove(s->buf, s->buf + s->start, avail);
			s->start = 0;
			s->end = avail;
		}
		if (s->end == s->cap) {
			s->cap = s->cap * 2 < need ? s->cap * 2 : need;
			s->buf = xrealloc(s->buf, s->cap);
		}
		r = raw_read(s, s->buf + s->end, s->cap - s->end, &got, err);
		if (r != PM_OK)
			return r;
		s->end += got;
	}
	return errf(err, PM_EPROTO, "%s: line too long (more than %zu bytes)",
	    s->name, max);
}

/* Read between 1 and len bytes, serving buffered bytes first. */
int
stream_await(struct stream *s, int timeout_ms, int wake_fd)
{
	struct pollfd pfd[2];
	long long deadline = mono_ms() + timeout_ms, left;
	int n;

	if (s->broken || s->start < s->end || tls_pending(s))
		return 1;
	/* Nothing buffered and a long wait ahead (IMAP IDLE): give back
	 * what long lines made the buffer grow to. */
	if (s->cap > STREAM_BUF_INITIAL) {
		free(s->buf);
		s->cap = STREAM_BUF_INITIAL;
		s->buf = xmalloc(s->cap);
	}
	s->start = s->end = s->scanned = 0;
	for (;;) {
		left = deadline - mono_ms();
		if (left < 0)
			left = 0;
		pfd[0].fd = s->fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		pfd[1].fd = wake_fd;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		n = poll(pfd, wake_fd >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;	/* the read that follows says why */
		if (pfd[0].revents != 0)
			return 1;
		return 0;		/* timed out or woken */
	}
}

int
stream_read(struct stream *s, void *buf, size_t len, size_t *got_r,
    char **err)
{
	size_t	avail = s->end - s->start;

	*got_r = 0;
	if (len == 0)
		return PM_OK;
	if (avail > 0) {
		if (len > avail)
			len = avail;
		memcpy(buf, s->buf + s->start, len);
		s->start += len;
		s->scanned = 0;
		if (s->start == s->end)
			s->start = s->end = 0;
		*got_r = len;
		return PM_OK;
	}
	return raw_read(s, buf, len, got_r, err);
}

/* Push bytes back in front of the buffered input (a POP3 body's reader
 * returning what follows the terminator). */
void
stream_unread(struct stream *s, const void *buf, size_t len)
{
	size_t	 avail = s->end - s->start, cap;
	char	*nb;

	if (len == 0)
		return;
	if (s->start >= len)
		s->start -= len;
	else {
		cap = avail + len > s->cap ? avail + len : s->cap;
		nb = xmalloc(cap);
		if (avail > 0)
			memcpy(nb + len, s->buf + s->start, avail);
		free(s->buf);
		s->buf = nb;
		s->cap = cap;
		s->start = 0;
		s->end = len + avail;
	}
	memcpy(s->buf + s->start, buf, len);
	s->scanned = 0;
}

/* Set the inactivity timeout for reads and writes; <= 0: the default. */
void
stream_set_timeout(struct stream *s, int timeout_ms)
{
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : STREAM_DEFAULT_TIMEOUT;
}

/* Send close_notify (briefly, errors ignored), close and free. */
void
stream_close(struct stream *s)
{
	int64_t	deadline, left;
	int	r;

	if (s == NULL)
		return;
	if (s->tls != NULL && s->tls_ok) {
		deadline = mono_ms() + STREAM_BYE_TIMEOUT;
		for (;;) {
			r = gnutls_bye(s->tls, GNUTLS_SHUT_WR);
			if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
				break;
			left = deadline - mono_ms();
			if (left <= 0 || wait_fd(s->fd,
			    gnutls_record_get_direction(s->tls) ? POLLOUT :
			    POLLIN, (int)left) <= 0)
				break;
		}
	}
	if (s->tls != NULL)
		gnutls_deinit(s->tls);
	cred_put(s->cred);
	close(s->fd);
	ra_free(s);
	free(s->buf);
	free(s->host);
	free(s->name);
	free(s);
}
