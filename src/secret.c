/* Secret strings: wiped on free, never printed. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
	secret_wipe(s->data, s->len + 1);
	free(s->data);
	free(s);
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
