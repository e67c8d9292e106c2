/*
 * Secret strings: wiped on free, never printed, and looked for (in every
 * encoding) in text on its way to a log.
 *
 * Threads: a secret itself belongs to the thread that made it.  The
 * registry (reg_buckets, reg_size, reg_count and the reg_next/reg_prev
 * links of every registered secret) is shared by all threads and guarded
 * by reg_lock, a read-write lock: registering and freeing a secret take it
 * for writing, redacting a log line only for reading, so threads logging
 * at the same time never wait for each other.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base64.h"
#include "secret.h"
#include "util.h"

/* Zero n bytes that held a secret in a way the compiler cannot drop. */
void
secret_wipe(void *p, size_t n)
{
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
#endif
}

/* --- the registry of live secrets ---------------------------------------- */

/*
 * Every live secret of at least SECRET_REDACT_MIN bytes, hashed on its
 * first four bytes, so that text on its way to a log is checked against
 * all of them in time that grows with the text, not with the number of
 * secrets (a configuration may hold thousands of passwords).
 */
static struct pm_secret **reg_buckets;
static size_t reg_size;		/* buckets, a power of two; 0: none */
static size_t reg_count;
static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;

/* The bucket of the four bytes at p in a table of size buckets. */
static size_t
reg_bucket(const unsigned char *p, size_t size)
{
	uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;

	k *= 2654435761u;
	return (size_t)(k ^ k >> 16) & (size - 1);
}

/* Link s into a table of size buckets. */
static void
reg_link(struct pm_secret **buckets, size_t size, struct pm_secret *s)
{
	struct pm_secret **head;

	head = &buckets[reg_bucket((const unsigned char *)s->data, size)];
	s->reg_next = *head;
	if (*head != NULL)
		(*head)->reg_prev = &s->reg_next;
	s->reg_prev = head;
	*head = s;
}

/* Add s to the registry (contract in secret.h). */
void
secret_register(struct pm_secret *s)
{
	struct pm_secret **grown, *e, *next;
	size_t i, size;

	if (s == NULL || s->len < SECRET_REDACT_MIN)
		return;
	pthread_rwlock_wrlock(&reg_lock);
	if (s->reg_prev != NULL) {
		pthread_rwlock_unlock(&reg_lock);
		return;
	}
	if (reg_count >= reg_size * 2) {
		size = reg_size == 0 ? 64 : reg_size * 2;
		grown = xcalloc(size, sizeof *grown);
		for (i = 0; i < reg_size; i++) {
			for (e = reg_buckets[i]; e != NULL; e = next) {
				next = e->reg_next;
				reg_link(grown, size, e);
			}
		}
		free(reg_buckets);
		reg_buckets = grown;
		reg_size = size;
	}
	reg_link(reg_buckets, reg_size, s);
	reg_count++;
	pthread_rwlock_unlock(&reg_lock);
}

/* Take s out of the registry if it is in; the last one frees the table.
 * Called with reg_lock held for writing. */
static void
reg_unlink(struct pm_secret *s)
{
	if (s->reg_prev == NULL)
		return;
	*s->reg_prev = s->reg_next;
	if (s->reg_next != NULL)
		s->reg_next->reg_prev = s->reg_prev;
	s->reg_prev = NULL;
	s->reg_next = NULL;
	if (--reg_count == 0) {
		free(reg_buckets);
		reg_buckets = NULL;
		reg_size = 0;
	}
}

/* A new secret holding a NUL-terminated copy of len bytes of data. */
struct pm_secret *
secret_new(const void *data, size_t len)
{
	struct pm_secret *s = xmalloc(sizeof *s);

	s->data = xmalloc(len + 1);
	if (len > 0)
		memcpy(s->data, data, len);
	s->data[len] = '\0';
	s->len = len;
	s->reg_next = NULL;
	s->reg_prev = NULL;
	secret_register(s);
	return s;
}

/* A new secret holding a copy of the string str. */
struct pm_secret *
secret_from_str(const char *str)
{
	return secret_new(str, strlen(str));
}

/* A copy of secret s; NULL for NULL. */
struct pm_secret *
secret_dup(const struct pm_secret *s)
{
	return s == NULL ? NULL : secret_new(s->data, s->len);
}

/* Wipe and free a secret; NULL is fine. */
void
secret_free(struct pm_secret *s)
{
	if (s == NULL)
		return;
	if (s->len >= SECRET_REDACT_MIN) {
		pthread_rwlock_wrlock(&reg_lock);
		reg_unlink(s);
		pthread_rwlock_unlock(&reg_lock);
	}
	secret_wipe_free(s->data, s->len + 1);
	free(s);
}

/* Wipe n bytes of p and free it (contract in secret.h). */
void
secret_wipe_free(void *p, size_t n)
{
	if (p == NULL)
		return;
	secret_wipe(p, n);
	free(p);
}

/* The secret's bytes (NUL-terminated), for the few places that send them. */
const char *
secret_reveal(const struct pm_secret *s)
{
	return s->data;
}

/* The number of bytes in the secret. */
size_t
secret_len(const struct pm_secret *s)
{
	return s->len;
}

/* 1 when a and b hold the same bytes, compared without an early exit. */
int
secret_equal(const struct pm_secret *a, const struct pm_secret *b)
{
	unsigned char d = 0;
	size_t i;

	if (a->len != b->len)
		return 0;
	for (i = 0; i < a->len; i++)
		d |= (unsigned char)(a->data[i] ^ b->data[i]);
	return d == 0;
}

/* --- redaction ------------------------------------------------------------ */

/* Text decoded one way; byte i came from source bytes [from[i], to[i]). */
struct view {
	unsigned char	*b;
	size_t		*from;
	size_t		*to;
	size_t		 len;
};

/* Source byte ranges to replace. */
struct ranges {
	size_t	(*r)[2];
	size_t	 n, cap;
};

/* Remember that source bytes [start, end) hold a secret. */
static void
ranges_add(struct ranges *rs, size_t start, size_t end)
{
	if (rs->n == rs->cap) {
		rs->cap = rs->cap * 2 + 8;
		rs->r = xrealloc(rs->r, rs->cap * sizeof *rs->r);
	}
	rs->r[rs->n][0] = start;
	rs->r[rs->n][1] = end;
	rs->n++;
}

/* A view with room for n bytes. */
static void
view_alloc(struct view *v, size_t n)
{
	v->b = xmalloc(n + 1);
	v->from = xmalloc((n + 1) * sizeof *v->from);
	v->to = xmalloc((n + 1) * sizeof *v->to);
	v->len = 0;
}

/* Append byte c, decoded from source bytes [from, to). */
static void
view_put(struct view *v, unsigned char c, size_t from, size_t to)
{
	v->b[v->len] = c;
	v->from[v->len] = from;
	v->to[v->len] = to;
	v->len++;
}

static void
view_free(struct view *v)
{
	secret_wipe_free(v->b, v->len);
	free(v->from);
	free(v->to);
}

/* Mark the source of every registered secret found in v. */
static void
find_secrets(const struct view *v, struct ranges *rs)
{
	const struct pm_secret *e;
	size_t i;

	for (i = 0; reg_size > 0 && i + SECRET_REDACT_MIN <= v->len; i++) {
		for (e = reg_buckets[reg_bucket(v->b + i, reg_size)];
		    e != NULL; e = e->reg_next) {
			if (e->len <= v->len - i &&
			    memcmp(v->b + i, e->data, e->len) == 0)
				ranges_add(rs, v->from[i],
				    v->to[i + e->len - 1]);
		}
	}
}

/* The n hexadecimal digits at p as a number, or -1. */
static long
hexnum(const unsigned char *p, size_t n)
{
	long v = 0;

	while (n-- > 0) {
		if (hex_value(*p) < 0)
			return -1;
		v = v << 4 | hex_value(*p++);
	}
	return v;
}

/* The byte a backslash escape at s (n bytes left, s[0] == '\\') stands
 * for, its length in *k; -1 when it is none we know. */
static long
unescape_one(const unsigned char *s, size_t n, size_t *k)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *p;

	if (n < 2)
		return -1;
	if ((p = strchr(from, s[1])) != NULL && s[1] != '\0') {
		*k = 2;
		return (unsigned char)to[p - from];
	}
	if (s[1] == 'x' && n >= 4) {
		*k = 4;
		return hexnum(s + 2, 2);
	}
	if (s[1] == 'u' && n >= 6) {
		*k = 6;
		return hexnum(s + 2, 4);
	}
	return -1;
}

/*
 * Decode src as text carrying a secret may be encoded: %XX (either case),
 * '+' as a space when plus is set, and the escapes of JSON and of our own
 * log (\" \\ \/ \b \f \n \r \t \uXXXX as UTF-8, \xHH).  Anything else is
 * kept as it is.
 */
static void
view_unescape(const struct view *src, int plus, struct view *v)
{
	const unsigned char *s = src->b;
	unsigned char u8[3];
	size_t n = src->len, i = 0, k, m, j;
	long c;

	view_alloc(v, n);	/* \uXXXX: six bytes into at most three */
	while (i < n) {
		k = 1;
		c = s[i];
		if (s[i] == '%' && i + 3 <= n && hexnum(s + i + 1, 2) >= 0) {
			c = hexnum(s + i + 1, 2);
			k = 3;
		} else if (s[i] == '+' && plus)
			c = ' ';
		else if (s[i] == '\\' && (c = unescape_one(s + i, n - i,
		    &k)) < 0) {
			c = '\\';
			k = 1;
		}
		m = 0;
		if (c >= 0x800) {
			u8[m++] = (unsigned char)(0xe0 | c >> 12);
			u8[m++] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
		} else if (c >= 0x80 && k == 6)
			u8[m++] = (unsigned char)(0xc0 | c >> 6);
		if (m > 0)
			c = 0x80 | (c & 0x3f);
		u8[m++] = (unsigned char)c;
		for (j = 0; j < m; j++)
			view_put(v, u8[j], src->from[i], src->to[i + k - 1]);
		i += k;
	}
}

/*
 * Look for secrets in every run of at least 8 base64 characters of v,
 * decoded from each of its first four characters (the run may begin
 * before the blob does), as it is and unescaped (HTTP Basic form-encodes
 * id and secret before base64).  Every decoded byte stands for the whole
 * run with its padding, which is what a find replaces.
 */
static void
find_in_base64(const struct view *v, struct ranges *rs)
{
	struct view d, u;
	size_t i = 0, start, end, off, j;
	unsigned acc;
	int bits;

	while (i < v->len) {
		if (base64_value_any(v->b[i]) < 0) {
			i++;
			continue;
		}
		for (start = i; i < v->len &&
		    base64_value_any(v->b[i]) >= 0; i++)
			;
		for (end = i; i < v->len && v->b[i] == '='; i++)
			;
		for (off = 0; off < 4 && end - start >= off + 8; off++) {
			view_alloc(&d, end - start);
			acc = 0;
			bits = 0;
			for (j = start + off; j < end; j++) {
				acc = (acc << 6 |
				    (unsigned)base64_value_any(v->b[j])) &
				    0x3fff;
				if ((bits += 6) >= 8) {
					bits -= 8;
					view_put(&d, (unsigned char)(acc >>
					    bits), v->from[start],
					    v->to[i - 1]);
				}
			}
			find_secrets(&d, rs);
			view_unescape(&d, 1, &u);
			find_secrets(&u, rs);
			view_free(&u);
			view_free(&d);
		}
	}
}

/* Order ranges by their start. */
static int
range_cmp(const void *a, const void *b)
{
	const size_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* text (n bytes) with each group of overlapping ranges replaced by
 * "<redacted>". */
static char *
replace_ranges(const char *text, size_t n, struct ranges *rs)
{
	static const char mark[] = "<redacted>";
	size_t i, j, cur = 0, o = 0, start, end;
	char *out;

	qsort(rs->r, rs->n, sizeof *rs->r, range_cmp);
	out = xmalloc(n + rs->n * (sizeof mark - 1) + 1);
	for (i = 0; i < rs->n; i = j) {
		start = rs->r[i][0];
		end = rs->r[i][1];
		for (j = i + 1; j < rs->n && rs->r[j][0] <= end; j++) {
			if (rs->r[j][1] > end)
				end = rs->r[j][1];
		}
		memcpy(out + o, text + cur, start - cur);
		o += start - cur;
		memcpy(out + o, mark, sizeof mark - 1);
		o += sizeof mark - 1;
		cur = end;
	}
	memcpy(out + o, text + cur, n - cur);
	out[o + n - cur] = '\0';
	return out;
}

/* text with every registered secret replaced (contract in secret.h). */
char *
secret_redacted(const char *text)
{
	struct ranges rs = { NULL, 0, 0 };
	struct view raw, un;
	size_t n, i;
	char *out = NULL;
	int plus;

	if (text == NULL || (n = strlen(text)) < SECRET_REDACT_MIN)
		return NULL;
	pthread_rwlock_rdlock(&reg_lock);
	if (reg_count == 0) {
		pthread_rwlock_unlock(&reg_lock);
		return NULL;
	}
	view_alloc(&raw, n);
	for (i = 0; i < n; i++)
		view_put(&raw, (unsigned char)text[i], i, i + 1);
	find_secrets(&raw, &rs);
	find_in_base64(&raw, &rs);
	for (plus = 0; plus < 2; plus++) {
		view_unescape(&raw, plus, &un);
		find_secrets(&un, &rs);
		find_in_base64(&un, &rs);
		view_free(&un);
	}
	pthread_rwlock_unlock(&reg_lock);
	view_free(&raw);
	if (rs.n > 0)
		out = replace_ranges(text, n, &rs);
	free(rs.r);
	return out;
}

/* Redact a malloc'd string in place (contract in secret.h). */
void
secret_redact(char **text)
{
	char *out;

	if (text == NULL || (out = secret_redacted(*text)) == NULL)
		return;
	secret_wipe_free(*text, strlen(*text));
	*text = out;
}

/* Read fd into a new secret (contract in secret.h). */
int
secret_read_fd(int fd, size_t max, size_t hint, struct pm_secret **s_r)
{
	struct pm_secret *s;
	size_t len = 0, cap;
	ssize_t n;
	char *grown;

	/* One byte past the hint, to see the end without growing. */
	cap = hint >= 4096 && hint < max ? hint + 1 : 4096;
	if (cap > max + 1)
		cap = max + 1;
	s = xcalloc(1, sizeof *s);	/* not registered */
	s->data = xmalloc(cap + 1);
	s->len = cap;
	for (;;) {
		if (len == cap) {
			if (cap > max)
				break;
			cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			grown = xmalloc(cap + 1);
			memcpy(grown, s->data, len);
			secret_wipe_free(s->data, len);
			s->data = grown;
			s->len = cap;
		}
		n = read(fd, s->data + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = errno;
			secret_wipe_free(s->data, len);
			free(s);
			errno = (int)n;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		secret_wipe_free(s->data, len);
		free(s);
		errno = EFBIG;
		return -1;
	}
	s->data[len] = '\0';
	s->len = len;
	*s_r = s;
	return 0;
}
