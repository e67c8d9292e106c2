/* SASL: the mechanism encoders against published examples, the
 * mechanism choice and the OAuth error challenge decoder. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/host.h>

#include "config.h"
#include "sasl.h"
#include "secret.h"
#include "suites.h"

/* Decode a response built by the encoders; the caller frees. */
static unsigned char *
decode_secret(const struct pm_secret *s, size_t *len_r)
{
	unsigned char *out;

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(strlen(secret_reveal(s)), secret_len(s));
	ck_assert_int_eq(base64_decode(BASE64_STD, secret_reveal(s),
	    secret_len(s), &out, len_r), 0);
	return out;
}

/* Published XOAUTH2 examples. */
static const struct {
	const char *source;
	const char *user;
	const char *token;
	const char *b64;
} xoauth2_vectors[] = {
	{ "Microsoft, Authenticate an IMAP, POP or SMTP connection using OAuth",
	  "test@contoso.onmicrosoft.com",
	  "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA",
	  "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVy"
	  "IEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ==" },
	{ "Google, OAuth 2.0 Mechanism (XOAUTH2)",
	  "someuser@example.com",
	  "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
	  "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRm"
	  "dDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==" },
};

START_TEST(test_xoauth2_examples)
{
	struct pm_secret *tok = secret_from_str(xoauth2_vectors[_i].token);
	struct pm_secret *r = sasl_xoauth2(xoauth2_vectors[_i].user, tok);

	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strcmp(secret_reveal(r), xoauth2_vectors[_i].b64) == 0,
	    "%s: got %s", xoauth2_vectors[_i].source, secret_reveal(r));
	ck_assert_uint_eq(secret_len(r), strlen(xoauth2_vectors[_i].b64));
	secret_free(r);
	secret_free(tok);
}
END_TEST

/* RFC 7628 section 4.1, and user names that need GS2 escaping. */
static const struct {
	const char *user;
	const char *host;
	unsigned port;
	const char *token;
	const char *b64;	/* expected base64, or NULL */
	const char *raw;	/* expected decoded form, or NULL */
} oauthbearer_vectors[] = {
	{ "user@example.com", "server.example.com", 143,
	  "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
	  "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBv"
	  "cnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1s"
	  "emRHRXVZMjl0Q2c9PQEB", NULL },
	{ "a,b=c@example.com", "imap.example.com", 993, "tok",
	  NULL, "n,a=a=2Cb=3Dc@example.com,\001host=imap.example.com"
	  "\001port=993\001auth=Bearer tok\001\001" },
	{ "==,,", "h", 1, "t",
	  NULL, "n,a==3D=3D=2C=2C,\001host=h\001port=1\001auth=Bearer t"
	  "\001\001" },
	{ "=2C", "::1", 65535, "x",
	  NULL, "n,a==3D2C,\001host=::1\001port=65535\001auth=Bearer x"
	  "\001\001" },
};

START_TEST(test_oauthbearer)
{
	struct pm_secret *tok = secret_from_str(oauthbearer_vectors[_i].token);
	struct pm_secret *r;
	unsigned char *raw;
	size_t len;

	r = sasl_oauthbearer(oauthbearer_vectors[_i].user,
	    oauthbearer_vectors[_i].host, oauthbearer_vectors[_i].port, tok);
	ck_assert_ptr_nonnull(r);
	if (oauthbearer_vectors[_i].b64 != NULL)
		ck_assert_str_eq(secret_reveal(r), oauthbearer_vectors[_i].b64);
	if (oauthbearer_vectors[_i].raw != NULL) {
		raw = decode_secret(r, &len);
		ck_assert_uint_eq(len, strlen(oauthbearer_vectors[_i].raw));
		ck_assert_mem_eq(raw, oauthbearer_vectors[_i].raw, len);
		free(raw);
	}
	secret_free(r);
	secret_free(tok);
}
END_TEST

/* RFC 4616 section 4 (user "tim", password "tanstaaftanstaaf"), and a
 * password with non-ASCII bytes. */
static const struct {
	const char *user;
	const char *pw;
	const char *b64;
} plain_vectors[] = {
	{ "tim", "tanstaaftanstaaf", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm" },
	{ "", "", "AAA=" },
	{ "u", "p\xc3\xa4ss", "AHUAcMOkc3M=" },
};

START_TEST(test_plain)
{
	struct pm_secret *pw = secret_from_str(plain_vectors[_i].pw);
	struct pm_secret *r = sasl_plain(plain_vectors[_i].user, pw);

	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(secret_reveal(r), plain_vectors[_i].b64);
	secret_free(r);
	secret_free(pw);
}
END_TEST

/* Build "prefix" + n bytes of token-like text + "suffix"; malloc'd. */
static char *
big_token(size_t n)
{
	static const char chars[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._";
	char *t = malloc(n + 1);
	size_t i;

	ck_assert_ptr_nonnull(t);
	for (i = 0; i < n; i++)
		t[i] = chars[(i * 7 + i / 64) % (sizeof chars - 1)];
	t[n] = '\0';
	return t;
}

static const size_t big_sizes[] = { 4096, 10240 };

/* Tokens of 4 KB and 10 KB go through both OAuth mechanisms intact. */
START_TEST(test_large_tokens)
{
	size_t n = big_sizes[_i], len, exp_len;
	char *t = big_token(n), *exp;
	struct pm_secret *tok = secret_from_str(t), *r;
	unsigned char *raw;

	/* XOAUTH2 */
	r = sasl_xoauth2("mailbox@example.com", tok);
	exp_len = strlen("user=mailbox@example.com\001auth=Bearer ") + n + 2;
	ck_assert_uint_eq(secret_len(r), (exp_len + 2) / 3 * 4);
	raw = decode_secret(r, &len);
	ck_assert_uint_eq(len, exp_len);
	ck_assert_mem_eq(raw, "user=mailbox@example.com\001auth=Bearer ", 37);
	ck_assert_mem_eq(raw + 37, t, n);
	ck_assert_mem_eq(raw + 37 + n, "\001\001", 2);
	free(raw);
	secret_free(r);

	/* OAUTHBEARER */
	r = sasl_oauthbearer("mailbox@example.com", "127.0.0.1", 10993, tok);
	if (asprintf(&exp, "n,a=mailbox@example.com,\001host=127.0.0.1"
	    "\001port=10993\001auth=Bearer %s\001\001", t) < 0)
		ck_abort();
	raw = decode_secret(r, &len);
	ck_assert_uint_eq(len, strlen(exp));
	ck_assert_mem_eq(raw, exp, len);
	free(raw);
	free(exp);
	secret_free(r);

	secret_free(tok);
	free(t);
}
END_TEST

/* Input that would break the framing is refused, not sent. */
START_TEST(test_unframeable)
{
	struct pm_secret *tok = secret_from_str("tok");
	struct pm_secret *bad = secret_from_str("to\001k");
	struct pm_secret *nulpw = secret_new("pa\0ss", 5);

	ck_assert_ptr_null(sasl_xoauth2("u\001auth=Bearer x", tok));
	ck_assert_ptr_null(sasl_xoauth2("u", bad));
	ck_assert_ptr_null(sasl_oauthbearer("u\001", "h", 1, tok));
	ck_assert_ptr_null(sasl_oauthbearer("u", "h\001port=2", 1, tok));
	ck_assert_ptr_null(sasl_oauthbearer("u", "h", 1, bad));
	ck_assert_ptr_null(sasl_plain("u", nulpw));
	secret_free(tok);
	secret_free(bad);
	secret_free(nulpw);
}
END_TEST

#define OA	SASL_HAVE_OAUTH
#define PW	SASL_HAVE_PASSWORD

/* The choice matrix: expected mechanism, or NULL and an error fragment. */
static const struct {
	int auth;
	int oauth;
	const char *mechs;
	const char *want;
	const char *err;
} choose_cases[] = {
	/* auto with OAuth: XOAUTH2 first, then OAUTHBEARER */
	{ AUTH_AUTO, OA, "PLAIN LOGIN XOAUTH2 OAUTHBEARER", "XOAUTH2", NULL },
	{ AUTH_AUTO, OA, "OAUTHBEARER XOAUTH2", "XOAUTH2", NULL },
	{ AUTH_AUTO, 1, "PLAIN OAUTHBEARER", "OAUTHBEARER", NULL },
	{ AUTH_AUTO, OA, "xoauth2", "XOAUTH2", NULL },
	{ AUTH_AUTO, OA | PW, "PLAIN oAuthBearer", "OAUTHBEARER", NULL },
	{ AUTH_AUTO, OA, "  XOAUTH2\t ", "XOAUTH2", NULL },
	{ AUTH_AUTO, OA, "PLAIN LOGIN", NULL,
	  "server does not offer AUTH=XOAUTH2 or AUTH=OAUTHBEARER "
	  "(it offers: PLAIN LOGIN)" },
	{ AUTH_AUTO, OA, "XOAUTH2X OAUTHBEARER2 XOAUTH", NULL,
	  "does not offer AUTH=XOAUTH2 or AUTH=OAUTHBEARER" },
	{ AUTH_AUTO, OA, "", NULL, "(it offers no SASL mechanism)" },
	{ AUTH_AUTO, OA, NULL, NULL, "(it offers no SASL mechanism)" },
	/* auto without OAuth: PLAIN, then LOGIN; never an OAuth mechanism */
	{ AUTH_AUTO, 0, "XOAUTH2 LOGIN PLAIN", "PLAIN", NULL },
	{ AUTH_AUTO, 0, "XOAUTH2 login", "LOGIN", NULL },
	{ AUTH_AUTO, 0, "XOAUTH2 OAUTHBEARER", NULL,
	  "server does not offer AUTH=PLAIN or AUTH=LOGIN "
	  "(it offers: XOAUTH2 OAUTHBEARER)" },
	{ AUTH_AUTO, 0, "PLAINX", NULL, "(it offers: PLAINX)" },
	/* explicit choices must be advertised */
	{ AUTH_XOAUTH2, OA, "XOAUTH2 OAUTHBEARER", "XOAUTH2", NULL },
	{ AUTH_OAUTHBEARER, OA, "XOAUTH2 OAUTHBEARER", "OAUTHBEARER", NULL },
	{ AUTH_XOAUTH2, OA, "PLAIN LOGIN", NULL,
	  "server does not offer AUTH=XOAUTH2 (it offers: PLAIN LOGIN)" },
	{ AUTH_OAUTHBEARER, OA, "PLAIN\t\tXOAUTH2", NULL,
	  "server does not offer AUTH=OAUTHBEARER (it offers: PLAIN XOAUTH2)" },
	{ AUTH_PLAIN, 0, "LOGIN PLAIN", "PLAIN", NULL },
	{ AUTH_LOGIN, 0, "LOGIN PLAIN", "LOGIN", NULL },
	{ AUTH_LOGIN, 0, "PLAIN", NULL,
	  "server does not offer AUTH=LOGIN (it offers: PLAIN)" },
	{ AUTH_PLAIN, OA | PW, "PLAIN XOAUTH2", "PLAIN", NULL },
	/* mechanisms the account cannot use */
	{ AUTH_XOAUTH2, 0, "XOAUTH2", NULL, "auth = xoauth2 needs OAuth" },
	{ AUTH_OAUTHBEARER, 0, "OAUTHBEARER", NULL,
	  "auth = oauthbearer needs OAuth" },
	{ AUTH_PLAIN, OA, "PLAIN", NULL, "auth = plain needs a password" },
	{ AUTH_LOGIN, 1, "LOGIN", NULL, "auth = login needs a password" },
	{ 42, 0, "PLAIN", NULL, "unknown auth mechanism 42" },
	/* untrusted server text is cleaned before it is quoted */
	{ AUTH_XOAUTH2, OA, "PLAIN\x1b[31m LOGIN\x7f", NULL,
	  "(it offers: PLAIN[31m LOGIN)" },
};

START_TEST(test_choose)
{
	char *err = NULL;
	const char *got;

	got = sasl_choose(choose_cases[_i].auth, choose_cases[_i].oauth,
	    choose_cases[_i].mechs, &err);
	if (choose_cases[_i].want != NULL) {
		ck_assert_msg(got != NULL, "case %d: %s", _i, err);
		ck_assert_str_eq(got, choose_cases[_i].want);
		ck_assert_ptr_null(err);
	} else {
		ck_assert_msg(got == NULL, "case %d chose %s", _i, got);
		ck_assert_ptr_nonnull(err);
		ck_assert_msg(strstr(err, choose_cases[_i].err) != NULL,
		    "case %d: \"%s\" lacks \"%s\"", _i, err,
		    choose_cases[_i].err);
		free(err);
	}
}
END_TEST

/* A very long mechanism list is capped in the message. */
START_TEST(test_choose_long_list)
{
	char mechs[4096], *err = NULL;
	size_t i;

	for (i = 0; i + 1 < sizeof mechs; i++)
		mechs[i] = i % 8 == 7 ? ' ' : 'M';
	mechs[sizeof mechs - 1] = '\0';
	ck_assert_ptr_null(sasl_choose(AUTH_AUTO, OA, mechs, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_uint_lt(strlen(err), 400);
	ck_assert_ptr_nonnull(strstr(err, "..."));
	free(err);
}
END_TEST

/* Error challenges: JSON (encoded in the test) or raw base64. */
static const struct {
	const char *json;	/* encoded with base64_encode, or NULL */
	const char *b64;	/* used as is when json is NULL */
	int ret;
	const char *status;
	const char *summary;	/* exact summary on success */
} oauth_err_cases[] = {
	/* Dovecot's XOAUTH2 failure */
	{ "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"mail\"}",
	  NULL, 0, "401", "status 401, schemes bearer, scope mail" },
	/* Google's documented error challenge */
	{ NULL, "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3Bl"
	  "IjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K", 0, "401",
	  "status 401, schemes bearer mac, scope https://mail.google.com/" },
	{ "{\"status\":\"400\",\"schemes\":\"Bearer\","
	  "\"scope\":\"https://mail.google.com/\"}", NULL, 0, "400",
	  "status 400, schemes Bearer, scope https://mail.google.com/" },
	/* RFC 7628 section 3.2.2 style, with extra members */
	{ "{\"status\":\"invalid_token\",\"scope\":\"example_scope\","
	  "\"openid-configuration\":\"https://example.com/.well-known/"
	  "openid-configuration\"}", NULL, 0, "invalid_token",
	  "status invalid_token, scope example_scope" },
	/* tolerated: whitespace, numbers, nesting, order, escapes */
	{ " {\n \"scope\" : \"a\\\"b\" ,\"x\":{\"y\":[1,\"}\"]},"
	  "\"status\" : 401 }\n", NULL, 0, "401",
	  "status 401, scope a\"b" },
	{ "{\"status\":\"403\"}", NULL, 0, "403", "status 403" },
	/* control characters removed, non-ASCII masked */
	{ "{\"status\":\"4\x1b[2J01\",\"scope\":\"m\\u00e9l\\n\x7f\"}", NULL,
	  0, "4[2J01", "status 4[2J01, scope m?l " },
	/* broken */
	{ NULL, "!!!not base64!!!", -1, NULL, NULL },
	{ NULL, "", -1, NULL, NULL },
	{ NULL, "eyJzdGF0dXMiOiI0MDEifQ", -1, NULL, NULL },
	{ "not json at all", NULL, -1, NULL, NULL },
	{ "{}", NULL, -1, NULL, NULL },
	{ "{\"schemes\":\"bearer\",\"scope\":\"mail\"}", NULL, -1, NULL,
	  NULL },
	{ "{\"status\":\"401\"", NULL, -1, NULL, NULL },
	{ "{\"status\":\"401", NULL, -1, NULL, NULL },
	{ "{\"status\" \"401\"}", NULL, -1, NULL, NULL },
	{ "{\"status\":\"401\" \"scope\":\"x\"}", NULL, -1, NULL, NULL },
	{ "{\"status\":}", NULL, -1, NULL, NULL },
	{ "{\"status\":\"401\",}", NULL, -1, NULL, NULL },
	{ "{\"x\":{\"y\":1,\"status\":\"401\"}", NULL, -1, NULL, NULL },
	{ "[\"status\",\"401\"]", NULL, -1, NULL, NULL },
	{ "{\"status\":\"\\u12\"}", NULL, -1, NULL, NULL },
};

START_TEST(test_oauth_error)
{
	char *b64, *status = (char *)"x", *summary = (char *)"x";
	int ret;

	if (oauth_err_cases[_i].json != NULL)
		b64 = base64_encode(BASE64_STD, oauth_err_cases[_i].json,
		    strlen(oauth_err_cases[_i].json));
	else
		b64 = strdup(oauth_err_cases[_i].b64);
	ret = sasl_oauth_error(b64, &status, &summary);
	ck_assert_msg(ret == oauth_err_cases[_i].ret, "case %d: %d (%s)", _i,
	    ret, summary);
	ck_assert_ptr_nonnull(summary);
	if (ret == 0) {
		ck_assert_str_eq(status, oauth_err_cases[_i].status);
		ck_assert_str_eq(summary, oauth_err_cases[_i].summary);
	} else {
		ck_assert_ptr_null(status);
		ck_assert_ptr_nonnull(strstr(summary, "could not be decoded"));
	}
	free(status);
	free(summary);
	free(b64);
}
END_TEST

/* Huge values are capped; the summary stays one short printable line. */
START_TEST(test_oauth_error_long)
{
	char json[8192], *b64, *status, *summary;
	const char *p;
	size_t n;

	n = (size_t)snprintf(json, sizeof json, "{\"status\":\"");
	memset(json + n, '4', 3000);
	n += 3000;
	n += (size_t)snprintf(json + n, sizeof json - n, "\",\"scope\":\"");
	memset(json + n, 's', 3000);
	n += 3000;
	snprintf(json + n, sizeof json - n, "\"}");
	b64 = base64_encode(BASE64_STD, json, strlen(json));
	ck_assert_int_eq(sasl_oauth_error(b64, &status, &summary), 0);
	ck_assert_uint_lt(strlen(status), 100);
	ck_assert_uint_lt(strlen(summary), 257);
	ck_assert_ptr_nonnull(strstr(summary, "status 444"));
	for (p = summary; *p != '\0'; p++)
		ck_assert(*p >= ' ' && *p < 0x7f);
	free(status);
	free(summary);
	free(b64);
}
END_TEST

#define N(a)	((int)(sizeof (a) / sizeof (a)[0]))

Suite *
suite_sasl(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc;

	tc = tcase_create("mechanisms");
	tcase_add_loop_test(tc, test_xoauth2_examples, 0, N(xoauth2_vectors));
	tcase_add_loop_test(tc, test_oauthbearer, 0, N(oauthbearer_vectors));
	tcase_add_loop_test(tc, test_plain, 0, N(plain_vectors));
	tcase_add_loop_test(tc, test_large_tokens, 0, N(big_sizes));
	tcase_add_test(tc, test_unframeable);
	suite_add_tcase(s, tc);

	tc = tcase_create("choose");
	tcase_add_loop_test(tc, test_choose, 0, N(choose_cases));
	tcase_add_test(tc, test_choose_long_list);
	suite_add_tcase(s, tc);

	tc = tcase_create("oauth_error");
	tcase_add_loop_test(tc, test_oauth_error, 0, N(oauth_err_cases));
	tcase_add_test(tc, test_oauth_error_long);
	suite_add_tcase(s, tc);
	return s;
}
