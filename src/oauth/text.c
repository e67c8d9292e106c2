/*
 * Small text tools of the token module: untrusted server text made fit
 * for a message, form encoding, wiping and sleeping.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* Wipe and free a NUL-terminated buffer that held a secret. */
void
oauth_free_wiped(char *s)
{
	if (s == NULL)
		return;
	secret_wipe(s, strlen(s));
	free(s);
}

/* Length of the well-formed UTF-8 sequence at p (not a C1 control), or
 * 0; p is NUL-terminated. */
static size_t
utf8_len(const unsigned char *p)
{
	uint32_t cp;
	size_t n = utf8_next(p, strnlen((const char *)p, 4), &cp);

	return n == 0 || (cp >= 0x80 && cp <= 0x9f) ? 0 : n;
}

/*
 * Copy untrusted server text for a message: any secret it echoes redacted
 * (before the text is cut, so that no part of one is left), the first line
 * only, control characters (C0, DEL, C1) dropped, bytes that are not UTF-8
 * shown as '?', at most max bytes ("..." appended when cut).
 */
char *
oauth_clean_text(const char *s, size_t max)
{
	char *redacted = secret_redacted(s);
	const unsigned char *p = (const unsigned char *)(redacted != NULL ?
	    redacted : s);
	size_t n = 0, i = 0, k;
	char *out;

	out = xmalloc(max + 4);
	while (p[i] != '\0' && p[i] != '\r' && p[i] != '\n') {
		if (p[i] < 0x80) {
			k = 1;
			if (p[i] < 0x20 || p[i] == 0x7f) {
				i++;
				continue;
			}
		} else if ((k = utf8_len(p + i)) == 0) {
			if (p[i] == 0xc2 && p[i + 1] >= 0x80 &&
			    p[i + 1] <= 0x9f)
				i += 2;
			else {
				if (n + 1 > max)
					break;
				out[n++] = '?';
				i++;
			}
			continue;
		}
		if (n + k > max)
			break;
		memcpy(out + n, p + i, k);
		n += k;
		i += k;
	}
	if (p[i] != '\0' && p[i] != '\r' && p[i] != '\n')
		memcpy(out + n, "...", 4);
	else {
		while (n > 0 && out[n - 1] == ' ')
			n--;
		out[n] = '\0';
	}
	free(redacted);
	return out;
}

/* application/x-www-form-urlencoded (RFC 6749 appendix B) of n bytes. */
char *
oauth_form_encode(const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *o;
	size_t i;

	out = o = xmalloc(n * 3 + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			*o++ = (char)c;
		else if (c == ' ')
			*o++ = '+';
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Sleep for ms milliseconds (signals do not cut it short). */
void
oauth_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
