/*
 * Trust anchors for one chain from the system's CA bundle.
 *
 * Handing GnuTLS the whole system store parses every certificate in it
 * (some 150 on Debian, 25 kB of ASN.1 nodes each): a few MB for the two or
 * three names a server's chain can use.  Here the bundle is read one PEM
 * block at a time, the block's subject name found by walking the DER, and
 * only the blocks whose subject matches a name in the chain are kept.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base64.h"
#include "trust.h"
#include "util.h"

/* No certificate in a bundle comes near this; bigger blocks are skipped. */
#define TRUST_PEM_MAX	65536

/* One name: a whole DER element (tag, length and value). */
struct der_name {
	const unsigned char *p;
	size_t len;
};

/* The bundle chosen at build time, or NULL. */
const char *
trust_bundle_path(void)
{
#ifdef PM_CA_BUNDLE
	return *PM_CA_BUNDLE != '\0' ? PM_CA_BUNDLE : NULL;
#else
	return NULL;
#endif
}

/*
 * Take the DER element at the front of *p (*len bytes left); it must carry
 * tag.  The whole element goes to *el, the cursor moves past it.  -1 when
 * the element is malformed, longer than what is left, or of another tag.
 */
static int
der_take(const unsigned char **p, size_t *len, unsigned char tag,
    struct der_name *el)
{
	const unsigned char *q = *p;
	size_t left = *len, hlen, vlen = 0, i, n;

	if (left < 2 || q[0] != tag)
		return -1;
	if (q[1] < 0x80) {
		vlen = q[1];
		hlen = 2;
	} else {
		/* Long form, at most 4 length bytes; 0x80 (indefinite) is
		 * not DER. */
		n = q[1] & 0x7f;
		if (n == 0 || n > 4 || left < 2 + n)
			return -1;
		for (i = 0; i < n; i++)
			vlen = vlen << 8 | q[2 + i];
		hlen = 2 + n;
	}
	if (vlen > left - hlen)
		return -1;
	el->p = q;
	el->len = hlen + vlen;
	*p = q + el->len;
	*len = left - el->len;
	return 0;
}

/* Step into the value of a constructed element. */
static void
der_enter(const struct der_name *el, const unsigned char **p, size_t *len)
{
	size_t hlen = el->p[1] < 0x80 ? 2 : 2 + (el->p[1] & 0x7f);

	*p = el->p + hlen;
	*len = el->len - hlen;
}

/*
 * The issuer and subject names of a DER certificate (RFC 5280 4.1:
 * tbsCertificate = [0] version, serial, signature, issuer, validity,
 * subject, ...).  -1 when it does not parse that far.
 */
static int
der_names(const unsigned char *der, size_t len, struct der_name *issuer,
    struct der_name *subject)
{
	struct der_name el;
	const unsigned char *p = der;
	size_t left = len;

	if (der_take(&p, &left, 0x30, &el) != 0)	/* Certificate */
		return -1;
	der_enter(&el, &p, &left);
	if (der_take(&p, &left, 0x30, &el) != 0)	/* tbsCertificate */
		return -1;
	der_enter(&el, &p, &left);
	if (left > 0 && p[0] == 0xa0 && der_take(&p, &left, 0xa0, &el) != 0)
		return -1;				/* version */
	if (der_take(&p, &left, 0x02, &el) != 0 ||	/* serialNumber */
	    der_take(&p, &left, 0x30, &el) != 0 ||	/* signature */
	    der_take(&p, &left, 0x30, issuer) != 0 ||
	    der_take(&p, &left, 0x30, &el) != 0 ||	/* validity */
	    der_take(&p, &left, 0x30, subject) != 0)
		return -1;
	return 0;
}

/* 1 when name is one of the n names. */
static int
name_listed(const struct der_name *name, const struct der_name *names,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i].len == name->len &&
		    memcmp(names[i].p, name->p, name->len) == 0)
			return 1;
	return 0;
}

/* A growing text buffer. */
struct text {
	char *s;
	size_t len, cap;
};

/* Append n bytes to t, keeping it NUL-terminated. */
static void
text_add(struct text *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		while (t->len + n + 1 > t->cap)
			t->cap = t->cap == 0 ? 4096 : t->cap * 2;
		t->s = xrealloc(t->s, t->cap);
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

/* 1 when the base64 of a PEM block decodes to a certificate whose subject
 * is one of the n names. */
static int
block_wanted(const struct text *b64, const struct der_name *names, size_t n)
{
	struct der_name issuer, subject;
	unsigned char *der;
	size_t len;
	int wanted;

	if (base64_decode(BASE64_STD, b64->s, b64->len, &der, &len) != 0)
		return 0;
	wanted = der_names(der, len, &issuer, &subject) == 0 &&
	    name_listed(&subject, names, n);
	free(der);
	return wanted;
}

/* The DER of one PEM certificate (see trust.h). */
int
trust_pem_der(const char *text, unsigned char **der_r, size_t *len_r)
{
	struct text b64 = { 0 };
	const char *p, *end;
	int r;

	*der_r = NULL;
	*len_r = 0;
	if ((p = strstr(text, "-----BEGIN CERTIFICATE-----")) == NULL ||
	    (end = strstr(p, "-----END CERTIFICATE-----")) == NULL)
		return -1;
	for (p += 27; p < end; p++)
		if (strchr(" \t\r\n", *p) == NULL)
			text_add(&b64, p, 1);
	r = b64.len > 0 && base64_decode(BASE64_STD, b64.s, b64.len, der_r,
	    len_r) == 0 ? 0 : -1;
	free(b64.s);
	return r;
}

/*
 * Read the bundle (open as f) for the blocks whose subject is one of the n
 * names: the PEM text in *pem_r (NULL: none), their number in *count_r.
 * -1 with errno when it cannot be read.
 */
static int
select_from(FILE *f, const struct der_name *names, size_t nnames,
    char **pem_r, size_t *count_r)
{
	struct text out = { 0 }, block = { 0 }, b64 = { 0 };
	char *line = NULL;
	size_t cap = 0, len;
	ssize_t got;
	int inside = 0, overlong = 0, failed, saved;

	*pem_r = NULL;
	*count_r = 0;
	while ((got = getline(&line, &cap, f)) > 0) {
		len = (size_t)got;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' ' ||
		    line[len - 1] == '\t'))
			len--;
		if (!inside) {
			if ((len == 27 && memcmp(line,
			    "-----BEGIN CERTIFICATE-----", 27) == 0) ||
			    (len == 32 && memcmp(line,
			    "-----BEGIN X509 CERTIFICATE-----", 32) == 0)) {
				inside = 1;
				overlong = 0;
				block.len = b64.len = 0;
				text_add(&block, line, len);
				text_add(&block, "\n", 1);
			}
			continue;
		}
		if (block.len + len > TRUST_PEM_MAX)
			overlong = 1;
		if (!overlong) {
			text_add(&block, line, len);
			text_add(&block, "\n", 1);
		}
		if (len < 8 || memcmp(line, "-----END", 8) != 0) {
			if (!overlong)
				text_add(&b64, line, len);
			continue;
		}
		inside = 0;
		if (!overlong && b64.len > 0 &&
		    block_wanted(&b64, names, nnames)) {
			text_add(&out, block.s, block.len);
			(*count_r)++;
		}
	}
	failed = ferror(f);
	saved = errno;
	free(line);
	free(block.s);
	free(b64.s);
	if (failed) {
		free(out.s);
		*count_r = 0;
		errno = saved;
		return -1;
	}
	*pem_r = out.s;
	return 0;
}

/*
 * The last selections.  Reading the bundle means decoding its 150 or so
 * certificates, a millisecond or more; a run over hundreds of mailboxes
 * on one server asks for the same chain on every connection.  An entry
 * holds while the bundle's file is the same (device, inode, size and
 * modification time, as make(1) would judge it); a bundle replaced or
 * edited is read again.
 */
#define TRUST_CACHE_MAX	8

struct trust_cached {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	unsigned char *key;	/* the names looked for, DER, in a row */
	size_t keylen;
	char *pem;		/* NULL: none */
	size_t count;
	unsigned long used;	/* for least recently used */
};

static struct trust_cached cache[TRUST_CACHE_MAX];
static unsigned long cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int
same_file(const struct trust_cached *c, const char *path,
    const struct stat *sb)
{
	return c->path != NULL && strcmp(c->path, path) == 0 &&
	    c->dev == sb->st_dev && c->ino == sb->st_ino &&
	    c->size == sb->st_size &&
	    c->mtime.tv_sec == sb->st_mtim.tv_sec &&
	    c->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

/* The cached selection for path (as sb) and key, copied out; 0 on a hit. */
static int
cache_find(const char *path, const struct stat *sb, const unsigned char *key,
    size_t keylen, char **pem_r, size_t *count_r)
{
	struct trust_cached *c;
	size_t i;
	int hit = 0;

	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < TRUST_CACHE_MAX && !hit; i++) {
		c = &cache[i];
		if (!same_file(c, path, sb) || c->keylen != keylen ||
		    (keylen > 0 && memcmp(c->key, key, keylen) != 0))
			continue;
		c->used = ++cache_clock;
		*pem_r = c->pem != NULL ? xstrdup(c->pem) : NULL;
		*count_r = c->count;
		hit = 1;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit ? 0 : -1;
}

/* Remember a selection, in place of the least recently used entry. */
static void
cache_store(const char *path, const struct stat *sb, const unsigned char *key,
    size_t keylen, const char *pem, size_t count)
{
	struct trust_cached *c = &cache[0];
	size_t i;

	pthread_mutex_lock(&cache_lock);
	for (i = 1; i < TRUST_CACHE_MAX; i++)
		if (cache[i].used < c->used)
			c = &cache[i];
	free(c->path);
	free(c->key);
	free(c->pem);
	c->path = xstrdup(path);
	c->dev = sb->st_dev;
	c->ino = sb->st_ino;
	c->size = sb->st_size;
	c->mtime = sb->st_mtim;
	c->key = xmalloc(keylen > 0 ? keylen : 1);
	if (keylen > 0)
		memcpy(c->key, key, keylen);
	c->keylen = keylen;
	c->pem = pem != NULL ? xstrdup(pem) : NULL;
	c->count = count;
	c->used = ++cache_clock;
	pthread_mutex_unlock(&cache_lock);
}

/* Select from the bundle at path the anchors for chain (see trust.h). */
int
trust_select(const char *path, const struct trust_der *chain, size_t n,
    char **pem_r, size_t *count_r)
{
	struct der_name *names, issuer, subject;
	struct text key = { 0 };
	struct stat sb;
	size_t nnames = 0, i;
	int r, saved;
	FILE *f;

	*pem_r = NULL;
	*count_r = 0;
	names = xcalloc(2 * n + 1, sizeof *names);
	for (i = 0; i < n; i++) {
		if (der_names(chain[i].data, chain[i].len, &issuer,
		    &subject) != 0)
			continue;
		names[nnames++] = issuer;
		names[nnames++] = subject;
		/* Whole DER elements: their concatenation is unambiguous. */
		text_add(&key, (const char *)issuer.p, issuer.len);
		text_add(&key, (const char *)subject.p, subject.len);
	}
	r = -1;
	if (stat(path, &sb) == 0 &&
	    cache_find(path, &sb, (const unsigned char *)key.s, key.len,
	    pem_r, count_r) == 0)
		r = 0;
	else if ((f = fopen(path, "re")) != NULL) {
		if (fstat(fileno(f), &sb) == 0 &&
		    (r = select_from(f, names, nnames, pem_r, count_r)) == 0)
			cache_store(path, &sb, (const unsigned char *)key.s,
			    key.len, *pem_r, *count_r);
		saved = errno;
		fclose(f);
		errno = saved;
	}
	free(names);
	free(key.s);
	return r;
}
