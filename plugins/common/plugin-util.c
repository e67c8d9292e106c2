/* Helpers compiled into every backend plugin. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Milliseconds on the monotonic clock (contract in plugin-util.h). */
long long
pmp_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Offset of needle in s (both NUL-terminated), ignoring ASCII case, or
 * -1. */
static long
pmp_find(const char *s, const char *needle)
{
	size_t i, j, n = strlen(needle);

	for (i = 0; s[i] != '\0'; i++) {
		for (j = 0; j < n && s[i + j] != '\0'; j++) {
			char a = s[i + j], b = needle[j];

			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (char)(b - 'A' + 'a');
			if (a != b)
				break;
		}
		if (j == n)
			return (long)i;
	}
	return -1;
}

/* The server's suggested wait in the text after "Backoff Time:", in ms,
 * at most PMP_BACKOFF_MAX_MS; 0 when no number follows. */
static unsigned
pmp_backoff_ms(const char *s)
{
	uint64_t v = 0;
	int digits = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++) {
		digits = 1;
		if (v <= PMP_BACKOFF_MAX_MS)
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (!digits)
		return 0;
	while (*s == ' ' || *s == '\t')
		s++;
	/* Exchange says "milliseconds"; a bare "seconds" is taken at its
	 * word. */
	if (pmp_find(s, "second") == 0 && v <= PMP_BACKOFF_MAX_MS)
		v *= 1000;
	return v > PMP_BACKOFF_MAX_MS ? PMP_BACKOFF_MAX_MS : (unsigned)v;
}

/* Which of Exchange Online's transient refusals text is (contract in
 * plugin-util.h). */
int
pmp_transient(const char *text, unsigned *ms_r)
{
	long at;

	*ms_r = 0;
	if (text == NULL)
		return 0;
	if (pmp_find(text, "AccessTokenExpired") >= 0)
		return PM_RETRY_TOKEN_EXPIRED;
	if (pmp_find(text, "authenticated but not connected") >= 0)
		return PM_RETRY_RECONNECT;
	if (pmp_find(text, "is throttled") >= 0) {
		at = pmp_find(text, "Backoff Time:");
		if (at >= 0)
			*ms_r = pmp_backoff_ms(text + at +
			    sizeof "Backoff Time:" - 1);
		return PM_RETRY_THROTTLED;
	}
	return 0;
}
