/* Allocation, error strings and small file helpers for the core.
 * Threads: no shared state; pm_strerror's buffer is per thread. */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Report that memory ran out and abort. */
static void
oom(void)
{
	static const char msg[] = "pullmail: out of memory\n";

	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
		/* nothing more to do */
	}
	abort();
}

/* malloc that aborts instead of failing; n may be 0. */
void *
xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		oom();
	return p;
}

/* calloc that aborts instead of failing; n or m may be 0. */
void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n == 0 ? 1 : n, m == 0 ? 1 : m);

	if (p == NULL)
		oom();
	return p;
}

/* realloc that aborts instead of failing; n may be 0. */
void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n == 0 ? 1 : n);
	if (p == NULL)
		oom();
	return p;
}

/* strdup that aborts instead of failing. */
char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

/* strndup that aborts instead of failing. */
char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		oom();
	return p;
}

/* vasprintf into a malloc'd string, aborting instead of failing. */
char *
xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	return p;
}

/* asprintf into a malloc'd string, aborting instead of failing. */
char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

/* Replace *err (if err is set) with a formatted message and return status. */
int
errf(char **err, int status, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return status;
	free(*err);
	va_start(ap, fmt);
	*err = xvasprintf(fmt, ap);
	va_end(ap);
	return status;
}

/* Put "prefix: " in front of *err; no-op when there is no message. */
void
err_prefix(char **err, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *joined;

	if (err == NULL || *err == NULL)
		return;
	va_start(ap, fmt);
	prefix = xvasprintf(fmt, ap);
	va_end(ap);
	joined = xasprintf("%s: %s", prefix, *err);
	free(prefix);
	free(*err);
	*err = joined;
}

/* Write all of buf to fd despite EINTR and short writes; -1 + errno. */
int
write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The file execvp would run (contract in util.h). */
char *
exec_resolve(const char *file)
{
	const char *path, *p, *end;
	struct stat st;
	char *cand;
	size_t dlen;

	if (strchr(file, '/') != NULL)
		return xstrdup(file);
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *file != '\0'; p = end + 1) {
		end = strchr(p, ':');
		dlen = end != NULL ? (size_t)(end - p) : strlen(p);
		/* An empty entry is the current directory. */
		if (dlen == 0)
			cand = xasprintf("./%s", file);
		else
			cand = xasprintf("%.*s/%s", (int)dlen, p, file);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (end == NULL)
			break;
	}
	errno = ENOENT;
	return NULL;
}

/* The text of errno value e (contract in util.h). */
const char *
pm_strerror(int e)
{
	static _Thread_local char buf[128];

#ifdef STRERROR_R_CHAR_P
	return strerror_r(e, buf, sizeof buf);
#else
	if (strerror_r(e, buf, sizeof buf) != 0)
		snprintf(buf, sizeof buf, "error %d", e);
	return buf;
#endif
}

/* fsync the directory dir so changes to its entries are durable. */
int
fsync_dir(const char *dir)
{
	int fd, r, saved;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* Create one directory and make its entry durable: fsync the parent.
 * 0 when it exists already or was made; -1 + errno. */
static int
mkdir_durable(const char *path, unsigned mode)
{
	char *parent, *slash;
	int r;

	if (mkdir(path, mode) < 0)
		return errno == EEXIST ? 0 : -1;
	parent = xstrdup(path);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(parent, ".");
	r = fsync_dir(parent);
	free(parent);
	return r;
}

/* mkdir -p with mode, each new component made durable; -1 + errno.  The
 * deepest missing directory is tried first and its parents only when it
 * cannot be made: a path whose parents exist costs one mkdir(), not one a
 * component from the root. */
int
mkdir_p(const char *path, unsigned mode)
{
	char *parent, *slash;
	struct stat sb;
	size_t len;
	int r;

	if (stat(path, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return 0;
		errno = ENOTDIR;
		return -1;
	}
	if (mkdir_durable(path, mode) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	/* The parent: path without its last component (and the slashes
	 * around it); none left (a relative name, or "/"): give up. */
	parent = xstrdup(path);
	len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';
	slash = strrchr(parent, '/');
	while (slash != NULL && slash > parent && slash[-1] == '/')
		slash--;
	if (slash == NULL || slash == parent) {
		free(parent);
		errno = ENOENT;
		return -1;
	}
	*slash = '\0';
	r = mkdir_p(parent, mode);
	free(parent);
	if (r < 0)
		return -1;
	return mkdir_durable(path, mode);
}

/* Read the rest of fd (at most max bytes) into a malloc'd NUL-terminated
 * buffer; fd stays open. */
int
read_small_fd(int fd, size_t max, char **data_r, size_t *len_r)
{
	char *buf;
	size_t len = 0, cap = 256;
	ssize_t n;
	int saved;

	buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > max + 1) {
				free(buf);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	buf[len] = '\0';
	*data_r = buf;
	if (len_r != NULL)
		*len_r = len;
	return 0;
}

/* Read a whole small file into a malloc'd NUL-terminated buffer. */
int
read_small_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	int fd, r, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = read_small_fd(fd, max, data_r, len_r);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* This machine's host name if it is a plain DNS name, else "localhost". */
char *
local_hostname(void)
{
	char host[256];
	size_t i;

	if (gethostname(host, sizeof host) < 0)
		return xstrdup("localhost");
	host[sizeof host - 1] = '\0';
	for (i = 0; host[i] != '\0'; i++) {
		if (!((host[i] >= 'a' && host[i] <= 'z') ||
		    (host[i] >= 'A' && host[i] <= 'Z') ||
		    (host[i] >= '0' && host[i] <= '9') ||
		    host[i] == '-' || host[i] == '.'))
			return xstrdup("localhost");
	}
	return i > 0 ? xstrdup(host) : xstrdup("localhost");
}

/* 64-bit FNV-1a of s. */
uint64_t
str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* 64-bit FNV-1a of s as 16 lowercase hex digits into out. */
void
hash_hex(const char *s, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)str_hash(s));
}

/* Slot of key in m: where it is, or the empty slot where it would go
 * (m->cap > 0). */
static size_t
strmap_slot(const struct strmap *m, const char *key)
{
	size_t i = (size_t)str_hash(key) & (m->cap - 1);

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

/* The entry of key in m, or NULL. */
struct strmap_entry *
strmap_get(const struct strmap *m, const char *key)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	i = strmap_slot(m, key);
	return m->slots[i].key != NULL ? &m->slots[i] : NULL;
}

/* Double m's capacity (64 to start) and rehash its entries. */
static void
strmap_grow(struct strmap *m)
{
	struct strmap bigger;
	size_t i;

	bigger.cap = m->cap == 0 ? 64 : m->cap * 2;
	bigger.n = m->n;
	bigger.slots = xcalloc(bigger.cap, sizeof *bigger.slots);
	for (i = 0; i < m->cap; i++)
		if (m->slots[i].key != NULL)
			bigger.slots[strmap_slot(&bigger, m->slots[i].key)] =
			    m->slots[i];
	free(m->slots);
	*m = bigger;
}

/* The entry of key in m, added with a copy of key and value when absent. */
struct strmap_entry *
strmap_put(struct strmap *m, const char *key, void *value)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap)
		strmap_grow(m);
	i = strmap_slot(m, key);
	if (m->slots[i].key == NULL) {
		m->slots[i].key = xstrdup(key);
		m->slots[i].value = value;
		m->n++;
	}
	return &m->slots[i];
}

/* Free m's keys (not its values) and leave it empty. */
void
strmap_free(struct strmap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

/* Microseconds on the monotonic clock: the core's one clock reading. */
long long
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds on the monotonic clock, for deadlines. */
long long
mono_ms(void)
{
	return mono_us() / 1000;
}

/* Value of hexadecimal digit c, or -1. */
int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of the well-formed UTF-8 sequence at s (contract in util.h). */
size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	size_t len, i;
	uint32_t c, min;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp_r = c;
	return len;
}

/* Whether host (n bytes) is the local host (contract in util.h). */
int
host_is_loopback(const char *host, size_t n)
{
	struct in6_addr a6;
	struct in_addr a4;
	char buf[64];

	if (n > 0 && host[0] == '[') {
		if (n < 2 || host[n - 1] != ']')
			return 0;
		host++;
		n -= 2;
	} else if (n > 0 && host[n - 1] == '.')
		n--;	/* "localhost." */
	if (n == 0 || n >= sizeof buf)
		return 0;
	memcpy(buf, host, n);
	buf[n] = '\0';
	if (strcasecmp(buf, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, buf, &a6) == 1 &&
	    IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Whether an endpoint URL may carry credentials (contract in util.h). */
int
url_check_endpoint(const char *url, const char **why_r)
{
	const char *host, *rb;
	size_t n, h;

	if (strncasecmp(url, "https://", 8) == 0)
		return 0;
	if (strncasecmp(url, "http://", 7) != 0) {
		*why_r = "not an https:// URL";
		return -1;
	}
	host = url + 7;
	n = strcspn(host, "/?#");
	if (memchr(host, '@', n) != NULL || memchr(host, '\\', n) != NULL) {
		*why_r = "a plain http:// URL with a user@ part or a "
		    "backslash; use https://";
		return -1;
	}
	if (n > 0 && host[0] == '[')
		h = (rb = memchr(host, ']', n)) != NULL ?
		    (size_t)(rb - host) + 1 : n;
	else
		h = strcspn(host, ":/?#");
	if (h > n || (h < n && host[h] != ':') || !host_is_loopback(host, h)) {
		*why_r = "plain http:// is allowed only to this host "
		    "(127.0.0.1, [::1] or localhost): anyone on the path "
		    "could read the client secret and the tokens; use https://";
		return -1;
	}
	return 0;
}
