/*
 * private_key_jwt (RFC 7523): the signed client assertion sent instead of
 * a client secret.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "crypto.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* A JSON object as base64url. */
static char *
json_b64(struct json_object *obj)
{
	const char *text;

	text = oauth_json_text(obj);
	return base64_encode(BASE64_URL, text, strlen(text));
}

/*
 * The client assertion of private_key_jwt (RFC 7523 section 2.2): a JWT
 * for the token endpoint signed RS256 with the client key, x5t the SHA-1
 * thumbprint of the certificate (as Microsoft Entra ID requires).
 */
int
oauth_client_assertion(const struct oauth_request *req, char **jwt_r,
    char **err)
{
	struct json_object *hdr, *claims;
	unsigned char sha1[CRYPTO_SHA1_LEN], *sig = NULL;
	char *cert = NULL, *h64, *c64, *input, *s64, *jti, *x5t;
	size_t len, siglen;
	time_t now = time(NULL);
	int rc;

	if (read_small_file(req->client_cert, 1 << 20, &cert, &len) < 0)
		return errf(err, PM_ECONFIG, "%s: %s", req->client_cert,
		    pm_strerror(errno));
	rc = crypto_cert_sha1(cert, len, sha1, err);
	free(cert);
	if (rc != PM_OK) {
		err_prefix(err, "%s", req->client_cert);
		return rc;
	}
	if ((jti = crypto_random_string(16)) == NULL)
		return errf(err, PM_EINTERNAL, "no random bytes");
	x5t = base64_encode(BASE64_URL, sha1, sizeof sha1);
	hdr = oauth_json_new();
	oauth_json_set_string(hdr, "alg", "RS256");
	oauth_json_set_string(hdr, "typ", "JWT");
	oauth_json_set_string(hdr, "x5t", x5t);
	claims = oauth_json_new();
	oauth_json_set_string(claims, "aud", req->token_url);
	oauth_json_set_string(claims, "iss", req->client_id);
	oauth_json_set_string(claims, "sub", req->client_id);
	oauth_json_set_string(claims, "jti", jti);
	oauth_json_set_int64(claims, "iat", now);
	oauth_json_set_int64(claims, "nbf", now);
	oauth_json_set_int64(claims, "exp", now + 300);
	h64 = json_b64(hdr);
	c64 = json_b64(claims);
	oauth_json_free(hdr);
	oauth_json_free(claims);
	free(x5t);
	free(jti);
	input = xasprintf("%s.%s", h64, c64);
	free(h64);
	free(c64);
	rc = crypto_rs256_sign(secret_reveal(req->client_key),
	    secret_len(req->client_key), input, strlen(input), &sig, &siglen,
	    err);
	if (rc != PM_OK) {
		free(input);
		return rc;
	}
	s64 = base64_encode(BASE64_URL, sig, siglen);
	free(sig);
	*jwt_r = xasprintf("%s.%s", input, s64);
	free(input);
	free(s64);
	return PM_OK;
}
