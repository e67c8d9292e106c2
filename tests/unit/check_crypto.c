/*
 * Unit tests for crypto.c: base64url, the PKCE S256 transform (RFC 7636
 * appendix B), random strings, and refusals of unusable keys and
 * certificates (private_key_jwt), and the private_key_jwt client assertion
 * as src/oauth/assertion.c builds it: header (alg, typ, x5t against a SHA-1 of the
 * certificate computed here), claims, and the RS256 signature checked with
 * the certificate's public key.  oidc-provider accepts one end to end in
 * tests/e2e/oauth-flows.sh, but ignores x5t.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "base64.h"
#include "crypto.h"
#include "oauth/oauth-int.h"
#include "secret.h"
#include "suites.h"
#include "util.h"

/* RFC 7636 appendix B: the verifier and its S256 challenge. */
START_TEST(test_pkce_s256)
{
	static const char verifier[] =
	    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	unsigned char d[CRYPTO_SHA256_LEN];
	char *c;

	ck_assert_int_eq(crypto_sha256(verifier, strlen(verifier), d), 0);
	c = base64_encode(BASE64_URL, d, sizeof d);
	ck_assert_str_eq(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	free(c);
}
END_TEST

START_TEST(test_random_string)
{
	char *a, *b;
	size_t i;

	a = crypto_random_string(32);
	b = crypto_random_string(32);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(strlen(a), 43);	/* a PKCE verifier: 43..128 */
	ck_assert_str_ne(a, b);
	for (i = 0; a[i] != '\0'; i++)
		ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
		    "uvwxyz0123456789-_", a[i]) != NULL);
	free(a);
	free(b);
	ck_assert_ptr_null(crypto_random_string(65));
}
END_TEST

/* Broken input: not PEM, truncated PEM, a certificate as key. */
START_TEST(test_bad_key_and_cert)
{
	static const char *const bad[] = {
		"",
		"not a key at all",
		"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	};
	unsigned char sha1[CRYPTO_SHA1_LEN], *sig = NULL;
	size_t i, len = 0;
	char *err = NULL;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(crypto_rs256_sign(bad[i], strlen(bad[i]), "x",
		    1, &sig, &len, &err), PM_ECONFIG);
		ck_assert_ptr_null(sig);
		ck_assert_ptr_nonnull(strstr(err, "client key"));
		free(err);
		err = NULL;
		ck_assert_int_eq(crypto_cert_sha1(bad[i], strlen(bad[i]), sha1,
		    &err), PM_ECONFIG);
		ck_assert_ptr_nonnull(strstr(err, "client certificate"));
		free(err);
		err = NULL;
	}
}
END_TEST

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding, written here as an oracle for the one in
 * base64.c. */
static char *
t_b64url_encode(const unsigned char *p, size_t n)
{
	char *out = xmalloc(n / 3 * 4 + 5), *o = out;
	size_t i;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
		*o++ = b64url_alphabet[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = b64url_alphabet[v >> 18 & 63];
		*o++ = b64url_alphabet[v >> 12 & 63];
		*o++ = b64url_alphabet[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

/* Decode n chars of unpadded base64url; fails the test on a bad char. */
static unsigned char *
t_b64url_decode(const char *s, size_t n, size_t *len_r)
{
	unsigned char *out = xmalloc(n * 3 / 4 + 1);
	const char *c;
	uint32_t v = 0;
	size_t i, bits = 0, len = 0;

	ck_assert_msg(n % 4 != 1, "bad base64url length %zu", n);
	for (i = 0; i < n; i++) {
		c = s[i] == '\0' ? NULL : strchr(b64url_alphabet, s[i]);
		ck_assert_msg(c != NULL, "'%c' is not base64url", s[i]);
		v = v << 6 | (uint32_t)(c - b64url_alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[len++] = (unsigned char)(v >> bits);
		}
	}
	out[len] = '\0';
	*len_r = len;
	return out;
}

/* A fresh RSA key and a self-signed certificate for it, in PEM. */
static void
make_key_and_cert(char **key_r, char **cert_r, gnutls_x509_crt_t *crt_r)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	unsigned char serial[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	time_t now = time(NULL);

	ck_assert_int_ge(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_ge(gnutls_x509_privkey_generate(key, GNUTLS_PK_RSA,
	    2048, 0), 0);
	ck_assert_int_ge(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_version(crt, 3), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_serial(crt, serial,
	    sizeof serial), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_expiration_time(crt,
	    now + 86400), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, "pullmail unit test", 18), 0);
	ck_assert_int_ge(gnutls_x509_crt_set_key(crt, key), 0);
	ck_assert_int_ge(gnutls_x509_crt_sign2(crt, crt, key,
	    GNUTLS_DIG_SHA256, 0), 0);
	ck_assert_int_ge(gnutls_x509_privkey_export2_pkcs8(key,
	    GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d), 0);
	*key_r = xstrndup((char *)d.data, d.size);
	gnutls_free(d.data);
	ck_assert_int_ge(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM,
	    &d), 0);
	*cert_r = xstrndup((char *)d.data, d.size);
	gnutls_free(d.data);
	gnutls_x509_privkey_deinit(key);
	*crt_r = crt;
}

/* One JWT part (header or claims) decoded into a JSON object. */
static struct json_object *
jwt_part(const char *s, size_t n)
{
	struct json_object *obj;
	unsigned char *text;
	const char *why = NULL;
	size_t len;

	text = t_b64url_decode(s, n, &len);
	obj = oauth_parse_object((char *)text, len, &why);
	ck_assert_msg(obj != NULL, "JWT part not a JSON object: %s: %s",
	    why != NULL ? why : "?", (char *)text);
	free(text);
	return obj;
}

/* A string member that must be present. */
static const char *
member(struct json_object *obj, const char *key)
{
	const char *v;
	int bad = 0;

	v = oauth_get_string(obj, key, &bad);
	ck_assert_msg(v != NULL && !bad, "no string member %s", key);
	return v;
}

/*
 * Check one client assertion: the header, the claims and the RS256
 * signature over "header.claims" with the certificate's public key.  The
 * jti is returned (malloc'd).
 */
static char *
check_assertion(const char *jwt, const char *x5t, const char *token_url,
    const char *client_id, gnutls_pubkey_t pub)
{
	struct json_object *hdr, *claims;
	const char *dot1, *dot2;
	unsigned char *sig;
	gnutls_datum_t data, sd;
	int64_t exp, iat, nbf;
	time_t now = time(NULL);
	size_t siglen;
	char *jti;

	ck_assert_ptr_null(strchr(jwt, '='));
	dot1 = strchr(jwt, '.');
	ck_assert_ptr_nonnull(dot1);
	dot2 = strchr(dot1 + 1, '.');
	ck_assert_ptr_nonnull(dot2);
	ck_assert_ptr_null(strchr(dot2 + 1, '.'));

	hdr = jwt_part(jwt, (size_t)(dot1 - jwt));
	ck_assert_str_eq(member(hdr, "alg"), "RS256");
	ck_assert_str_eq(member(hdr, "typ"), "JWT");
	ck_assert_str_eq(member(hdr, "x5t"), x5t);
	oauth_json_free(hdr);

	claims = jwt_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	ck_assert_str_eq(member(claims, "aud"), token_url);
	ck_assert_str_eq(member(claims, "iss"), client_id);
	ck_assert_str_eq(member(claims, "sub"), client_id);
	jti = xstrdup(member(claims, "jti"));
	ck_assert_uint_ge(strlen(jti), 16);
	ck_assert_int_eq(oauth_get_int64(claims, "exp", &exp), 0);
	ck_assert_int_eq(oauth_get_int64(claims, "iat", &iat), 0);
	ck_assert_int_eq(oauth_get_int64(claims, "nbf", &nbf), 0);
	/* Valid now, for a few minutes at most (Entra ID allows 10). */
	ck_assert_int_gt(exp, (int64_t)now);
	ck_assert_int_le(exp, (int64_t)now + 600);
	ck_assert_int_le(iat, (int64_t)now);
	ck_assert_int_ge(iat, (int64_t)now - 60);
	ck_assert_int_le(nbf, (int64_t)now);
	ck_assert_int_gt(exp, iat);
	oauth_json_free(claims);

	sig = t_b64url_decode(dot2 + 1, strlen(dot2 + 1), &siglen);
	ck_assert_uint_eq(siglen, 256);	/* RSA 2048 */
	data.data = (unsigned char *)jwt;
	data.size = (unsigned)(dot2 - jwt);
	sd.data = sig;
	sd.size = (unsigned)siglen;
	ck_assert_int_ge(gnutls_pubkey_verify_data2(pub,
	    GNUTLS_SIGN_RSA_SHA256, 0, &data, &sd), 0);
	/* A changed claim breaks it: the signature covers the claims. */
	{
		char *copy = xstrdup(jwt);

		copy[dot1 - jwt + 3] ^= 1;
		data.data = (unsigned char *)copy;
		ck_assert_int_lt(gnutls_pubkey_verify_data2(pub,
		    GNUTLS_SIGN_RSA_SHA256, 0, &data, &sd), 0);
		free(copy);
	}
	free(sig);
	return jti;
}

/* The private_key_jwt client assertion, as sent to the token endpoint. */
START_TEST(test_client_assertion)
{
	static const char url[] =
	    "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";
	static const char id[] = "11111111-2222-3333-4444-555555555555";
	struct oauth_request req;
	struct pm_secret *key;
	gnutls_x509_crt_t crt;
	gnutls_pubkey_t pub;
	gnutls_datum_t der;
	unsigned char sha1[20];
	char *key_pem, *cert_pem, *dir, *cert_path, *x5t, *jwt1, *jwt2;
	char *jti1, *jti2, *jwt3 = NULL, *err = NULL;

	make_key_and_cert(&key_pem, &cert_pem, &crt);
	/* x5t: base64url of the SHA-1 of the certificate's DER form. */
	ck_assert_int_ge(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER,
	    &der), 0);
	ck_assert_int_ge(gnutls_hash_fast(GNUTLS_DIG_SHA1, der.data, der.size,
	    sha1), 0);
	gnutls_free(der.data);
	x5t = t_b64url_encode(sha1, sizeof sha1);
	ck_assert_uint_eq(strlen(x5t), 27);
	ck_assert_int_ge(gnutls_pubkey_init(&pub), 0);
	ck_assert_int_ge(gnutls_pubkey_import_x509(pub, crt, 0), 0);

	dir = test_tmpdir();
	cert_path = test_write_file(dir, "app.pem", cert_pem, 0644);
	key = secret_from_str(key_pem);
	memset(&req, 0, sizeof req);
	req.token_url = url;
	req.client_id = id;
	req.client_key = key;
	req.client_cert = cert_path;

	ck_assert_int_eq(oauth_client_assertion(&req, &jwt1, &err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(oauth_client_assertion(&req, &jwt2, &err), PM_OK);
	jti1 = check_assertion(jwt1, x5t, url, id, pub);
	jti2 = check_assertion(jwt2, x5t, url, id, pub);
	ck_assert_str_ne(jti1, jti2);
	ck_assert_str_ne(jwt1, jwt2);

	/* A missing certificate file: a configuration error naming it. */
	req.client_cert = "/nonexistent/app.pem";
	ck_assert_int_eq(oauth_client_assertion(&req, &jwt3, &err),
	    PM_ECONFIG);
	ck_assert_ptr_null(jwt3);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/app.pem"));
	free(err);

	free(jti1);
	free(jti2);
	free(jwt1);
	free(jwt2);
	secret_free(key);
	unlink(cert_path);
	rmdir(dir);
	free(cert_path);
	free(dir);
	free(x5t);
	free(key_pem);
	free(cert_pem);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_crt_deinit(crt);
}
END_TEST

Suite *
suite_crypto(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("crypto");

	tcase_add_test(tc, test_pkce_s256);
	tcase_add_test(tc, test_random_string);
	tcase_add_test(tc, test_bad_key_and_cert);
	tcase_add_test(tc, test_client_assertion);
	suite_add_tcase(s, tc);
	return s;
}
