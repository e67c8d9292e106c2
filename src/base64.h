/*
 * Base64 (RFC 4648), the one implementation in the core, with the alphabet
 * as a parameter: the standard one with padding for SASL, HTTP Basic and
 * PEM, the URL-safe one without padding for PKCE and JWTs.
 */
#ifndef PM_BASE64_H
#define PM_BASE64_H

#include <stddef.h>

#include "secret.h"

enum base64_alphabet {
	BASE64_STD,	/* section 4: "+/", always padded with '=' */
	BASE64_URL	/* section 5: "-_", written without padding */
};

/* The base64 text of len bytes of data; malloc'd. */
char *base64_encode(enum base64_alphabet a, const void *data, size_t len);

/*
 * Decode inlen bytes of base64 text strictly: store a malloc'd buffer (a
 * NUL added after its *outlen_r bytes) and return 0, or return -1 with
 * *out_r NULL and *outlen_r 0 on a character outside the alphabet
 * (whitespace and the other alphabet's two characters included), a
 * dangling character, misplaced or wrong padding, or non-zero pad bits.
 * BASE64_STD requires the padding; BASE64_URL takes it when it is right
 * (RFC 7515 leaves it out, some encoders write it).
 */
int base64_decode(enum base64_alphabet a, const char *in, size_t inlen,
    unsigned char **out_r, size_t *outlen_r);

/* The value of base64 character c in either alphabet ('+' and '-' are
 * 62, '/' and '_' 63), or -1: for text that may hold either form (the
 * redaction of secrets in logs). */
int base64_value_any(unsigned char c);

/* BASE64_STD of secret bytes (a SASL response) as a secret; no unwiped
 * copy is left behind. */
struct pm_secret *base64_encode_secret(const void *data, size_t len);

#endif
