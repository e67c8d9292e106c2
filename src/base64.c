/* Base64 in both RFC 4648 alphabets (contracts in base64.h). */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "util.h"

static const char *const b64_chars[] = {
	[BASE64_STD] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/",
	[BASE64_URL] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_",
};

/* Length of the text for len bytes, without the NUL; aborts on overflow
 * (no sane input gets near it). */
static size_t
b64_encoded_len(enum base64_alphabet a, size_t len)
{
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		abort();
	if (a == BASE64_URL)
		return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
	return (len + 2) / 3 * 4;
}

/* Encode len bytes of in into out, which has room for the text and NUL. */
static void
b64_encode_into(enum base64_alphabet a, char *out, const unsigned char *in,
    size_t len)
{
	const char *tab = b64_chars[a];
	uint32_t v;

	for (; len >= 3; in += 3, len -= 3) {
		v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 0x3f];
		*out++ = tab[(v >> 6) & 0x3f];
		*out++ = tab[v & 0x3f];
	}
	if (len > 0) {
		v = (uint32_t)in[0] << 16;
		if (len == 2)
			v |= (uint32_t)in[1] << 8;
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 0x3f];
		if (len == 2)
			*out++ = tab[(v >> 6) & 0x3f];
		if (a == BASE64_STD) {
			if (len == 1)
				*out++ = '=';
			*out++ = '=';
		}
	}
	*out = '\0';
}

/* The base64 text of len bytes of data; malloc'd. */
char *
base64_encode(enum base64_alphabet a, const void *data, size_t len)
{
	char *out = xmalloc(b64_encoded_len(a, len) + 1);

	b64_encode_into(a, out, data, len);
	return out;
}

/* BASE64_STD of secret bytes as a secret, wiping the plain copy. */
struct pm_secret *
base64_encode_secret(const void *data, size_t len)
{
	struct pm_secret *s;
	size_t n = b64_encoded_len(BASE64_STD, len);
	char *tmp = xmalloc(n + 1);

	b64_encode_into(BASE64_STD, tmp, data, len);
	s = secret_new(tmp, n);
	secret_wipe_free(tmp, n + 1);
	return s;
}

/* Value of c in either alphabet (contract in base64.h).  By ranges, not
 * a search of the alphabet: a CA bundle is some 200 kB of base64. */
int
base64_value_any(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Value of character c in alphabet a, or -1. */
static int
b64_value(enum base64_alphabet a, unsigned char c)
{
	int v = base64_value_any(c);

	if (v >= 62 && c != (unsigned char)b64_chars[a][v])
		return -1;
	return v;
}

/* Decode strictly (contract in base64.h). */
int
base64_decode(enum base64_alphabet a, const char *in, size_t inlen,
    unsigned char **out_r, size_t *outlen_r)
{
	unsigned char *out;
	size_t i, n = inlen, o = 0, size;
	uint32_t acc = 0;
	int bits = 0, v;

	*out_r = NULL;
	*outlen_r = 0;
	while (n > 0 && inlen - n < 2 && in[n - 1] == '=')
		n--;
	/* Padding, when there is any, fills the last group of four. */
	if ((a == BASE64_STD || n < inlen) && inlen % 4 != 0)
		return -1;
	if (n % 4 == 1)
		return -1;	/* a dangling character */
	size = n / 4 * 3 + 3;
	out = xmalloc(size);
	for (i = 0; i < n; i++) {
		if ((v = b64_value(a, (unsigned char)in[i])) < 0)
			goto bad;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	/* The bits left over must be zero: one text per byte string. */
	if ((acc & ((1u << bits) - 1)) != 0)
		goto bad;
	out[o] = '\0';
	*out_r = out;
	*outlen_r = o;
	return 0;

bad:
	secret_wipe_free(out, size);
	return -1;
}
