/*
 * The token module: token-response parsing (good, error, malformed), the
 * hint table, and oauth_get_token end to end against a fault injector on
 * 127.0.0.1 (form fields, Basic authentication, the cache, 0600 files,
 * invalidation, 5xx, refused connections, timeouts, redirects, AADSTS
 * errors, two processes sharing one fetch, redacted -vv output, echoed
 * secrets kept out of the retry log, a token lock held too long),
 * oauth_token_command that hangs, and many threads needing one app's token
 * at once (one request, also after the token was refused).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "config.h"
#include "log.h"
#include "oauth.h"
#include "oauth/oauth-int.h"
#include "secret.h"
#include "suites.h"
#include "testcert.h"
#include "util.h"

/* A client secret that needs form encoding, and how it must be encoded. */
#define SECRET		"s3cr3t+/&= ~x%Q"
#define SECRET_FORM	"s3cr3t%2B%2F%26%3D+~x%25Q"
#define SECRET_FORM_LC	"s3cr3t%2b%2f%26%3d+~x%25Q"	/* lower-case hex */
#define CLIENT_ID	"11111111-2222-3333-4444-555555555555"
#define SCOPE		"https://outlook.office365.com/.default"
#define SCOPE_FORM	"https%3A%2F%2Foutlook.office365.com%2F.default"
#define TOKEN_A		"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.tokenA.sig"
#define TOKEN_B		"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.tokenB.sig"

static char *dir;

static void
setup(void)
{
	/* The fault injector is on loopback: no proxy may get in between. */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	dir = test_tmpdir();
}

static void
teardown(void)
{
	oauth_global_deinit();
	test_rm_rf(dir);
	free(dir);
}

/* --- oauth_parse_token_response ------------------------------------------ */

/* Parse a NUL-terminated body. */
static int
parse(const char *body, long status, struct oauth_token *tok, char **err)
{
	return oauth_parse_token_response(body, strlen(body), status, 1000,
	    tok, err);
}

/* Whether s begins with prefix. */
static int
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Whether s holds a byte below 0x20 or DEL. */
static int
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	}
	return 0;
}

START_TEST(test_parse_microsoft)
{
	/* The shape of Microsoft's documented client-credentials answer. */
	static const char body[] = "{\n"
	    "  \"token_type\": \"Bearer\",\n"
	    "  \"expires_in\": 3599,\n"
	    "  \"ext_expires_in\": 3599,\n"
	    "  \"access_token\": \"" TOKEN_A "\"\n"
	    "}\n";
	struct oauth_token tok;
	char *err = NULL;

	ck_assert_int_eq(parse(body, 200, &tok, &err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(secret_reveal(tok.access_token), TOKEN_A);
	ck_assert_uint_eq(secret_len(tok.access_token), strlen(TOKEN_A));
	ck_assert_str_eq(tok.token_type, "Bearer");
	ck_assert_int_eq((long)tok.expires_at, 1000 + 3599);
	ck_assert_ptr_null(tok.scope);
	ck_assert_ptr_null(tok.error);
	oauth_token_clear(&tok);
	ck_assert_ptr_null(tok.access_token);
}
END_TEST

START_TEST(test_parse_string_expiry_and_scope)
{
	struct oauth_token tok;
	char *err = NULL;

	ck_assert_int_eq(parse("{\"access_token\":\"abc.def\","
	    "\"token_type\":\"bearer\",\"expires_in\":\"3600\","
	    "\"scope\":\"imap pop\"}", 200, &tok, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok.access_token), "abc.def");
	ck_assert_str_eq(tok.token_type, "bearer");
	ck_assert_int_eq((long)tok.expires_at, 4600);
	ck_assert_str_eq(tok.scope, "imap pop");
	oauth_token_clear(&tok);

	ck_assert_int_eq(parse("{\"access_token\":\"x\",\"token_type\":"
	    "\"BEARER\",\"expires_in\":60}", 200, &tok, &err), PM_OK);
	ck_assert_int_eq((long)tok.expires_at, 1060);
	oauth_token_clear(&tok);
}
END_TEST

/* A good response followed by a NUL byte and more. */
#define NUL_BODY "{\"access_token\":\"tokSECRET\",\"token_type\":" \
	"\"Bearer\",\"expires_in\":60}\0{}"

/* Malformed or refused responses: status class and a word of the reason. */
static const struct {
	const char *body;
	size_t len;		/* 0: strlen(body) */
	long http;
	int status;
	const char *reason;
} bad_responses[] = {
	{ "{\"token_type\":\"Bearer\",\"expires_in\":3599}", 0, 200,
	    PM_EPROTO, "no access_token" },
	{ "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":1}",
	    0, 200, PM_EPROTO, "access_token" },
	{ "{\"access_token\":\"tok SECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":1}", 0, 200, PM_EPROTO, "access_token" },
	{ "{\"access_token\":\"tok\\u0001SECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":1}", 0, 200, PM_EPROTO, "access_token" },
	{ "{\"access_token\":42,\"token_type\":\"Bearer\",\"expires_in\":1}",
	    0, 200, PM_EPROTO, "type" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"mac\","
	    "\"expires_in\":60}", 0, 200, PM_EPROTO, "Bearer" },
	{ "{\"access_token\":\"tokSECRET\",\"expires_in\":60}", 0, 200,
	    PM_EPROTO, "token_type" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\"}", 0, 200,
	    PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":-5}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":0}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":99999999999}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":99999999999999999999999}", 0, 200, PM_EPROTO,
	    "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":36.5}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":\"12abc\"}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":\"-60\"}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":\"\"}", 0, 200, PM_EPROTO, "expires_in" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":true}", 0, 200, PM_EPROTO, "expires_in" },
	{ "[\"access_token\",\"tokSECRET\"]", 0, 200, PM_EPROTO,
	    "not a JSON object" },
	{ "\"tokSECRET\"", 0, 200, PM_EPROTO, "not a JSON object" },
	{ "null", 0, 200, PM_EPROTO, "not a JSON object" },
	{ "{\"access_token\":\"tokSECRET\",\"token_ty", 0, 200, PM_EPROTO,
	    "truncated" },
	{ "", 0, 200, PM_EPROTO, "empty" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":60} x", 0, 200, PM_EPROTO, "trailing" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":60}{}", 0, 200, PM_EPROTO, "trailing" },
	{ NUL_BODY, sizeof NUL_BODY - 1, 200, PM_EPROTO, "NUL" },
	{ "{'access_token':'tokSECRET'}", 0, 200, PM_EPROTO, "malformed" },
	{ "{\"access_token\":\"tok\xff\xfeSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":60}", 0, 200, PM_EPROTO, "malformed" },
	{ "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]}", 0, 200,
	    PM_EPROTO, "malformed" },
	{ "<html><body><h1>503 Service Unavailable</h1></body></html>", 0,
	    503, PM_ETEMP, "503" },
	{ "Too many requests", 0, 429, PM_ETEMP, "429" },
	{ "", 0, 502, PM_ETEMP, "502" },
	{ "<html>Bad Request</html>", 0, 400, PM_EPROTO, "400" },
	{ "", 0, 302, PM_EPROTO, "redirect" },
	{ "{\"message\":\"unauthorized\"}", 0, 401, PM_EPROTO,
	    "without an OAuth error" },
	{ "{\"access_token\":\"tokSECRET\",\"token_type\":\"Bearer\","
	    "\"expires_in\":60}", 0, 201, PM_EPROTO, "201" },
	{ "{\"error\":5}", 0, 400, PM_EPROTO, "malformed error" },
	{ "{\"error\":\"\"}", 0, 400, PM_EPROTO, "malformed error" },
	{ "{\"error\":\"invalid_client\",\"error_description\":[1]}", 0, 401,
	    PM_EPROTO, "malformed error" },
	{ "{\"error\":\"server_error\",\"error_description\":\"boom\"}", 0,
	    500, PM_ETEMP, "server_error" },
	{ "{\"error\":\"temporarily_unavailable\"}", 0, 200, PM_ETEMP,
	    "temporarily_unavailable" },
	{ "{\"error\":\"invalid_scope\",\"access_token\":\"tokSECRET\","
	    "\"token_type\":\"Bearer\",\"expires_in\":60}", 0, 200, PM_EAUTH,
	    "invalid_scope" },
};

START_TEST(test_parse_bad)
{
	struct oauth_token tok;
	char *err = NULL;
	size_t len;
	int rc;

	len = bad_responses[_i].len != 0 ? bad_responses[_i].len :
	    strlen(bad_responses[_i].body);
	rc = oauth_parse_token_response(bad_responses[_i].body, len,
	    bad_responses[_i].http, 1000, &tok, &err);
	ck_assert_msg(rc == bad_responses[_i].status,
	    "case %d: status %d, want %d (%s)", _i, rc,
	    bad_responses[_i].status, err != NULL ? err : "no message");
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, bad_responses[_i].reason) != NULL,
	    "case %d: \"%s\" lacks \"%s\"", _i, err, bad_responses[_i].reason);
	ck_assert_msg(strstr(err, "SECRET") == NULL,
	    "case %d: token in message \"%s\"", _i, err);
	ck_assert_msg(!has_control(err), "case %d: control byte", _i);
	ck_assert_ptr_null(tok.access_token);
	oauth_token_clear(&tok);
	free(err);
}
END_TEST

START_TEST(test_parse_trailing_whitespace_ok)
{
	struct oauth_token tok;
	char *err = NULL;

	ck_assert_int_eq(parse(" {\"access_token\":\"a\",\"token_type\":"
	    "\"Bearer\",\"expires_in\":5}\r\n\t ", 200, &tok, &err), PM_OK);
	oauth_token_clear(&tok);
}
END_TEST

START_TEST(test_parse_aadsts_error)
{
	/* Microsoft's shape, with an escape sequence and a C1 control
	 * smuggled into the description. */
	static const char body[] = "{"
	    "\"error\":\"invalid_client\","
	    "\"error_description\":\"AADSTS7000215: Invalid client secret "
	    "provided. \\u001b[31mEnsure the secret being sent in the request "
	    "is the client secret value,\\u0085 not the client secret ID, for "
	    "a secret added to app '" CLIENT_ID "'.\\r\\nTrace ID: "
	    "0000aaaa-11bb-cccc-dd22-eeeeee333333\\r\\nCorrelation ID: "
	    "aaaa0000-bb11-2222-33cc-444444dddddd\\r\\nTimestamp: "
	    "2024-02-28 10:59:21Z\","
	    "\"error_codes\":[7000215],"
	    "\"timestamp\":\"2024-02-28 10:59:21Z\","
	    "\"trace_id\":\"0000aaaa-11bb-cccc-dd22-eeeeee333333\","
	    "\"correlation_id\":\"aaaa0000-bb11-2222-33cc-444444dddddd\","
	    "\"error_uri\":\"https://login.microsoftonline.com/error?"
	    "code=7000215\"}";
	struct oauth_token tok;
	char *err = NULL;

	ck_assert_int_eq(parse(body, 401, &tok, &err), PM_EAUTH);
	ck_assert_str_eq(tok.error, "invalid_client");
	ck_assert_ptr_nonnull(tok.error_description);
	ck_assert(starts_with(tok.error_description, "AADSTS7000215: Invalid "
	    "client secret provided. [31mEnsure the secret"));
	ck_assert(!has_control(tok.error_description));
	ck_assert(strstr(tok.error_description, "\xc2\x85") == NULL);
	ck_assert(strstr(tok.error_description, "not the client") != NULL);
	ck_assert(starts_with(err, "token endpoint refused: invalid_client: "
	    "AADSTS7000215: Invalid client secret provided. [31mEnsure"));
	ck_assert(strstr(err, "(hint: the client secret is wrong; check "
	    "oauth_client_secret / password") != NULL);
	ck_assert(strstr(err, "Trace ID") == NULL);
	ck_assert(strstr(err, "Correlation") == NULL);
	ck_assert(!has_control(err));
	ck_assert(strstr(err, "\xc2\x85") == NULL);
	oauth_token_clear(&tok);
	free(err);
}
END_TEST

START_TEST(test_parse_error_with_200)
{
	struct oauth_token tok;
	char *err = NULL;

	ck_assert_int_eq(parse("{\"error\":\"invalid_scope\","
	    "\"error_description\":\"AADSTS1002012: The provided value for "
	    "scope openid is not valid.\"}", 200, &tok, &err), PM_EAUTH);
	ck_assert_ptr_null(tok.access_token);
	ck_assert_str_eq(tok.error, "invalid_scope");
	ck_assert(strstr(err, "https://outlook.office365.com/.default") !=
	    NULL);
	oauth_token_clear(&tok);
	free(err);
}
END_TEST

START_TEST(test_parse_error_code_array_and_cut)
{
	struct oauth_token tok;
	char *err = NULL, *body, *longdesc;
	size_t i;

	/* The code only in error_codes still selects the hint. */
	ck_assert_int_eq(parse("{\"error\":\"invalid_client\","
	    "\"error_codes\":[7000222]}", 401, &tok, &err), PM_EAUTH);
	ck_assert_ptr_null(tok.error_description);
	ck_assert(strstr(err, "expired") != NULL);
	oauth_token_clear(&tok);

	/* A description far too long is cut. */
	longdesc = xmalloc(2001);
	for (i = 0; i < 2000; i++)
		longdesc[i] = (char)('a' + i % 26);
	longdesc[2000] = '\0';
	body = xasprintf("{\"error\":\"invalid_request\","
	    "\"error_description\":\"%s\"}", longdesc);
	ck_assert_int_eq(parse(body, 400, &tok, &err), PM_EAUTH);
	ck_assert_uint_le(strlen(tok.error_description), 303);
	ck_assert_uint_ge(strlen(tok.error_description), 250);
	ck_assert(strstr(tok.error_description, "...") != NULL);
	ck_assert_uint_lt(strlen(err), 700);
	ck_assert(strstr(err, "hint: the token endpoint found the request "
	    "malformed") != NULL);
	oauth_token_clear(&tok);
	free(body);
	free(longdesc);

	/* An unknown error has no hint but is still reported. */
	ck_assert_int_eq(parse("{\"error\":\"weird\\u0007_thing\"}", 400,
	    &tok, &err), PM_EAUTH);
	ck_assert_str_eq(err, "token endpoint refused: weird_thing");
	oauth_token_clear(&tok);
	free(err);
}
END_TEST

/* --- the hint table ------------------------------------------------------- */

static const struct {
	const char *error;
	const char *description;
	const char *want;	/* NULL: no hint */
} hints[] = {
	{ "invalid_client", "AADSTS7000215: Invalid client secret provided.",
	    "client secret is wrong" },
	{ "invalid_client", "AADSTS7000222: The provided client secret keys "
	    "for app are expired.", "expired" },
	{ "unauthorized_client", "AADSTS700016: Application with identifier "
	    "'x' was not found in the directory 'y'.", "oauth_client_id" },
	{ "invalid_request", "AADSTS90002: Tenant 'x' not found.",
	    "tenant was not found" },
	{ "invalid_request", "AADSTS90023: Unsupported request.",
	    "oauth_token_url" },
	{ "invalid_request", "AADSTS900023: Specified tenant identifier 'x' "
	    "is neither a valid DNS name, nor a valid external domain.",
	    "tenant identifier" },
	{ "invalid_client", "AADSTS700024: Client assertion is not within "
	    "its valid time range.", "clock" },
	{ "invalid_scope", "AADSTS1002012: The provided value for scope x is "
	    "not valid.", "https://outlook.office365.com/.default" },
	{ "invalid_grant", "AADSTS50034: The user account does not exist.",
	    "does not exist in this tenant" },
	{ "invalid_grant", "AADSTS65001: The user or administrator has not "
	    "consented to use the application.", "IMAP.AccessAsApp" },
	{ "invalid_grant", "AADSTS65001: not consented", "POP.AccessAsApp" },
	{ "invalid_resource", "AADSTS500011: The resource principal named x "
	    "was not found in the tenant named y.", "resource principal" },
	{ "unauthorized_client", "AADSTS7000112: Application 'x' is "
	    "disabled.", "disabled" },
	{ "invalid_client", NULL, "oauth_client_secret" },
	{ "invalid_client", "no code here", "oauth_client_id" },
	{ "invalid_scope", NULL, "oauth_scope" },
	{ "unauthorized_client", NULL, "client-credentials grant" },
	{ "invalid_request", NULL, "malformed" },
	{ "invalid_grant", NULL, "grant was refused" },
	{ "unsupported_grant_type", NULL, "client-credentials" },
	{ "invalid_client", "AADSTS99999999: unknown", "oauth_client_secret" },
	{ "something_else", NULL, NULL },
	{ "something_else", "AADSTS12345: nothing known", NULL },
	{ NULL, NULL, NULL },
	{ "something_else", "AADSTS", NULL },
};

START_TEST(test_hints)
{
	const char *h;

	h = oauth_error_hint(hints[_i].error, hints[_i].description);
	if (hints[_i].want == NULL) {
		ck_assert_msg(h == NULL, "case %d: unexpected hint %s", _i, h);
		return;
	}
	ck_assert_msg(h != NULL, "case %d: no hint", _i);
	ck_assert_msg(strstr(h, hints[_i].want) != NULL,
	    "case %d: \"%s\" lacks \"%s\"", _i, h, hints[_i].want);
}
END_TEST

/* --- the fault injector --------------------------------------------------- */

/*
 * The fault injector: a child process on 127.0.0.1 that serves a fixed list
 * of canned HTTP responses, one connection each.  It reads one request,
 * records it to DIR/req-N before answering (so the record is complete once
 * the client has its answer), and exits after the last response.  A
 * response of NULL means "accept, read, never answer" (for timeouts); one
 * beginning "STALL:" is sent without that prefix and the connection then
 * held open without another byte.
 */
struct injector {
	pid_t	 pid;
	int	 port;
	char	*url;
};

/* Read one HTTP request (headers and Content-Length body) from fd, or
 * through tls on it when tls is not NULL. */
static char *
read_request(int fd, gnutls_session_t tls, size_t *len_r)
{
	char *buf = xmalloc(65536), *hdr_end, *cl;
	size_t len = 0, want = 0;
	ssize_t n;
	struct pollfd pfd;

	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if ((tls == NULL || gnutls_record_check_pending(tls) == 0) &&
		    poll(&pfd, 1, 3000) <= 0)
			break;
		n = tls != NULL ? gnutls_record_recv(tls, buf + len,
		    65535 - len) : read(fd, buf + len, 65535 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		if (hdr_end == NULL)
			continue;
		if (want == 0) {
			want = (size_t)(hdr_end + 4 - buf);
			cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl != NULL && cl < hdr_end)
				want += strtoul(cl + 17, NULL, 10);
		}
		if (len >= want || len == 65535)
			break;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* Record what connection i brought (req-i under the test directory). */
static void
record_request(const char *rec_dir, size_t i, const char *req, size_t len)
{
	char *path;
	int out;

	path = xasprintf("%s/req-%zu", rec_dir, i);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out >= 0) {
		if (write_full(out, req, len) < 0)
			_exit(1);
		close(out);
	}
	free(path);
}

/* The injector's child: serve responses[0..n-1], then exit. */
static void
injector_serve(int lfd, const char *rec_dir, const char *const *responses,
    size_t n, int delay_ms)
{
	struct pollfd pfd;
	char *req;
	size_t i, len;
	int fd;

	for (i = 0; i < n; i++) {
		pfd.fd = lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 15000) <= 0)	/* slow_down: 6 s */
			_exit(1);
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(1);
		req = read_request(fd, NULL, &len);
		record_request(rec_dir, i + 1, req, len);
		free(req);
		if (delay_ms > 0)
			usleep((useconds_t)delay_ms * 1000);
		if (responses[i] == NULL) {
			/* Never answer: hold the connection until killed. */
			pause();
			_exit(0);
		}
		if (strncmp(responses[i], "STALL:", 6) == 0) {
			/* Answer in part, then hold the connection. */
			if (write_full(fd, responses[i] + 6,
			    strlen(responses[i] + 6)) < 0)
				_exit(1);
			pause();
			_exit(0);
		}
		if (write_full(fd, responses[i], strlen(responses[i])) < 0)
			_exit(1);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	_exit(0);
}

/* A socket listening on 127.0.0.1, its port in *port_r. */
static int
listen_loopback(int *port_r)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int lfd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	*port_r = ntohs(sin.sin_port);
	return lfd;
}

/* Start the fault injector serving n responses. */
static void
injector_start(struct injector *fi, const char *const *responses, size_t n,
    int delay_ms)
{
	int lfd;

	lfd = listen_loopback(&fi->port);
	fi->url = xasprintf("http://127.0.0.1:%d/tenant/oauth2/v2.0/token",
	    fi->port);
	fi->pid = fork();
	ck_assert_int_ge(fi->pid, 0);
	if (fi->pid == 0)
		injector_serve(lfd, dir, responses, n, delay_ms);
	close(lfd);
}

/* The https injector's child: connection i is served with certs[i]; a
 * request gets response, a connection that sends nothing is recorded
 * empty. */
static void
tls_injector_serve(int lfd, const char *rec_dir,
    const struct tcert *const *certs, size_t n, const char *response)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t tls;
	gnutls_x509_crt_t crt;
	struct pollfd pfd;
	char *req;
	size_t i, len;
	int fd, r;

	for (i = 0; i < n; i++) {
		pfd.fd = lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 15000) <= 0)
			_exit(1);
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			_exit(1);
		crt = certs[i]->crt;
		if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
		    gnutls_certificate_set_x509_key(cred, &crt, 1,
		    certs[i]->key) < 0 ||
		    gnutls_init(&tls, GNUTLS_SERVER) < 0 ||
		    gnutls_set_default_priority(tls) < 0 ||
		    gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE,
		    cred) < 0)
			_exit(1);
		gnutls_transport_set_int(tls, fd);
		gnutls_handshake_set_timeout(tls, 5000);
		do {
			r = gnutls_handshake(tls);
		} while (r < 0 && !gnutls_error_is_fatal(r));
		len = 0;
		req = r < 0 ? xstrdup("") : read_request(fd, tls, &len);
		record_request(rec_dir, i + 1, req, len);
		if (len > 0) {
			if (gnutls_record_send(tls, response,
			    strlen(response)) < 0)
				_exit(1);
			gnutls_bye(tls, GNUTLS_SHUT_WR);
		}
		free(req);
		gnutls_deinit(tls);
		gnutls_certificate_free_credentials(cred);
		close(fd);
	}
	_exit(0);
}

/* Start the https injector for n connections (see tls_injector_serve). */
static void
tls_injector_start(struct injector *fi, const struct tcert *const *certs,
    size_t n, const char *response)
{
	int lfd;

	lfd = listen_loopback(&fi->port);
	fi->url = xasprintf("https://127.0.0.1:%d/tenant/oauth2/v2.0/token",
	    fi->port);
	fi->pid = fork();
	ck_assert_int_ge(fi->pid, 0);
	if (fi->pid == 0)
		tls_injector_serve(lfd, dir, certs, n, response);
	close(lfd);
}

/* Stop the fault injector (it may have exited already). */
static void
injector_stop(struct injector *fi)
{
	kill(fi->pid, SIGKILL);
	waitpid(fi->pid, NULL, 0);
	free(fi->url);
}

/* The n-th request the injector recorded, or NULL. */
static char *
recorded(int n)
{
	char *path, *data = NULL;
	size_t len;

	path = xasprintf("%s/req-%d", dir, n);
	if (read_small_file(path, 1 << 20, &data, &len) < 0)
		data = NULL;
	free(path);
	return data;
}

/* A canned HTTP response. */
static char *
http_response(int status, const char *type, const char *body)
{
	return xasprintf("HTTP/1.1 %d X\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, type,
	    strlen(body), body);
}

/* A canned 200 carrying token with lifetime expires_in. */
static char *
token_response(const char *token, long expires_in)
{
	char *body, *resp;

	body = xasprintf("{\"token_type\":\"Bearer\",\"expires_in\":%ld,"
	    "\"ext_expires_in\":%ld,\"access_token\":\"%s\"}", expires_in,
	    expires_in, token);
	resp = http_response(200, "application/json; charset=utf-8", body);
	free(body);
	return resp;
}

/* A request for the injector, with the cache under the test directory. */
static void
make_request(struct oauth_request *req, const struct injector *fi,
    const struct pm_secret *secret, char *cache_dir, int client_auth)
{
	memset(req, 0, sizeof *req);
	req->token_url = fi->url;
	req->client_id = CLIENT_ID;
	req->client_secret = secret;
	req->scope = SCOPE;
	req->client_auth = client_auth;
	req->cache_dir = cache_dir;
	req->timeout = 5;
	req->account = "test";
}

/* Whether the form body of request contains exactly the field f. */
static int
has_field(const char *request, const char *f)
{
	const char *body = strstr(request, "\r\n\r\n"), *p;
	size_t n = strlen(f);

	if (body == NULL)
		return 0;
	for (p = body + 4; p != NULL; p = strchr(p, '&')) {
		if (*p == '&')
			p++;
		if (strncmp(p, f, n) == 0 && (p[n] == '&' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

/* Base64 (RFC 4648) of s, for the expected Basic credentials. */
static char *
b64(const char *s)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), i;
	char *out, *o;
	const unsigned char *u = (const unsigned char *)s;

	out = o = xmalloc(n / 3 * 4 + 5);
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tab[u[i] >> 2];
		*o++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
		*o++ = tab[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
		*o++ = tab[u[i + 2] & 63];
	}
	if (n - i == 1) {
		*o++ = tab[u[i] >> 2];
		*o++ = tab[(u[i] & 3) << 4];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		*o++ = tab[u[i] >> 2];
		*o++ = tab[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
		*o++ = tab[(u[i + 1] & 15) << 2];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Assert that neither the secret nor a token shows in a message. */
static void
assert_clean(const char *msg)
{
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, SECRET) == NULL, "secret in \"%s\"", msg);
	ck_assert_msg(strstr(msg, SECRET_FORM) == NULL, "secret in \"%s\"",
	    msg);
	ck_assert_msg(strstr(msg, "tokenA") == NULL, "token in \"%s\"", msg);
	ck_assert_msg(strstr(msg, "tokenB") == NULL, "token in \"%s\"", msg);
}

START_TEST(test_get_post_cache_invalidate)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	struct stat sb;
	char *resp[2], *cache, *path, *rq, *data, *key;
	size_t len;
	int cached = -1;
	char *err = NULL;

	resp[0] = token_response(TOKEN_A, 3599);
	resp[1] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	cache = xasprintf("%s/cache/tokens", dir);
	make_request(&req, &fi, secret, cache, OAUTH_CLIENT_POST);

	/* First call: from the endpoint, with the right form. */
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 0);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	rq = recorded(1);
	ck_assert_ptr_nonnull(rq);
	ck_assert(starts_with(rq,
	    "POST /tenant/oauth2/v2.0/token HTTP/1.1\r\n"));
	ck_assert(strcasestr(rq, "\r\nContent-Type: "
	    "application/x-www-form-urlencoded\r\n") != NULL);
	ck_assert(has_field(rq, "grant_type=client_credentials"));
	ck_assert(has_field(rq, "client_id=" CLIENT_ID));
	ck_assert(has_field(rq, "client_secret=" SECRET_FORM));
	ck_assert(has_field(rq, "scope=" SCOPE_FORM));
	ck_assert(strcasestr(rq, "\r\nAuthorization:") == NULL);
	free(rq);

	/* The cache: 0600 in a 0700 directory, keyed by URL, client, scope. */
	path = oauth_cache_path(&req);
	ck_assert_ptr_nonnull(path);
	ck_assert_int_eq(stat(cache, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(read_small_file(path, 65536, &data, &len), 0);
	key = xasprintf("\"key\":\"%s\\n%s\\n%s\"", fi.url, CLIENT_ID, SCOPE);
	/* json-c escapes '/' as "\/": compare without the escapes. */
	{
		char *s, *d;

		for (s = d = data; *s != '\0'; s++) {
			if (s[0] == '\\' && s[1] == '/')
				continue;
			*d++ = *s;
		}
		*d = '\0';
	}
	ck_assert_msg(strstr(data, key) != NULL, "cache %s lacks %s", data,
	    key);
	ck_assert(strstr(data, TOKEN_A) != NULL);
	ck_assert(strstr(data, "\"expires_at\":") != NULL);
	ck_assert(strstr(data, SECRET) == NULL);
	free(key);
	free(data);

	/* Second call: from the cache, no request. */
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 1);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	rq = recorded(2);
	ck_assert_ptr_null(rq);

	/* Invalidate: the file goes, the next call asks again. */
	oauth_invalidate(&req, NULL);
	ck_assert_int_eq(stat(path, &sb), -1);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 0);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
	secret_free(tok);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "client_secret=" SECRET_FORM));
	free(rq);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_ptr_null(err);

	injector_stop(&fi);
	free(path);
	free(cache);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_basic)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	char *resp[1], *rq, *want, *creds;
	int cached = -1;
	char *err = NULL;
	mode_t old;

	/* A wide umask must not widen the cache file. */
	old = umask(0);
	resp[0] = token_response(TOKEN_A, 60);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_BASIC);
	req.scope = NULL;

	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	rq = recorded(1);
	ck_assert_ptr_nonnull(rq);
	creds = b64(CLIENT_ID ":" SECRET_FORM);
	want = xasprintf("\r\nAuthorization: Basic %s\r\n", creds);
	ck_assert_msg(strstr(rq, want) != NULL, "no %s in %s", want, rq);
	ck_assert(has_field(rq, "grant_type=client_credentials"));
	ck_assert(strstr(rq, "client_secret") == NULL);
	ck_assert(strstr(rq, "client_id") == NULL);
	ck_assert(strstr(rq, "scope=") == NULL);
	free(rq);

	/* A 60 s token is still reused (margin: half its lifetime). */
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 1);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	{
		struct stat sb;
		char *path = oauth_cache_path(&req);

		ck_assert_int_eq(stat(path, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 0777, 0600);
		free(path);
	}
	umask(old);
	injector_stop(&fi);
	free(want);
	free(creds);
	free(resp[0]);
	secret_free(secret);
}
END_TEST

/* Write a cache file for req by hand. */
static void
write_cache(const struct oauth_request *req, const char *text)
{
	char *path;
	FILE *f;

	path = oauth_cache_path(req);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

/* Cache files that must not be used, given the request's key. */
enum cache_case {
	CACHE_CORRUPT,
	CACHE_FOREIGN_KEY,
	CACHE_EXPIRING,
	CACHE_NO_TOKEN,
	CACHE_USABLE_SHORT,	/* the one that must be used */
	CACHE_NCASES
};

START_TEST(test_cache_files)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	char *resp[1], *text = NULL, *rq;
	long now = (long)time(NULL);
	int cached = -1;
	char *err = NULL;

	resp[0] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);

	switch (_i) {
	case CACHE_CORRUPT:
		text = xasprintf("{\"key\":\"%s\\n%s\\n%s\",\"access_to",
		    fi.url, CLIENT_ID, SCOPE);
		break;
	case CACHE_FOREIGN_KEY:
		text = xasprintf("{\"key\":\"%s\\nother-client\\n%s\","
		    "\"access_token\":\"%s\",\"expires_at\":%ld}", fi.url,
		    SCOPE, TOKEN_A, now + 3000);
		break;
	case CACHE_EXPIRING:
		/* An hour-long token, 200 s left: under the 300 s margin. */
		text = xasprintf("{\"key\":\"%s\\n%s\\n%s\",\"access_token\":"
		    "\"%s\",\"obtained_at\":%ld,\"expires_at\":%ld}", fi.url,
		    CLIENT_ID, SCOPE, TOKEN_A, now - 3400, now + 200);
		break;
	case CACHE_NO_TOKEN:
		text = xasprintf("{\"key\":\"%s\\n%s\\n%s\",\"access_token\":"
		    "\"\",\"expires_at\":%ld}", fi.url, CLIENT_ID, SCOPE,
		    now + 3000);
		break;
	case CACHE_USABLE_SHORT:
		/* A 400 s token with 200 s left: margin 200 s, still good. */
		text = xasprintf("{\"key\":\"%s\\n%s\\n%s\",\"access_token\":"
		    "\"%s\",\"obtained_at\":%ld,\"expires_at\":%ld}", fi.url,
		    CLIENT_ID, SCOPE, TOKEN_A, now - 200, now + 200);
		break;
	}
	write_cache(&req, text);

	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	rq = recorded(1);
	if (_i == CACHE_USABLE_SHORT) {
		ck_assert_int_eq(cached, 1);
		ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
		ck_assert_ptr_null(rq);
	} else {
		ck_assert_int_eq(cached, 0);
		ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
		ck_assert_ptr_nonnull(rq);
	}
	free(rq);
	secret_free(tok);
	injector_stop(&fi);
	free(text);
	free(resp[0]);
	secret_free(secret);
}
END_TEST

/* Failures against the injector: each response, its class, its words. */
static const struct {
	int status;		/* HTTP status of the canned answer */
	const char *type;
	const char *body;
	int want;
	const char *words[3];
} failures[] = {
	{ 401, "application/json", "{\"error\":\"invalid_client\","
	    "\"error_description\":\"AADSTS7000215: Invalid client secret "
	    "provided. Ensure the secret being sent in the request is the "
	    "client secret value, not the client secret ID.\\r\\nTrace ID: "
	    "abc\\r\\nCorrelation ID: def\",\"error_codes\":[7000215]}",
	    PM_EAUTH, { "invalid_client: AADSTS7000215",
	    "hint: the client secret is wrong", NULL } },
	{ 400, "application/json", "{\"error\":\"invalid_request\","
	    "\"error_description\":\"AADSTS90002: Tenant 'contoso' not "
	    "found.\"}", PM_EAUTH, { "Tenant 'contoso' not found",
	    "check oauth_tenant", NULL } },
	/* A server that echoes the secret must not get it into the error. */
	{ 401, "application/json", "{\"error\":\"invalid_client\","
	    "\"error_description\":\"bad secret " SECRET "\"}", PM_EAUTH,
	    { "bad secret <redacted>", NULL, NULL } },
	{ 400, "text/plain", "nope", PM_EPROTO, { "400", NULL, NULL } },
	{ 302, "text/plain", "", PM_EPROTO, { "redirect", NULL, NULL } },
	{ 200, "application/json", "{\"access_token\":\"tokenA\","
	    "\"token_type\":\"mac\",\"expires_in\":60}", PM_EPROTO,
	    { "Bearer", NULL, NULL } },
};

START_TEST(test_get_failures)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	struct stat sb;
	char *resp[2], *path;
	int cached = -1, k, rc;
	char *err = NULL;

	resp[0] = http_response(failures[_i].status, failures[_i].type,
	    failures[_i].body);
	if (failures[_i].status == 302) {
		char *loc = xasprintf("HTTP/1.1 302 Found\r\nLocation: "
		    "http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n");

		free(resp[0]);
		resp[0] = loc;
	}
	resp[1] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);

	rc = oauth_get_token(&req, &tok, &cached, &err);
	ck_assert_msg(rc == failures[_i].want, "case %d: %d (%s)", _i, rc,
	    err != NULL ? err : "");
	ck_assert_ptr_null(tok);
	ck_assert_int_eq(cached, 0);
	assert_clean(err);
	for (k = 0; k < 3 && failures[_i].words[k] != NULL; k++)
		ck_assert_msg(strstr(err, failures[_i].words[k]) != NULL,
		    "case %d: \"%s\" lacks \"%s\"", _i, err,
		    failures[_i].words[k]);
	ck_assert(!has_control(err));
	/* Nothing was cached, and the redirect was not followed. */
	path = oauth_cache_path(&req);
	ck_assert_int_eq(stat(path, &sb), -1);
	free(path);
	free(err);
	err = NULL;

	/* The next run tries again and gets a token. */
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
	ck_assert_int_eq(cached, 0);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_refused)
{
	struct oauth_request req;
	struct injector fi;
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct pm_secret *secret, *tok = NULL;
	int fd, cached = -1;
	char *err = NULL;

	/* A port that was just free: nothing listens there. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	close(fd);
	fi.url = xasprintf("http://127.0.0.1:%d/token", ntohs(sin.sin_port));
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);

	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_ETEMP);
	ck_assert_ptr_null(tok);
	assert_clean(err);
	ck_assert_msg(strstr(err, fi.url) != NULL, "no URL in %s", err);
	free(err);
	free(fi.url);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_timeout)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	const char *resp[1] = { NULL };
	time_t t0;
	int cached = -1;
	char *err = NULL;

	injector_start(&fi, resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	req.timeout = 1;
	t0 = time(NULL);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_ETEMP);
	ck_assert_int_le(time(NULL) - t0, 3);
	ck_assert_ptr_null(tok);
	assert_clean(err);
	ck_assert(strstr(err, fi.url) != NULL);
	free(err);
	injector_stop(&fi);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_two_processes)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	char *resp[1], *rq;
	pid_t pid;
	int cached = -1, st, other_cached;
	char *err = NULL;

	/* One slow answer: the second process must wait for the first's
	 * token instead of asking the endpoint itself. */
	resp[0] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 1, 300);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (oauth_get_token(&req, &tok, &cached, &err) != PM_OK ||
		    strcmp(secret_reveal(tok), TOKEN_A) != 0)
			_exit(2);
		_exit(cached);
	}
	usleep(100 * 1000);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	other_cached = WEXITSTATUS(st);
	ck_assert_int_ne(other_cached, 2);
	ck_assert_int_eq(cached + other_cached, 1);
	rq = recorded(2);
	ck_assert_ptr_null(rq);
	injector_stop(&fi);
	free(resp[0]);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_debug_log_redacted)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	char *resp[1], *logpath, *logtext, *creds;
	size_t len;
	int cached = -1, fd, saved;
	char *err = NULL;

	resp[0] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_BASIC);

	/* -vv: libcurl's dialogue goes to the log, redacted. */
	logpath = xasprintf("%s/log", dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 2, 0, 0);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	log_init("pullmail", 0, 0, 0);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	secret_free(tok);

	ck_assert_int_eq(read_small_file(logpath, 1 << 20, &logtext, &len),
	    0);
	creds = b64(CLIENT_ID ":" SECRET_FORM);
	ck_assert_msg(strstr(logtext, "Authorization: <redacted>") != NULL,
	    "log: %s", logtext);
	ck_assert(strstr(logtext, "POST /tenant/oauth2/v2.0/token") != NULL);
	ck_assert(strstr(logtext, creds) == NULL);
	ck_assert(strstr(logtext, SECRET) == NULL);
	ck_assert(strstr(logtext, SECRET_FORM) == NULL);
	ck_assert(strstr(logtext, "tokenA") == NULL);
	free(logtext);
	free(creds);
	free(logpath);
	injector_stop(&fi);
	free(resp[0]);
	secret_free(secret);
}
END_TEST

/* --- retries of transient failures (fault injector) ------------------------ */

/* A canned response with extra header lines. */
static char *
http_response_hdr(int status, const char *hdr, const char *body)
{
	return xasprintf("HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
	    "%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
	    hdr, strlen(body), body);
}

/* Milliseconds of the monotonic clock. */
static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* 503, then a token: retried after a backoff, and the token is used. */
START_TEST(test_retry_503_then_success)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[2], *err = NULL, *rq;
	int cached = -1;
	long t0;

	resp[0] = http_response(503, "text/html", "<html>busy</html>");
	resp[1] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_ge(now_ms() - t0, 1000);	/* backed off */
	ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "grant_type=client_credentials"));
	free(rq);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

/* 429 with Retry-After: waits that long, then succeeds. */
START_TEST(test_retry_429_retry_after)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[2], *err = NULL;
	int cached = -1;
	long t0;

	resp[0] = http_response_hdr(429, "Retry-After: 2\r\n",
	    "{\"error\":\"temporarily_unavailable\"}");
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	req.timeout = 10;
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_ge(now_ms() - t0, 2000);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

/* A Retry-After beyond the budget: temporary failure at once, one try. */
START_TEST(test_retry_after_too_long)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[2], *err = NULL, *rq;
	int cached = -1;
	long t0;

	resp[0] = http_response_hdr(429, "Retry-After: 3600\r\n",
	    "{\"error\":\"temporarily_unavailable\"}");
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_ETEMP);
	ck_assert_int_lt(now_ms() - t0, 1000);
	ck_assert_ptr_null(tok);
	assert_clean(err);
	ck_assert_ptr_nonnull(strstr(err, "temporarily_unavailable"));
	rq = recorded(2);
	ck_assert_ptr_null(rq);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

/* 503 every time: a few tries within half the timeout, then temporary. */
START_TEST(test_retry_gives_up)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[3], *err = NULL;
	int cached = -1;
	long t0;

	resp[0] = resp[1] = resp[2] = http_response(503, "text/plain", "no");
	injector_start(&fi, (const char *const *)resp, 3, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	req.timeout = 20;
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_ETEMP);
	ck_assert_int_le(now_ms() - t0, 10000);
	ck_assert_ptr_nonnull(strstr(err, "503"));
	assert_clean(err);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	secret_free(secret);
}
END_TEST

/* Malformed JSON with 200: a protocol error, not retried. */
START_TEST(test_malformed_not_retried)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[2], *err = NULL, *rq;
	int cached = -1;

	resp[0] = http_response(200, "application/json",
	    "{\"access_token\":\"tokenA\",\"token_type\":");
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "malformed"));
	ck_assert_ptr_null(strstr(err, "tokenA"));
	rq = recorded(2);
	ck_assert_ptr_null(rq);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

/* --- the delegated token store (fault injector as the token endpoint) ------ */

/* Write a store holding refresh token rt (no access token) for req. */
static void
seed_store(const struct oauth_request *req, const char *rt)
{
	char *path, *text;
	int fd;

	ck_assert_int_eq(mkdir_p(req->cache_dir, 0700), 0);
	path = oauth_store_path(req);
	text = xasprintf("{\"key\":\"%s\\n%s\",\"refresh_token\":\"%s\"}",
	    req->token_url, req->client_id, rt);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, text, strlen(text)), 0);
	close(fd);
	free(text);
	free(path);
}

/* The store's text. */
static char *
store_text(const struct oauth_request *req)
{
	char *path, *data = NULL;
	size_t len;

	path = oauth_store_path(req);
	if (read_small_file(path, 1 << 20, &data, &len) < 0)
		data = NULL;
	free(path);
	return data;
}

/* A 200 with an access and a refresh token. */
static char *
rotated_response(const char *token, const char *rt, long expires_in)
{
	char *body, *resp;

	body = xasprintf("{\"token_type\":\"Bearer\",\"expires_in\":%ld,"
	    "\"access_token\":\"%s\",\"refresh_token\":\"%s\"}",
	    expires_in, token, rt);
	resp = http_response(200, "application/json", body);
	free(body);
	return resp;
}

/* Refresh with rotation: the new refresh token is stored and used next. */
START_TEST(test_delegated_rotation)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *tok = NULL;
	char *resp[2], *err = NULL, *rq, *text, *cache;
	int cached = -1;

	resp[0] = rotated_response(TOKEN_A, "refresh-two", 3599);
	resp[1] = rotated_response(TOKEN_B, "refresh-three", 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.scope = "imap offline_access";
	seed_store(&req, "refresh-one");

	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 0);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	rq = recorded(1);
	ck_assert(has_field(rq, "grant_type=refresh_token"));
	ck_assert(has_field(rq, "refresh_token=refresh-one"));
	ck_assert(has_field(rq, "client_id=" CLIENT_ID));
	ck_assert(has_field(rq, "scope=imap+offline_access"));
	free(rq);
	text = store_text(&req);
	ck_assert_ptr_nonnull(strstr(text, "\"refresh-two\""));
	ck_assert_ptr_null(strstr(text, "refresh-one"));
	free(text);

	/* Still fresh: from the store, no request. */
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 1);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);

	/* Rejected by the server: the access token goes, the refresh
	 * token stays, and the rotated one is what is sent next. */
	oauth_invalidate(&req, NULL);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 0);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
	secret_free(tok);
	rq = recorded(2);
	ck_assert(has_field(rq, "refresh_token=refresh-two"));
	free(rq);
	text = store_text(&req);
	ck_assert_ptr_nonnull(strstr(text, "\"refresh-three\""));
	free(text);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(cache);
}
END_TEST

/* An executable DIR/notify.sh appending the output of `echo ECHO_ARGS` to
 * out; the notify_command running it (malloc'd). */
static char *
notify_script(const char *echo_args, const char *out)
{
	char *script, *text, *cmd;
	int fd;

	script = xasprintf("%s/notify.sh", dir);
	text = xasprintf("#!/bin/sh\necho %s >>%s\n", echo_args, out);
	fd = open(script, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, text, strlen(text)), 0);
	close(fd);
	free(text);
	cmd = xasprintf("/bin/sh %s", script);
	free(script);
	return cmd;
}

/* invalid_grant: a human must act; notify_command runs once per event. */
START_TEST(test_delegated_invalid_grant_notify)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *tok = NULL;
	char *resp[3], *err = NULL, *cache, *cmd, *out, *text;
	size_t len;
	int cached = -1, i;

	resp[0] = resp[1] = http_response(400, "application/json",
	    "{\"error\":\"invalid_grant\",\"error_description\":"
	    "\"AADSTS700082: The refresh token has expired due to "
	    "inactivity.\"}");
	resp[2] = rotated_response(TOKEN_A, "refresh-new", 3599);
	injector_start(&fi, (const char *const *)resp, 3, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_AUTH_CODE;
	out = xasprintf("%s/notified", dir);
	/* The message comes in the environment only: no arguments. */
	cmd = notify_script("\"$PULLMAIL_ACCOUNT $# $PULLMAIL_MESSAGE\"", out);
	req.notify_command = cmd;
	seed_store(&req, "refresh-old");

	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
		    PM_EAUTH);
		ck_assert_ptr_null(tok);
		ck_assert_msg(strstr(err, "a human must act") != NULL &&
		    strstr(err, "invalid_grant") != NULL &&
		    strstr(err, "run: pullmail authorize test") != NULL,
		    "%s", err);
		ck_assert_msg(strstr(err, "AADSTS700082") != NULL &&
		    strstr(err, "expired after a long time unused") != NULL &&
		    strstr(err, "oauth_tenant") == NULL, "%s", err);
		ck_assert_ptr_null(strstr(err, "refresh-old"));
		ck_assert(!has_control(err));
		free(err);
		err = NULL;
	}
	ck_assert_int_eq(read_small_file(out, 4096, &text, &len), 0);
	ck_assert_msg(strncmp(text, "test 0 a human must act", 23) == 0 &&
	    strchr(text, '\n') == text + len - 1, "notified: %s", text);
	free(text);
	/* Success resets the flag. */
	seed_store(&req, "refresh-fixed");
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	secret_free(tok);
	text = xasprintf("%s/notified-", cache);
	free(text);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[2]);
	free(cache);
	free(cmd);
	free(out);
}
END_TEST

/* The token endpoint down while the stored access token still works. */
START_TEST(test_delegated_endpoint_down)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *tok = NULL;
	char *resp[3], *err = NULL, *cache, *path, *text;
	time_t now = time(NULL);
	int cached = -1, fd;

	resp[0] = resp[1] = resp[2] = http_response(503, "text/plain", "down");
	injector_start(&fi, (const char *const *)resp, 3, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	ck_assert_int_eq(mkdir_p(cache, 0700), 0);
	path = oauth_store_path(&req);
	/* Due for a refresh (under 5 minutes left), not expired. */
	text = xasprintf("{\"key\":\"%s\\n%s\",\"refresh_token\":\"rt\","
	    "\"access_token\":\"%s\",\"obtained_at\":%lld,"
	    "\"expires_at\":%lld}", req.token_url, req.client_id, TOKEN_A,
	    (long long)now - 3500, (long long)now + 100);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write_full(fd, text, strlen(text)), 0);
	close(fd);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	ck_assert_int_eq(cached, 1);
	secret_free(tok);
	free(text);
	free(path);
	injector_stop(&fi);
	free(resp[0]);
	free(cache);
}
END_TEST

/* No store: a human must act, and nothing is sent. */
START_TEST(test_delegated_no_store)
{
	struct oauth_request req;
	struct injector fi;
	struct pm_secret *tok = NULL;
	char *err = NULL, *cache;
	int cached = -1;

	fi.url = xstrdup("http://127.0.0.1:1/token");
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_EAUTH);
	ck_assert_str_eq(err, "a human must act: no authorization is "
	    "stored; run: pullmail authorize test");
	free(err);
	free(cache);
	free(fi.url);
}
END_TEST

/* A corrupt or foreign store is not used. */
START_TEST(test_delegated_foreign_store)
{
	struct oauth_request req;
	struct injector fi;
	struct pm_secret *tok = NULL;
	char *err = NULL, *cache;
	int cached = -1;

	fi.url = xstrdup("http://127.0.0.1:1/token");
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	seed_store(&req, "rt");
	req.client_id = "another-client";
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_EAUTH);
	ck_assert_ptr_nonnull(strstr(err, "another token URL or client"));
	free(err);
	err = NULL;
	req.client_id = CLIENT_ID;
	seed_store(&req, "bad token with spaces");
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_EAUTH);
	ck_assert_ptr_nonnull(strstr(err, "corrupt"));
	free(err);
	free(cache);
	free(fi.url);
}
END_TEST

/* Run oauth_authorize with stdout in dir/out; its text in *out_r. */
static int
authorize_captured(const struct oauth_request *req, char **out_r,
    char **err)
{
	char *path;
	size_t len;
	int fd, saved, rc;

	path = xasprintf("%s/out", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	rc = oauth_authorize(req, err);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(path, 1 << 16, out_r, &len), 0);
	free(path);
	return rc;
}

#define DEVICE_ANSWER \
	"{\"device_code\":\"dc-secret\",\"user_code\":\"WDJB-MJHT\"," \
	"\"verification_uri\":\"https://login.example/device\"," \
	"\"expires_in\":30,\"interval\":1,\"message\":\"To sign in, use " \
	"a web browser\\u001b[31m to open the page.\"}"

/* The device flow against the fault injector: pending, then expired. */
START_TEST(test_device_expired)
{
	struct injector fi;
	struct oauth_request req;
	char *resp[3], *err = NULL, *out, *rq, *cache;

	resp[0] = http_response(200, "application/json", DEVICE_ANSWER);
	resp[1] = http_response(400, "application/json",
	    "{\"error\":\"authorization_pending\"}");
	resp[2] = http_response(400, "application/json",
	    "{\"error\":\"expired_token\"}");
	injector_start(&fi, (const char *const *)resp, 3, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.device_url = fi.url;
	req.scope = "imap offline_access";
	ck_assert_int_eq(authorize_captured(&req, &out, &err), PM_EAUTH);
	ck_assert_msg(strstr(out, "open https://login.example/device and "
	    "enter the code WDJB-MJHT\n") != NULL, "%s", out);
	/* The server's message, without its control characters. */
	ck_assert_ptr_nonnull(strstr(out, "a web browser[31m to open"));
	ck_assert_ptr_null(strstr(out, "dc-secret"));
	ck_assert_ptr_nonnull(strstr(err, "expired"));
	ck_assert_ptr_nonnull(strstr(err, "pullmail authorize test"));
	rq = recorded(1);
	ck_assert(has_field(rq, "scope=imap+offline_access"));
	ck_assert(has_field(rq, "client_id=" CLIENT_ID));
	free(rq);
	rq = recorded(3);
	ck_assert(has_field(rq, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
	    "grant-type%3Adevice_code"));
	ck_assert(has_field(rq, "device_code=dc-secret"));
	free(rq);
	free(out);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(resp[2]);
	free(cache);
}
END_TEST

/* slow_down adds 5 s to the polling interval (RFC 8628 3.5); then the
 * tokens are stored. */
START_TEST(test_device_slow_down)
{
	struct injector fi;
	struct oauth_request req;
	char *resp[3], *err = NULL, *out, *cache, *text;
	long t0;

	resp[0] = http_response(200, "application/json", DEVICE_ANSWER);
	resp[1] = http_response(400, "application/json",
	    "{\"error\":\"slow_down\"}");
	resp[2] = rotated_response(TOKEN_A, "refresh-device", 3599);
	injector_start(&fi, (const char *const *)resp, 3, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.device_url = fi.url;
	t0 = now_ms();
	ck_assert_int_eq(authorize_captured(&req, &out, &err), PM_OK);
	ck_assert_int_ge(now_ms() - t0, 7000);	/* 1 s, then 1 + 5 s */
	ck_assert_ptr_nonnull(strstr(out, "test: authorized"));
	ck_assert_ptr_null(strstr(out, "refresh-device"));
	text = store_text(&req);
	ck_assert_ptr_nonnull(strstr(text, "\"refresh-device\""));
	free(text);
	free(out);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(resp[2]);
	free(cache);
}
END_TEST

/* A token without a refresh token is useless to a delegated account. */
START_TEST(test_device_no_refresh_token)
{
	struct injector fi;
	struct oauth_request req;
	char *resp[2], *err = NULL, *out, *cache, *path;
	struct stat sb;

	resp[0] = http_response(200, "application/json", DEVICE_ANSWER);
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.device_url = fi.url;
	ck_assert_int_eq(authorize_captured(&req, &out, &err), PM_EAUTH);
	ck_assert_ptr_nonnull(strstr(err, "no refresh token"));
	path = oauth_store_path(&req);
	ck_assert_int_eq(stat(path, &sb), -1);
	free(path);
	free(out);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(cache);
}
END_TEST

/* Malformed device authorization answers are refused. */
START_TEST(test_device_malformed)
{
	static const char *const bodies[] = {
		"{\"user_code\":\"A\",\"verification_uri\":\"https://x\"}",
		"{\"device_code\":\"d c\",\"user_code\":\"A\","
		    "\"verification_uri\":\"https://x\"}",
		"{\"device_code\":\"d\",\"user_code\":1,"
		    "\"verification_uri\":\"https://x\"}",
		"{\"device_code\":\"d\"",
		"[]",
	};
	struct injector fi;
	struct oauth_request req;
	char *resp[1], *err = NULL, *out, *cache;

	resp[0] = http_response(200, "application/json", bodies[_i]);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.device_url = fi.url;
	ck_assert_int_eq(authorize_captured(&req, &out, &err), PM_EPROTO);
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
	free(cache);
}
END_TEST

/* token --info on a Microsoft-shaped JWT that cannot fit the account. */
START_TEST(test_token_info_warnings)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret;
	char *resp[1], *err = NULL, *jwt, *payload, *outpath, *text;
	size_t len;
	int fd, saved;

	payload = b64("{\"aud\":\"https://graph.microsoft.com\","
	    "\"iss\":\"https://sts.windows.net/tid/\",\"tid\":\"tid\","
	    "\"upn\":\"mallory@example.com\",\"scp\":\"Mail.Read\","
	    "\"exp\":1700000000}");
	for (len = strlen(payload); len > 0 && payload[len - 1] == '='; len--)
		payload[len - 1] = '\0';
	jwt = xasprintf("eyJhbGciOiJub25lIn0.%s.c2ln", payload);
	resp[0] = token_response(jwt, 3599);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);

	outpath = xasprintf("%s/info", dir);
	fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	ck_assert_int_eq(oauth_token_info(&req, "alice@example.test", "imap",
	    &err), PM_EAUTH);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	ck_assert_ptr_nonnull(strstr(err, "3 warnings"));
	ck_assert_int_eq(read_small_file(outpath, 1 << 16, &text, &len), 0);
	ck_assert_msg(strstr(text, "aud: https://graph.microsoft.com") !=
	    NULL && strstr(text, "upn: mallory@example.com") != NULL &&
	    strstr(text, "audience is not Exchange Online") != NULL &&
	    strstr(text, "grants imap access") != NULL &&
	    strstr(text, "the token is mallory@example.com's") != NULL &&
	    strstr(text, "expires: in ") != NULL, "%s", text);
	ck_assert_ptr_null(strstr(text, payload));
	free(text);
	free(err);
	free(outpath);
	injector_stop(&fi);
	free(resp[0]);
	free(jwt);
	free(payload);
	secret_free(secret);
}
END_TEST

START_TEST(test_get_no_cache_dir)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok;
	char *resp[2], *rq;
	int cached = -1;
	char *err = NULL;

	resp[0] = token_response(TOKEN_A, 3599);
	resp[1] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, NULL, OAUTH_CLIENT_POST);
	ck_assert_ptr_null(oauth_cache_path(&req));
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	secret_free(tok);
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err), PM_OK);
	ck_assert_int_eq(cached, 0);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_B);
	secret_free(tok);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	free(rq);
	oauth_invalidate(&req, NULL);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	secret_free(secret);
}
END_TEST

START_TEST(test_cache_key_separates)
{
	struct oauth_request a, b;
	char *pa, *pb;

	memset(&a, 0, sizeof a);
	a.token_url = "https://login.example/t/token";
	a.client_id = "client";
	a.scope = "s";
	a.cache_dir = "/x";
	b = a;
	pa = oauth_cache_path(&a);
	b.scope = NULL;
	pb = oauth_cache_path(&b);
	ck_assert_str_ne(pa, pb);
	free(pb);
	b.scope = "s";
	b.client_id = "client2";
	pb = oauth_cache_path(&b);
	ck_assert_str_ne(pa, pb);
	free(pb);
	b.client_id = "client";
	pb = oauth_cache_path(&b);
	ck_assert_str_eq(pa, pb);
	ck_assert(starts_with(pa, "/x/"));
	free(pa);
	free(pb);
}
END_TEST

/* Run oauth_get_token with stderr (the log, verbosity 1) captured into
 * *log_r; its status. */
static int
get_token_logged(const struct oauth_request *req, struct pm_secret **tok_r,
    char **log_r, char **err)
{
	char *logpath;
	size_t len;
	int cached = -1, fd, saved, rc;

	logpath = xasprintf("%s/log", dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 1, 0, 0);
	rc = oauth_get_token(req, tok_r, &cached, err);
	log_init("pullmail", 0, 0, 0);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(logpath, 1 << 20, log_r, &len), 0);
	free(logpath);
	return rc;
}

/* A 503 whose error text echoes the client secret (client credentials) or
 * the refresh token (refresh grant) is retried: the line logged before the
 * retry has the secret redacted, as has the final error. */
START_TEST(test_retry_log_redacted)
{
	static const char rt[] = "refresh-echo-7f3a9c";
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[2], *err = NULL, *log, *cache;

	resp[0] = http_response(503, "application/json", "{\"error\":"
	    "\"temporarily_unavailable\",\"error_description\":\"busy; "
	    "client_secret=" SECRET "\"}");
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	ck_assert_int_eq(get_token_logged(&req, &tok, &log, &err), PM_OK);
	ck_assert_msg(strstr(log, "trying again") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, "<redacted>") != NULL, "log: %s", log);
	assert_clean(log);
	free(log);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);

	resp[0] = http_response(503, "application/json", "{\"error\":"
	    "\"temporarily_unavailable\",\"error_description\":\"no "
	    "refresh_token=refresh-echo-7f3a9c, client_secret=" SECRET "\"}");
	resp[1] = rotated_response(TOKEN_B, "refresh-next", 3599);
	injector_start(&fi, (const char *const *)resp, 2, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, secret, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	seed_store(&req, rt);
	ck_assert_int_eq(get_token_logged(&req, &tok, &log, &err), PM_OK);
	ck_assert_msg(strstr(log, "trying again") != NULL, "log: %s", log);
	ck_assert_msg(strstr(log, rt) == NULL, "refresh token in %s", log);
	assert_clean(log);
	free(log);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(cache);
	secret_free(secret);
}
END_TEST

/* A token lock held by another process (here: this one, through its own
 * open file) is waited for at most the timeout, then a temporary failure;
 * the endpoint is never asked. */
START_TEST(test_lock_held)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *tok = NULL;
	char *resp[1], *err = NULL, *cache, *path, *lock, *rq;
	long t0;
	int fd;

	resp[0] = rotated_response(TOKEN_A, "refresh-two", 3599);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	cache = xasprintf("%s/tokens", dir);
	make_request(&req, &fi, NULL, cache, OAUTH_CLIENT_POST);
	req.flow = OAUTH_FLOW_DEVICE;
	req.timeout = 1;
	seed_store(&req, "refresh-one");
	path = oauth_store_path(&req);
	lock = xasprintf("%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);

	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, NULL, &err), PM_ETEMP);
	ck_assert_int_ge(now_ms() - t0, 900);
	ck_assert_int_lt(now_ms() - t0, 3000);
	ck_assert_ptr_null(tok);
	ck_assert_msg(strstr(err, "is held by another process") != NULL &&
	    strstr(err, lock) != NULL, "err: %s", err);
	free(err);
	err = NULL;
	rq = recorded(1);
	ck_assert_ptr_null(rq);

	/* Released: the refresh goes through. */
	ck_assert_int_eq(flock(fd, LOCK_UN), 0);
	close(fd);
	ck_assert_int_eq(oauth_get_token(&req, &tok, NULL, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	injector_stop(&fi);
	free(resp[0]);
	free(lock);
	free(path);
	free(cache);
}
END_TEST

/* An oauth_token_command that hangs is stopped after the timeout: a
 * temporary failure naming the command, never quoting its output. */
START_TEST(test_token_command_hangs)
{
	struct oauth_request req;
	struct pm_secret *tok = NULL;
	char *script, *err = NULL;
	long t0;
	int fd;
	static const char text[] = "#!/bin/sh\necho " TOKEN_A "\n"
	    "exec sleep 30\n";

	script = xasprintf("%s/hang.sh", dir);
	fd = open(script, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, text, strlen(text)), 0);
	close(fd);
	memset(&req, 0, sizeof req);
	req.token_command = script;
	req.timeout = 1;
	req.account = "test";
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, NULL, &err), PM_ETEMP);
	ck_assert_int_lt(now_ms() - t0, 4000);
	ck_assert_ptr_null(tok);
	ck_assert_msg(strstr(err, "oauth_token_command: ") != NULL &&
	    strstr(err, "hang.sh did not finish within 1 seconds") != NULL,
	    "err: %s", err);
	assert_clean(err);
	free(err);
	free(script);
}
END_TEST

/* --- the token endpoint over https ---------------------------------------- */

/* Two CAs and a server certificate from each. */
static struct tcert ca1, ca2, leaf1, leaf2;

/* Make the https certificates: per test, since each forks afresh. */
static void
https_setup(void)
{
	time_t now = time(NULL);

	setup();
	tcert_make(&ca1, "CN=token test CA one", 1, NULL, now - 3600,
	    now + 86400, 1);
	tcert_make(&ca2, "CN=token test CA two", 1, NULL, now - 3600,
	    now + 86400, 2);
	tcert_make(&leaf1, "CN=localhost,O=one", 0, &ca1, now - 3600,
	    now + 86400, 3);
	tcert_make(&leaf2, "CN=localhost,O=two", 0, &ca2, now - 3600,
	    now + 86400, 4);
}

static void
https_teardown(void)
{
	tcert_free(&ca1);
	tcert_free(&ca2);
	tcert_free(&leaf1);
	tcert_free(&leaf2);
	teardown();
}

/*
 * Get a token from an https endpoint serving serve[0..n-1] (one per
 * connection, all of which must come), trusting a CA bundle of the
 * certificates in; returns the status, the token checked when there is
 * one.
 */
static int
https_get(const struct tcert *const *in, size_t nin,
    const struct tcert *const *serve, size_t n, char **err)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp, *bundle;
	int cached = -1, r, status;

	bundle = tcert_write_bundle(dir, "bundle.pem", in, nin, 0);
	resp = token_response(TOKEN_A, 3599);
	tls_injector_start(&fi, serve, n, resp);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	req.ca_bundle = bundle;
	r = oauth_get_token(&req, &tok, &cached, err);
	if (r == PM_OK)
		ck_assert_str_eq(secret_reveal(tok), TOKEN_A);
	secret_free(tok);
	/* The child ends after its n connections, all recorded. */
	ck_assert_int_eq(waitpid(fi.pid, &status, 0), fi.pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(fi.url);
	free(resp);
	free(bundle);
	secret_free(secret);
	return r;
}

/* What connection i brought: "" for none, NULL when it never came. */
static void
assert_recorded_empty(int i)
{
	char *rq = recorded(i);

	ck_assert_ptr_nonnull(rq);
	ck_assert_str_eq(rq, "");
	free(rq);
}

/* The request trusts the bundle's CA of the server's chain, learnt from a
 * first connection that sends nothing at all. */
START_TEST(test_https_anchors)
{
	const struct tcert *in[] = { &ca2, &ca1 }, *serve[] = { &leaf1,
	    &leaf1 };
	char *err = NULL, *rq;

	ck_assert_int_eq(https_get(in, 2, serve, 2, &err), PM_OK);
	assert_recorded_empty(1);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "client_secret=" SECRET_FORM));
	free(rq);
}
END_TEST

/* A server whose CA is not in the bundle is refused, and the secret never
 * leaves. */
START_TEST(test_https_untrusted)
{
	const struct tcert *in[] = { &ca2 }, *serve[] = { &leaf1, &leaf1 };
	char *err = NULL;

	ck_assert_int_eq(https_get(in, 1, serve, 2, &err), PM_ETLS);
	ck_assert_msg(strstr(err, "verification failed") != NULL, "%s", err);
	assert_clean(err);
	free(err);
	assert_recorded_empty(1);
	assert_recorded_empty(2);
}
END_TEST

/* The request meets another chain than the first connection saw (a
 * balancer): refused on those anchors, it is made again trusting the
 * whole bundle, the secret sent only over the verified connection. */
START_TEST(test_https_other_chain)
{
	const struct tcert *in[] = { &ca1, &ca2 }, *serve[] = { &leaf1,
	    &leaf2, &leaf2 };
	char *err = NULL, *rq;

	ck_assert_msg(https_get(in, 2, serve, 3, &err) == PM_OK, "%s", err);
	assert_recorded_empty(1);
	assert_recorded_empty(2);
	rq = recorded(3);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "client_secret=" SECRET_FORM));
	free(rq);
}
END_TEST

/* A silent server is waited for once, not again for the request after the
 * connection that only shakes hands. */
START_TEST(test_https_timeout)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	const struct tcert *in[] = { &ca1 };
	const char *resp[1] = { NULL };
	char *err = NULL, *url, *bundle;
	int cached = -1;
	long t0;

	injector_start(&fi, resp, 1, 0);
	url = xasprintf("https://%s", fi.url + strlen("http://"));
	free(fi.url);
	fi.url = url;
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, OAUTH_CLIENT_POST);
	bundle = tcert_write_bundle(dir, "bundle.pem", in, 1, 0);
	req.ca_bundle = bundle;
	req.timeout = 1;
	t0 = now_ms();
	ck_assert_int_eq(oauth_get_token(&req, &tok, &cached, &err),
	    PM_ETEMP);
	ck_assert_int_lt(now_ms() - t0, 1800);
	ck_assert_ptr_null(tok);
	ck_assert_msg(strstr(err, fi.url) != NULL, "no URL in %s", err);
	free(err);
	injector_stop(&fi);
	free(bundle);
	secret_free(secret);
}
END_TEST

/* --- secrets echoed, partial bodies, plain http ---------------------------- */

/* A token endpoint that echoes the request (the form body and the Basic
 * Authorization header) in its error text: no encoding of the client
 * secret is left in the error, also where the 300-byte cut of the text
 * falls inside it, and notify_command gets the message in its environment,
 * with no argument. */
START_TEST(test_echo_redacted)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *tok = NULL;
	char *resp[1], *body, *basic, *b, *desc, *cmd, *out, *text;
	char *err = NULL, *rq;
	size_t len, pad;
	int basic_auth = _i;

	body = xasprintf("grant_type=client_credentials&scope=%s&client_id=%s"
	    "&client_secret=%s", SCOPE_FORM, CLIENT_ID, basic_auth ?
	    SECRET_FORM_LC : SECRET_FORM);
	basic = xasprintf("%s:%s", CLIENT_ID, SECRET_FORM);
	b = b64(basic);
	/* The cut at 300 bytes falls in the middle of the secret. */
	pad = 300 - strlen(body) + strlen(SECRET_FORM) / 2;
	desc = xasprintf("%*s%s Authorization: Basic %s", (int)pad, "echo:",
	    body, b);
	text = xasprintf("{\"error\":\"invalid_client\",\"error_description\":"
	    "\"%s\"}", desc);
	resp[0] = http_response(400, "application/json", text);
	free(text);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	secret = secret_from_str(SECRET);
	make_request(&req, &fi, secret, dir, basic_auth ? OAUTH_CLIENT_BASIC :
	    OAUTH_CLIENT_POST);
	out = xasprintf("%s/notified", dir);
	cmd = notify_script("\"$# $PULLMAIL_MESSAGE\"", out);
	req.notify_command = cmd;

	ck_assert_int_eq(oauth_get_token(&req, &tok, NULL, &err), PM_EAUTH);
	/* The secret did go out in the form echoed. */
	rq = recorded(1);
	ck_assert_ptr_nonnull(rq);
	ck_assert(basic_auth ? strstr(rq, b) != NULL :
	    has_field(rq, "client_secret=" SECRET_FORM));
	free(rq);
	ck_assert_msg(strstr(err, "token endpoint refused: invalid_client") !=
	    NULL && strstr(err, "<redacted>") != NULL, "%s", err);
	ck_assert_msg(secret_redacted(err) == NULL, "%s", err);
	assert_clean(err);
	ck_assert_msg(strstr(err, SECRET_FORM_LC) == NULL, "%s", err);
	ck_assert_msg(strstr(err, "s3cr3t") == NULL, "%s", err);
	ck_assert_msg(strstr(err, b) == NULL, "%s", err);
	ck_assert_int_eq(read_small_file(out, 4096, &text, &len), 0);
	ck_assert_msg(strncmp(text, "0 token endpoint refused: invalid_client",
	    40) == 0, "notified: %s", text);
	ck_assert_msg(secret_redacted(text) == NULL && strstr(text, "s3cr3t") ==
	    NULL && strstr(text, b) == NULL, "notified: %s", text);
	free(text);
	free(err);
	secret_free(secret);
	injector_stop(&fi);
	free(resp[0]);
	free(cmd);
	free(out);
	free(desc);
	free(b);
	free(basic);
	free(body);
}
END_TEST

/* Responses cut short. */
static const struct {
	const char *head;	/* before the body; "STALL:" holds it open */
	size_t body;		/* bytes of body sent */
	int status;
	const char *why;
} partial_cases[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	  "Content-Length: 300000\r\n\r\n", 300000, PM_EPROTO,
	  "response larger than 262144 bytes" },
	{ "STALL:HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	  "Content-Length: 5000\r\n\r\n", 1000, PM_ETEMP, "timed out" },
	{ "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	  "Content-Length: 5000\r\n\r\n", 1000, PM_ETEMP, "closed" },
};

/* A body larger than the cap, one stalled until the timeout and one whose
 * connection drops: each a clear error, and the part received (a token
 * may be in it) is not left in the reply: wiped and freed. */
START_TEST(test_partial_body)
{
	struct injector fi;
	struct oauth_request req;
	struct http_reply reply;
	char *resp[1], *body, *err = NULL;
	size_t n = partial_cases[_i].body;
	int rc;

	body = xmalloc(n + 1);
	memset(body, 'x', n);
	memcpy(body, "{\"access_token\":\"", 17);
	body[n] = '\0';
	resp[0] = xasprintf("%s%s", partial_cases[_i].head, body);
	free(body);
	injector_start(&fi, (const char *const *)resp, 1, 0);
	make_request(&req, &fi, NULL, dir, OAUTH_CLIENT_POST);
	req.timeout = 2;
	rc = oauth_http_post(&req, fi.url, "grant_type=client_credentials",
	    &reply, &err);
	ck_assert_int_eq(rc, partial_cases[_i].status);
	ck_assert_msg(strstr(err, partial_cases[_i].why) != NULL &&
	    strncmp(err, fi.url, strlen(fi.url)) == 0, "%s", err);
	ck_assert_ptr_null(reply.body);
	ck_assert_uint_eq(reply.len, 0);
	free(err);
	injector_stop(&fi);
	free(resp[0]);
}
END_TEST

/* The one cleanup of a reply body: freed and the reply left empty. */
START_TEST(test_reply_free)
{
	struct http_reply reply;

	memset(&reply, 0, sizeof reply);
	reply.body = xstrdup("{\"access_token\":\"partial");
	reply.len = strlen(reply.body);
	reply.status = 200;
	oauth_reply_free(&reply);
	ck_assert_ptr_null(reply.body);
	ck_assert_uint_eq(reply.len, 0);
	ck_assert_int_eq(reply.status, 0);
	ck_assert_int_eq(reply.retry_after, -1);
	oauth_reply_free(&reply);
}
END_TEST

/* Plain http to another host is refused before any connection: a token
 * URL (TEST-NET-1, where a connection would hang) and tricks on the
 * authority. */
START_TEST(test_plain_http_refused)
{
	static const char *const urls[] = {
		"http://192.0.2.1:9/token",
		"http://127.0.0.1@192.0.2.1:9/token",
		"http://127.0.0.1.nip.io:9/token",
		"http://[::ffff:192.0.2.1]:9/token",
	};
	struct oauth_request req;
	struct http_reply reply;
	struct pm_secret *secret = secret_from_str(SECRET), *tok = NULL;
	char *err = NULL;
	long t0;
	size_t i;

	memset(&req, 0, sizeof req);
	req.client_id = CLIENT_ID;
	req.client_secret = secret;
	req.timeout = 20;
	req.account = "test";
	for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		req.token_url = urls[i];
		t0 = now_ms();
		ck_assert_int_eq(oauth_get_token(&req, &tok, NULL, &err),
		    PM_ECONFIG);
		ck_assert_msg(now_ms() - t0 < 2000, "%s: waited", urls[i]);
		ck_assert_msg(strstr(err, urls[i]) != NULL &&
		    strstr(err, "http://") != NULL && (strstr(err,
		    "allowed only to this host") != NULL ||
		    strstr(err, "user@") != NULL), "%s", err);
		free(err);
		err = NULL;
		ck_assert_int_eq(oauth_http_post(&req, urls[i], NULL, &reply,
		    &err), PM_ECONFIG);
		ck_assert_ptr_null(reply.body);
		free(err);
		err = NULL;
	}
	secret_free(secret);
}
END_TEST

/* A discovery document naming a plain http endpoint on another host is
 * refused, with the endpoint named; nothing else is asked. */
START_TEST(test_discovery_plain_http)
{
	struct injector fi;
	struct account a;
	struct oauth_endpoints ep;
	char *resp[1], *doc, *err = NULL, *rq;
	int lfd;

	lfd = listen_loopback(&fi.port);
	fi.url = xasprintf("http://127.0.0.1:%d/issuer", fi.port);
	doc = xasprintf("{\"issuer\":\"%s\",\"token_endpoint\":"
	    "\"http://idp.example/token\",\"device_authorization_endpoint\":"
	    "\"%s/device\"}", fi.url, fi.url);
	resp[0] = http_response(200, "application/json", doc);
	fi.pid = fork();
	ck_assert_int_ge(fi.pid, 0);
	if (fi.pid == 0)
		injector_serve(lfd, dir, (const char *const *)resp, 1, 0);
	close(lfd);
	memset(&a, 0, sizeof a);
	a.name = "test";
	a.oauth_issuer = fi.url;
	a.oauth_flow = OAUTH_FLOW_DEVICE;
	a.timeout = 5;
	ck_assert_int_eq(oauth_discover(&a, &ep, &err), PM_EPROTO);
	ck_assert_msg(strstr(err, "token_endpoint http://idp.example/token, "
	    "refused: plain http:// is allowed only to this host") != NULL,
	    "%s", err);
	ck_assert_ptr_null(a.oauth_token_url);
	rq = recorded(1);
	ck_assert_msg(rq != NULL && strncmp(rq, "GET /issuer/.well-known/"
	    "openid-configuration ", 41) == 0, "%s", rq);
	free(rq);
	free(a.oauth_device_url);
	free(err);
	free(doc);
	free(resp[0]);
	injector_stop(&fi);
}
END_TEST

/* --- many threads, one app ---------------------------------------------- */

#define NTHREADS	16

/* One thread's call: what it asks with and what it got. */
struct token_call {
	const struct oauth_request *req;
	struct pm_secret *refused;	/* invalidate this one first */
	pthread_barrier_t *start;
	struct pm_secret *tok;
	char		*err;
	int		 rc;
};

/* A worker thread: (invalidate, then) get a token. */
static void *
token_thread(void *arg)
{
	struct token_call *c = arg;

	pthread_barrier_wait(c->start);
	if (c->refused != NULL)
		oauth_invalidate(c->req, c->refused);
	c->rc = oauth_get_token(c->req, &c->tok, NULL, &c->err);
	return NULL;
}

/* Run NTHREADS token_threads at once; assert each got token. */
static void
run_token_threads(const struct oauth_request *req, struct pm_secret *refused,
    const char *token)
{
	struct token_call calls[NTHREADS];
	pthread_t tid[NTHREADS];
	pthread_barrier_t start;
	int i;

	pthread_barrier_init(&start, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		memset(&calls[i], 0, sizeof calls[i]);
		calls[i].req = req;
		calls[i].refused = refused;
		calls[i].start = &start;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, token_thread,
		    &calls[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);
	for (i = 0; i < NTHREADS; i++) {
		ck_assert_msg(calls[i].rc == PM_OK, "thread %d: %s", i,
		    calls[i].err != NULL ? calls[i].err : "?");
		ck_assert_str_eq(secret_reveal(calls[i].tok), token);
		secret_free(calls[i].tok);
	}
}

/*
 * NTHREADS threads want one app's token at once: exactly one request goes
 * to the endpoint (it answers slowly, so they all ask while it is under
 * way), with the cache file (_i 1) and without one (_i 0, where only the
 * in-process single flight can share it).
 */
START_TEST(test_threads_one_request)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret;
	char *resp[1], *cache = NULL, *rq;

	resp[0] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 1, 300);
	secret = secret_from_str(SECRET);
	if (_i == 1)
		cache = xasprintf("%s/cache", dir);
	make_request(&req, &fi, secret, cache, OAUTH_CLIENT_POST);
	run_token_threads(&req, NULL, TOKEN_A);
	rq = recorded(1);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "grant_type=client_credentials"));
	free(rq);
	ck_assert_ptr_null(recorded(2));
	injector_stop(&fi);
	free(resp[0]);
	free(cache);
	secret_free(secret);
}
END_TEST

/* NTHREADS mailboxes had their shared token refused: each drops it and
 * asks again, and one new token is fetched for all of them. */
START_TEST(test_threads_refused_once)
{
	struct injector fi;
	struct oauth_request req;
	struct pm_secret *secret, *old;
	char *resp[2], *cache, *rq;
	char *err = NULL;

	resp[0] = token_response(TOKEN_A, 3599);
	resp[1] = token_response(TOKEN_B, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 100);
	secret = secret_from_str(SECRET);
	cache = xasprintf("%s/cache", dir);
	make_request(&req, &fi, secret, cache, OAUTH_CLIENT_POST);
	ck_assert_int_eq(oauth_get_token(&req, &old, NULL, &err), PM_OK);
	ck_assert_str_eq(secret_reveal(old), TOKEN_A);
	run_token_threads(&req, old, TOKEN_B);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	free(rq);
	ck_assert_ptr_null(recorded(3));
	injector_stop(&fi);
	free(resp[0]);
	free(resp[1]);
	free(cache);
	secret_free(old);
	secret_free(secret);
}
END_TEST

/*
 * Two accounts of one app, one with a wrong client secret, ask at the
 * same time: the wrong one's refusal is its own (the other makes its own
 * request and gets a token), as when they ran one after the other.
 */
START_TEST(test_threads_other_secret)
{
	struct injector fi;
	struct oauth_request wrong, right;
	struct token_call cw, cr;
	struct pm_secret *bad, *good;
	pthread_barrier_t start;
	pthread_t tw, tr;
	char *resp[2], *rq;

	resp[0] = http_response(401, "application/json",
	    "{\"error\":\"invalid_client\"}");
	resp[1] = token_response(TOKEN_A, 3599);
	injector_start(&fi, (const char *const *)resp, 2, 300);
	bad = secret_from_str("not-the-secret");
	good = secret_from_str(SECRET);
	make_request(&wrong, &fi, bad, NULL, OAUTH_CLIENT_POST);
	make_request(&right, &fi, good, NULL, OAUTH_CLIENT_POST);
	pthread_barrier_init(&start, NULL, 1);
	memset(&cw, 0, sizeof cw);
	cw.req = &wrong;
	cw.start = &start;
	memset(&cr, 0, sizeof cr);
	cr.req = &right;
	cr.start = &start;
	/* The wrong one asks first; the other while its request is under
	 * way (the endpoint answers after 300 ms). */
	ck_assert_int_eq(pthread_create(&tw, NULL, token_thread, &cw), 0);
	usleep(100000);
	ck_assert_int_eq(pthread_create(&tr, NULL, token_thread, &cr), 0);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	pthread_barrier_destroy(&start);
	ck_assert_int_eq(cw.rc, PM_EAUTH);
	ck_assert_msg(cr.rc == PM_OK, "the right secret got: %s",
	    cr.err != NULL ? cr.err : "?");
	ck_assert_str_eq(secret_reveal(cr.tok), TOKEN_A);
	rq = recorded(1);
	ck_assert_ptr_nonnull(rq);
	ck_assert(has_field(rq, "client_secret=not-the-secret"));
	free(rq);
	rq = recorded(2);
	ck_assert_ptr_nonnull(rq);
	ck_assert(!has_field(rq, "client_secret=not-the-secret"));
	free(rq);
	injector_stop(&fi);
	free(cw.err);
	secret_free(cr.tok);
	free(resp[0]);
	free(resp[1]);
	secret_free(bad);
	secret_free(good);
}
END_TEST

Suite *
suite_oauth(void)
{
	Suite *s = suite_create("oauth");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_microsoft);
	tcase_add_test(tc, test_parse_string_expiry_and_scope);
	tcase_add_loop_test(tc, test_parse_bad, 0,
	    (int)(sizeof bad_responses / sizeof bad_responses[0]));
	tcase_add_test(tc, test_parse_trailing_whitespace_ok);
	tcase_add_test(tc, test_parse_aadsts_error);
	tcase_add_test(tc, test_parse_error_with_200);
	tcase_add_test(tc, test_parse_error_code_array_and_cut);
	tcase_add_loop_test(tc, test_hints, 0,
	    (int)(sizeof hints / sizeof hints[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("fetch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_get_post_cache_invalidate);
	tcase_add_test(tc, test_get_basic);
	tcase_add_loop_test(tc, test_cache_files, 0, CACHE_NCASES);
	tcase_add_loop_test(tc, test_get_failures, 0,
	    (int)(sizeof failures / sizeof failures[0]));
	tcase_add_test(tc, test_get_refused);
	tcase_add_test(tc, test_get_timeout);
	tcase_add_test(tc, test_get_two_processes);
	tcase_add_test(tc, test_get_debug_log_redacted);
	tcase_add_test(tc, test_get_no_cache_dir);
	tcase_add_test(tc, test_cache_key_separates);
	tcase_add_loop_test(tc, test_echo_redacted, 0, 2);
	tcase_add_loop_test(tc, test_partial_body, 0,
	    sizeof partial_cases / sizeof partial_cases[0]);
	tcase_add_test(tc, test_reply_free);
	tcase_add_test(tc, test_plain_http_refused);
	tcase_add_test(tc, test_discovery_plain_http);
	suite_add_tcase(s, tc);

	tc = tcase_create("https");
	tcase_add_checked_fixture(tc, https_setup, https_teardown);
	tcase_add_test(tc, test_https_anchors);
	tcase_add_test(tc, test_https_untrusted);
	tcase_add_test(tc, test_https_other_chain);
	tcase_add_test(tc, test_https_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("delegated");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_retry_503_then_success);
	tcase_add_test(tc, test_retry_429_retry_after);
	tcase_add_test(tc, test_retry_after_too_long);
	tcase_add_test(tc, test_retry_gives_up);
	tcase_add_test(tc, test_malformed_not_retried);
	tcase_add_test(tc, test_delegated_rotation);
	tcase_add_test(tc, test_delegated_invalid_grant_notify);
	tcase_add_test(tc, test_delegated_no_store);
	tcase_add_test(tc, test_delegated_endpoint_down);
	tcase_add_test(tc, test_delegated_foreign_store);
	tcase_add_test(tc, test_token_info_warnings);
	tcase_add_test(tc, test_device_expired);
	tcase_add_test(tc, test_device_no_refresh_token);
	tcase_add_test(tc, test_device_slow_down);
	tcase_add_loop_test(tc, test_device_malformed, 0, 5);
	tcase_add_test(tc, test_retry_log_redacted);
	tcase_add_test(tc, test_lock_held);
	tcase_add_test(tc, test_token_command_hangs);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_threads_one_request, 0, 2);
	tcase_add_test(tc, test_threads_refused_once);
	tcase_add_test(tc, test_threads_other_secret);
	suite_add_tcase(s, tc);
	return s;
}
