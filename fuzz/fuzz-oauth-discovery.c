/*
 * Fuzz target: an OpenID discovery document (oauth_discover() in
 * src/oauth/discovery.c).  The first input byte picks the HTTP status, the
 * second the flow (client credentials, device, authorization code), the
 * rest is the body (see fuzz-oauth-http.h).
 */
#include "autoconf.h"

#include "fuzz-oauth-http.h"

#define oauth_http_post fuzz_http_post
#include "oauth/discovery.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct account a;
	struct oauth_endpoints ep;
	char *err = NULL;
	int r;

	if (size < 2)
		return 0;
	fuzz_answer(data + 1, size - 1);
	memset(&a, 0, sizeof a);
	a.name = "fuzz";
	a.oauth_issuer = "https://issuer.example.test/tenant/v2.0/";
	a.oauth_flow = data[0] % 3;
	a.timeout = 60;
	r = oauth_discover(&a, &ep, &err);
	if (r == PM_OK && (err != NULL || ep.token_url == NULL))
		abort();
	if (r != PM_OK && (err == NULL || ep.token_url != NULL))
		abort();
	if (r == PM_OK)
		oauth_endpoints_clear(&ep);
	free(err);
	return 0;
}
