/*
 * Fuzz target: a token endpoint's answer (oauth_parse_token_response in
 * src/oauth/json.c).  The first two input bytes pick the HTTP status it
 * came with (200, 400, 401, 408, 429, 500, 503 or any); the rest is the
 * body.  A success must carry a sendable access token and a Bearer type.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oauth/oauth-int.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 200, 200, 400, 401, 408, 429,
	    500, 503 };
	struct oauth_token tok;
	char *err = NULL;
	long status;
	int r;

	if (size < 2)
		return 0;
	status = data[0] < sizeof statuses / sizeof statuses[0] ?
	    statuses[data[0]] : 100 + (data[0] << 8 | data[1]) % 500;
	memset(&tok, 0, sizeof tok);
	r = oauth_parse_token_response((const char *)data + 2, size - 2,
	    status, 1700000000, &tok, &err);
	if (r == PM_OK && (tok.access_token == NULL || tok.token_type == NULL ||
	    strcasecmp(tok.token_type, "Bearer") != 0 ||
	    tok.expires_at <= 1700000000 || err != NULL))
		abort();
	if (r != PM_OK && err == NULL)
		abort();
	oauth_token_clear(&tok);
	free(err);
	return 0;
}
