/* Helpers compiled into every backend plugin. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin-util.h"

/* malloc that aborts instead of failing; n may be 0. */
void *
pmp_xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL)
		abort();
	return p;
}

/* Resize p to n elements of size, aborting on overflow or failure. */
void *
pmp_xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		abort();
	p = realloc(p, n * size == 0 ? 1 : n * size);
	if (p == NULL)
		abort();
	return p;
}

/* Copy n bytes of s into a new NUL-terminated string. */
char *
pmp_xstrndup(const char *s, size_t n)
{
	char *p = pmp_xmalloc(n + 1);

	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Format into a malloc'd string, aborting instead of failing. */
char *
pmp_xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

/* Replace *err (if err is set) with a formatted reason and return status. */
int
pmp_errf(char **err, int status, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (err == NULL) {
		free(s);
		return status;
	}
	free(*err);
	*err = s;
	return status;
}

/* A printable copy of server text: odd bytes as '?', cut at max with "...". */
char *
pmp_clean(const char *s, size_t len, size_t max)
{
	size_t i, n = len > max ? max : len;
	char *out = pmp_xmalloc(n + 4);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (len > max) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}
