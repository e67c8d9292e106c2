/*
 * Fuzz target: the OAuth error challenge a server sends after a refused
 * XOAUTH2 or OAUTHBEARER login (sasl_oauth_error in sasl.c), and base64
 * decoding.  The input is the challenge's JSON, base64-encoded here so
 * that the fuzzer explores the JSON scanner; inputs starting with '!' are
 * given to the decoder as they are (broken base64).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *b64, *status, *summary;
	unsigned char *raw;
	size_t rawlen;
	int r;

	if (size > 0 && data[0] == '!') {
		b64 = malloc(size);
		if (b64 == NULL)
			abort();
		memcpy(b64, data + 1, size - 1);
		b64[size - 1] = '\0';
	} else {
		b64 = base64_encode(BASE64_STD, data, size);
		/* What was encoded decodes back to the same bytes. */
		if (base64_decode(BASE64_STD, b64, strlen(b64), &raw,
		    &rawlen) != 0 || rawlen != size ||
		    memcmp(raw, data, size) != 0)
			abort();
		free(raw);
	}
	r = sasl_oauth_error(b64, &status, &summary);
	/* Always a summary; a status only on success; both printable. */
	if (summary == NULL || (r == 0) != (status != NULL))
		abort();
	for (const char *p = summary; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			abort();
	free(status);
	free(summary);
	free(b64);
	return 0;
}
