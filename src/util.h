/* Small helpers shared by the core: allocation that aborts on failure and
 * error strings in the `int status + char **err` convention. */
#ifndef PM_UTIL_H
#define PM_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <pullmail/host.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PM_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) PM_PRINTF(1, 0);

/* Set *err (if err is not NULL) to a formatted message and return status.
 * An existing *err is freed first. */
int errf(char **err, int status, const char *fmt, ...) PM_PRINTF(3, 4);

/* Prefix *err with "prefix: " (no-op when *err is NULL). */
void err_prefix(char **err, const char *fmt, ...) PM_PRINTF(2, 3);

/* Write all of buf to fd, retrying on EINTR and short writes; -1 + errno. */
int write_full(int fd, const void *buf, size_t len);

/*
 * The program execvp(file) would run: file itself when it holds a '/',
 * else the first executable regular file of that name in $PATH (or
 * /usr/local/bin:/usr/bin:/bin); malloc'd, or NULL (errno ENOENT) when
 * there is none.  Looked up before fork(), so that the child of a threaded
 * process calls only execve() (execvp may allocate, which a child of a
 * threaded process must not).
 */
char *exec_resolve(const char *file);

/* strerror(e) that threads may call at once: the text is in a buffer of
 * the calling thread, good until its next call. */
const char *pm_strerror(int e);

/* fsync the directory dir (making the entries created or renamed in it
 * durable); -1 + errno. */
int fsync_dir(const char *dir);

/* mkdir -p with mode for the created components, each made durable (its
 * parent fsync'd) so a new Maildir or state directory survives a crash;
 * -1 + errno. */
int mkdir_p(const char *path, unsigned mode);

/* Read a whole small file (at most max bytes) into a malloc'd NUL-terminated
 * buffer; *len_r gets its length.  -1 + errno (EFBIG when too large). */
int read_small_file(const char *path, size_t max, char **data_r,
    size_t *len_r);
/* The same from an open descriptor, read to its end (fd stays open). */
int read_small_fd(int fd, size_t max, char **data_r, size_t *len_r);

/* This machine's host name for EHLO and Received lines, or "localhost"
 * when it is empty or holds anything but letters, digits, '-' and '.'.
 * malloc'd. */
char *local_hostname(void);

/* 64-bit FNV-1a of s, as a number and as 16 lowercase hex digits into
 * out[17]. */
uint64_t str_hash(const char *s);
void hash_hex(const char *s, char out[17]);

/*
 * A map from strings to pointers (open addressing, linear probing), for
 * sets and indexes that must stay linear however many entries they hold.
 * Zero-initialised is empty.  Keys are copied and owned by the map; values
 * are the caller's.  Iterate over slots[0..cap) skipping NULL keys.
 */
struct strmap_entry {
	char *key;		/* NULL: empty slot */
	void *value;
};
struct strmap {
	struct strmap_entry *slots;
	size_t cap;		/* a power of two, or 0 */
	size_t n;		/* keys held */
};

/* key's entry, or NULL. */
struct strmap_entry *strmap_get(const struct strmap *m, const char *key);
/* key's entry, added (key copied, value stored) when absent; an existing
 * entry is returned unchanged.  The pointer is valid until the next put. */
struct strmap_entry *strmap_put(struct strmap *m, const char *key,
    void *value);
/* Free the keys and slots (not the values); m is empty afterwards. */
void strmap_free(struct strmap *m);

/* Milliseconds on the monotonic clock (for deadlines and timeouts), and
 * microseconds (systemd's MONOTONIC_USEC): the core's one clock; plugins,
 * which link nothing of the core, have pmp_mono_ms. */
long long mono_ms(void);
long long mono_us(void);

/* Value of hexadecimal digit c (either case), or -1. */
int hex_value(unsigned char c);

/* Length (1 to 4) of the well-formed UTF-8 sequence at the start of the n
 * bytes at s, its code point in *cp_r; 0 when it is cut short, overlong, a
 * surrogate, above U+10FFFF or no UTF-8 at all. */
size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp_r);

/* Whether the n bytes at host name the local host: localhost, an IPv4
 * address in 127.0.0.0/8 or the IPv6 loopback (brackets optional). */
int host_is_loopback(const char *host, size_t n);

/*
 * Whether an OAuth endpoint URL may carry credentials: https://, or plain
 * http:// to the local host only (host_is_loopback; no user@ part), since
 * anyone on the path reads plain http.  0, or -1 with a reason (a static
 * string) in *why_r.
 */
int url_check_endpoint(const char *url, const char **why_r);

#endif
