/*
 * Unit tests for crypto.c: base64url, the PKCE S256 transform (RFC 7636
 * appendix B), random strings, and refusals of unusable keys and
 * certificates (private_key_jwt).  A real signature is verified end to end
 * by oidc-provider in tests/e2e/oauth-flows.sh.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "crypto.h"
#include "suites.h"
#include "util.h"

static const struct {
	const char *in;
	const char *out;
} b64url[] = {
	{ "", "" },
	{ "f", "Zg" },
	{ "fo", "Zm8" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg" },
	{ "fooba", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy" },
	{ "\xfb\xff\xbf", "-_-_" },	/* the url-safe alphabet */
};

START_TEST(test_base64url)
{
	char *s;

	s = crypto_base64url(b64url[_i].in, strlen(b64url[_i].in));
	ck_assert_str_eq(s, b64url[_i].out);
	free(s);
}
END_TEST

/* RFC 7636 appendix B: the verifier and its S256 challenge. */
START_TEST(test_pkce_s256)
{
	static const char verifier[] =
	    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	unsigned char d[CRYPTO_SHA256_LEN];
	char *c;

	ck_assert_int_eq(crypto_sha256(verifier, strlen(verifier), d), 0);
	c = crypto_base64url(d, sizeof d);
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

Suite *
suite_crypto(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc = tcase_create("crypto");

	tcase_add_loop_test(tc, test_base64url, 0,
	    (int)(sizeof b64url / sizeof b64url[0]));
	tcase_add_test(tc, test_pkce_s256);
	tcase_add_test(tc, test_random_string);
	tcase_add_test(tc, test_bad_key_and_cert);
	suite_add_tcase(s, tc);
	return s;
}
