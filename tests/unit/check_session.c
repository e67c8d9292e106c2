/*
 * The session without a network: the SASL exchange (sasl_exchange())
 * against a scripted server that plays a list of reply lines and records
 * what the client sent, and the rule for the wait before a new session
 * (session_retry_wait()) as session_run() and the daemon use it.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/host.h>

#include "sasl.h"
#include "secret.h"
#include "session.h"
#include "suites.h"
#include "util.h"

/* The longest reply line the scripted server lets through, as the host's
 * read_line() refuses longer ones. */
#define SCRIPT_LINE_MAX	65536

/*
 * A scripted IMAP-like server.  Replies, in order: "+ text" (or "+") a
 * challenge, "A1 OK text" success, "A1 NO text" / "A1 BAD text" a refusal
 * (the text the IMAP plugin hands on keeps the status word); when the
 * list ends the connection drops (PM_ETEMP); a line longer than
 * SCRIPT_LINE_MAX is refused (PM_EPROTO).  What the client sends is
 * recorded one line each: "AUTHENTICATE MECH [ir]", then each response.
 */
struct script {
	const char *const *lines;
	size_t next;
	char sent[8192];
	int fail_start;		/* start() fails as a broken write does */
};

/* Append one line to what the client sent. */
static void
script_record(struct script *sc, const char *a, const char *b)
{
	size_t len = strlen(sc->sent);

	snprintf(sc->sent + len, sizeof sc->sent - len, "%s%s%s\n", a,
	    b != NULL && *a != '\0' ? " " : "", b != NULL ? b : "");
}

static int
script_start(void *ctx, const char *mech, const struct pm_secret *ir,
    char **err)
{
	struct script *sc = ctx;
	char *line;

	if (sc->fail_start)
		return errf(err, PM_ETEMP, "connection reset by peer");
	line = xasprintf("AUTHENTICATE %s", mech);
	script_record(sc, line, ir != NULL ? secret_reveal(ir) : NULL);
	free(line);
	return PM_OK;
}

static int
script_respond(void *ctx, const struct pm_secret *resp, char **err)
{
	struct script *sc = ctx;

	(void)err;
	script_record(sc, "", secret_reveal(resp));
	return PM_OK;
}

static int
script_reply(void *ctx, int *kind_r, char **text_r, char **err)
{
	struct script *sc = ctx;
	const char *line = sc->lines[sc->next];

	*text_r = NULL;
	if (line == NULL)
		return errf(err, PM_ETEMP, "the server closed the connection");
	sc->next++;
	if (strlen(line) > SCRIPT_LINE_MAX)
		return errf(err, PM_EPROTO, "the server sent a line longer "
		    "than %d bytes", SCRIPT_LINE_MAX);
	if (line[0] == '+') {
		*kind_r = PM_SASL_CONTINUE;
		*text_r = xstrdup(line[1] == ' ' ? line + 2 : line + 1);
	} else if (strncmp(line, "A1 OK", 5) == 0) {
		*kind_r = PM_SASL_SUCCESS;
		*text_r = xstrdup(line[5] == ' ' ? line + 6 : "");
	} else if (strncmp(line, "A1 NO", 5) == 0 ||
	    strncmp(line, "A1 BAD", 6) == 0) {
		*kind_r = PM_SASL_FAILURE;
		*text_r = xstrdup(line + 3);
	} else
		return errf(err, PM_EPROTO, "unexpected reply");
	return PM_OK;
}

/* {"status":"401","schemes":"bearer","scope":"mail"} */
#define ERR_401 "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUi" \
	"OiJtYWlsIn0="
/* {"status":"invalid_token","scope":"https://outlook.office.com/.default"} */
#define ERR_INVALID "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJodHRw" \
	"czovL291dGxvb2sub2ZmaWNlLmNvbS8uZGVmYXVsdCJ9"
#define IR "SVItYmFzZTY0"

static const struct exchange_case {
	const char *name;
	const char *mech;
	int ir;			/* an initial response IR is at hand */
	int server_ir;
	int two_step;		/* the protocol's xoauth2_two_step */
	size_t max_line;	/* the protocol's max_line */
	const char *lines[12];
	int status;		/* what sasl_exchange() returns */
	int refused;		/* *token_refused_r */
	const char *sent;	/* what the client sent, exactly */
	const char *err;	/* the whole error message, or NULL */
} exchange_cases[] = {
	{ "xoauth2 accepted at once", "XOAUTH2", 1, 1, 0, 0,
	    { "A1 OK Logged in" }, PM_OK, 0,
	    "AUTHENTICATE XOAUTH2 " IR "\n", NULL },
	{ "error JSON, then NO", "XOAUTH2", 1, 1, 0, 0,
	    { "+ " ERR_401, "A1 NO [AUTHENTICATIONFAILED] failed" },
	    PM_EAUTH, 1, "AUTHENTICATE XOAUTH2 " IR "\n\n",
	    "server refused the XOAUTH2 login for u@example.com: NO "
	    "[AUTHENTICATIONFAILED] failed (status 401, schemes bearer, "
	    "scope mail)" },
	{ "oauthbearer invalid_token", "OAUTHBEARER", 1, 1, 0, 0,
	    { "+ " ERR_INVALID, "A1 NO failed" }, PM_EAUTH, 1,
	    "AUTHENTICATE OAUTHBEARER " IR "\nAQ==\n",
	    "server refused the OAUTHBEARER login for u@example.com: NO "
	    "failed (status invalid_token, scope "
	    "https://outlook.office.com/.default)" },
	{ "malformed base64 challenge", "XOAUTH2", 1, 1, 0, 0,
	    { "+ !!not=base64", "A1 NO failed" }, PM_EAUTH, 1,
	    "AUTHENTICATE XOAUTH2 " IR "\n\n",
	    "server refused the XOAUTH2 login for u@example.com: NO failed "
	    "(the server's error challenge could not be decoded)" },
	{ "empty challenge after the response", "OAUTHBEARER", 1, 1, 0, 0,
	    { "+", "A1 NO failed" }, PM_EAUTH, 1,
	    "AUTHENTICATE OAUTHBEARER " IR "\nAQ==\n",
	    "server refused the OAUTHBEARER login for u@example.com: NO "
	    "failed (the server's error challenge could not be decoded)" },
	{ "empty challenge asks for the response", "XOAUTH2", 1, 0, 0, 0,
	    { "+ ", "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE XOAUTH2\n" IR "\n", NULL },
	{ "two-step XOAUTH2 waits for +", "XOAUTH2", 1, 1, 1, 0,
	    { "+", "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE XOAUTH2\n" IR "\n", NULL },
	{ "two-step is for XOAUTH2 only", "OAUTHBEARER", 1, 1, 1, 0,
	    { "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE OAUTHBEARER " IR "\n", NULL },
	{ "initial response over max_line", "XOAUTH2", 1, 1, 0,
	    sizeof "XOAUTH2" + sizeof IR - 2 + 9,
	    { "+", "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE XOAUTH2\n" IR "\n", NULL },
	{ "initial response at max_line", "XOAUTH2", 1, 1, 0,
	    sizeof "XOAUTH2" + sizeof IR - 2 + 10,
	    { "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE XOAUTH2 " IR "\n", NULL },
	{ "BAD", "XOAUTH2", 1, 1, 0, 0,
	    { "A1 BAD Invalid SASL argument" }, PM_EAUTH, 1,
	    "AUTHENTICATE XOAUTH2 " IR "\n",
	    "server refused the XOAUTH2 login for u@example.com: BAD "
	    "Invalid SASL argument" },
	{ "dropped at once", "XOAUTH2", 1, 1, 0, 0,
	    { NULL }, PM_ETEMP, 0,
	    "AUTHENTICATE XOAUTH2 " IR "\n",
	    "the server closed the connection" },
	{ "dropped after the error challenge", "OAUTHBEARER", 1, 1, 0, 0,
	    { "+ " ERR_401 }, PM_ETEMP, 0,
	    "AUTHENTICATE OAUTHBEARER " IR "\nAQ==\n",
	    "the server closed the connection" },
	{ "a second challenge is cancelled", "XOAUTH2", 1, 1, 0, 0,
	    { "+ " ERR_401, "+ " ERR_401, "A1 NO failed" }, PM_EAUTH, 1,
	    "AUTHENTICATE XOAUTH2 " IR "\n\n*\n",
	    "server refused the XOAUTH2 login for u@example.com: NO failed "
	    "(status 401, schemes bearer, scope mail)" },
	{ "too many challenges", "XOAUTH2", 1, 1, 0, 0,
	    { "+", "+", "+", "+", "+", "+", "+", "+", "+", "+", "+" },
	    PM_EPROTO, 0,
	    "AUTHENTICATE XOAUTH2 " IR "\n\n*\n*\n*\n*\n*\n*\n*\n*\n",
	    "AUTHENTICATE XOAUTH2: too many challenges from the server" },
	{ "LOGIN", "LOGIN", 0, 1, 0, 0,
	    { "+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6", "A1 OK done" }, PM_OK, 0,
	    "AUTHENTICATE LOGIN\ndUBleGFtcGxlLmNvbQ==\ncGFzcw==\n", NULL },
	{ "LOGIN refused keeps the token", "LOGIN", 0, 1, 0, 0,
	    { "+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6", "+ more?", "A1 NO bad" },
	    PM_EAUTH, 0,
	    "AUTHENTICATE LOGIN\ndUBleGFtcGxlLmNvbQ==\ncGFzcw==\n*\n",
	    "server refused the LOGIN login for u@example.com: NO bad" },
	{ "PLAIN refused", "PLAIN", 1, 1, 0, 0,
	    { "A1 NO [AUTHENTICATIONFAILED] bad password" }, PM_EAUTH, 0,
	    "AUTHENTICATE PLAIN " IR "\n",
	    "server refused the PLAIN login for u@example.com: NO "
	    "[AUTHENTICATIONFAILED] bad password" },
};

START_TEST(test_exchange)
{
	const struct exchange_case *c = &exchange_cases[_i];
	struct pm_sasl_proto p;
	struct sasl_login l;
	struct script sc;
	struct pm_secret *ir = secret_from_str(IR);
	struct pm_secret *pw = secret_from_str("pass");
	char *err = NULL;
	int r, refused = -1;

	memset(&p, 0, sizeof p);
	p.start = script_start;
	p.respond = script_respond;
	p.reply = script_reply;
	p.max_line = c->max_line;
	p.overhead = 10;
	p.xoauth2_two_step = c->two_step;
	memset(&sc, 0, sizeof sc);
	sc.lines = c->lines;
	memset(&l, 0, sizeof l);
	l.mech = c->mech;
	l.user = "u@example.com";
	l.password = pw;
	l.ir = c->ir ? ir : NULL;
	l.server_ir = c->server_ir;
	r = sasl_exchange(&p, &sc, &l, &refused, &err);
	ck_assert_msg(r == c->status, "%s: status %d, not %d (%s)", c->name,
	    r, c->status, err != NULL ? err : "");
	ck_assert_msg(refused == c->refused, "%s: token refused %d",
	    c->name, refused);
	ck_assert_msg(strcmp(sc.sent, c->sent) == 0, "%s: sent\n%s",
	    c->name, sc.sent);
	if (c->err == NULL)
		ck_assert_ptr_null(err);
	else {
		ck_assert_ptr_nonnull(err);
		ck_assert_msg(strcmp(err, c->err) == 0, "%s: error %s",
		    c->name, err);
	}
	/* Every reply was read, and none after the last. */
	ck_assert_msg(c->lines[sc.next] == NULL || c->status == PM_EPROTO,
	    "%s: %zu replies left unread", c->name, sc.next);
	free(err);
	secret_free(ir);
	secret_free(pw);
}
END_TEST

/* An over-long reply stops the exchange: nothing more is sent. */
START_TEST(test_exchange_long_line)
{
	struct pm_sasl_proto p;
	struct sasl_login l;
	struct script sc;
	struct pm_secret *ir = secret_from_str(IR);
	char *big = xmalloc(SCRIPT_LINE_MAX + 8), *err = NULL;
	const char *lines[3];
	int refused = -1;

	memset(big, 'A', SCRIPT_LINE_MAX + 7);
	big[0] = '+';
	big[1] = ' ';
	big[SCRIPT_LINE_MAX + 7] = '\0';
	lines[0] = big;
	lines[1] = "A1 NO failed";
	lines[2] = NULL;
	memset(&p, 0, sizeof p);
	p.start = script_start;
	p.respond = script_respond;
	p.reply = script_reply;
	memset(&sc, 0, sizeof sc);
	sc.lines = lines;
	memset(&l, 0, sizeof l);
	l.mech = "XOAUTH2";
	l.user = "u@example.com";
	l.ir = ir;
	l.server_ir = 1;
	ck_assert_int_eq(sasl_exchange(&p, &sc, &l, &refused, &err),
	    PM_EPROTO);
	ck_assert_int_eq(refused, 0);
	ck_assert_str_eq(sc.sent, "AUTHENTICATE XOAUTH2 " IR "\n");
	ck_assert_uint_eq(sc.next, 1);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
	free(err);
	free(big);
	secret_free(ir);
}
END_TEST

/* A long error challenge that does fit: the error stays one short,
 * printable line. */
START_TEST(test_exchange_long_challenge)
{
	struct pm_sasl_proto p;
	struct sasl_login l;
	struct script sc;
	struct pm_secret *ir = secret_from_str(IR);
	char json[40000], *b64, *chal, *err = NULL;
	const char *lines[3], *q;
	size_t n;
	int refused = -1;

	n = (size_t)snprintf(json, sizeof json,
	    "{\"status\":\"401\",\"scope\":\"");
	memset(json + n, 's', 30000);
	n += 30000;
	snprintf(json + n, sizeof json - n, "\x01\n\"}");
	b64 = base64_encode(json, strlen(json));
	chal = xasprintf("+ %s", b64);
	lines[0] = chal;
	lines[1] = "A1 NO failed";
	lines[2] = NULL;
	memset(&p, 0, sizeof p);
	p.start = script_start;
	p.respond = script_respond;
	p.reply = script_reply;
	memset(&sc, 0, sizeof sc);
	sc.lines = lines;
	memset(&l, 0, sizeof l);
	l.mech = "OAUTHBEARER";
	l.user = "u@example.com";
	l.ir = ir;
	l.server_ir = 1;
	ck_assert_int_eq(sasl_exchange(&p, &sc, &l, &refused, &err),
	    PM_EAUTH);
	ck_assert_int_eq(refused, 1);
	ck_assert_str_eq(sc.sent, "AUTHENTICATE OAUTHBEARER " IR "\nAQ==\n");
	ck_assert_uint_lt(strlen(err), 400);
	ck_assert_ptr_nonnull(strstr(err, "(status 401, scope sss"));
	for (q = err; *q != '\0'; q++)
		ck_assert(*q >= ' ' && *q < 0x7f);
	free(err);
	free(chal);
	free(b64);
	secret_free(ir);
}
END_TEST

/* A start() that fails (the write broke): its status, nothing read. */
START_TEST(test_exchange_start_fails)
{
	static const char *const lines[] = { "A1 OK", NULL };
	struct pm_sasl_proto p;
	struct sasl_login l;
	struct script sc;
	char *err = NULL;
	int refused = -1;

	memset(&p, 0, sizeof p);
	p.start = script_start;
	p.respond = script_respond;
	p.reply = script_reply;
	memset(&sc, 0, sizeof sc);
	sc.lines = lines;
	sc.fail_start = 1;
	memset(&l, 0, sizeof l);
	l.mech = "LOGIN";
	l.user = "u@example.com";
	ck_assert_int_eq(sasl_exchange(&p, &sc, &l, &refused, &err),
	    PM_ETEMP);
	ck_assert_int_eq(refused, 0);
	ck_assert_uint_eq(sc.next, 0);
	ck_assert_str_eq(err, "connection reset by peer");
	free(err);
}
END_TEST

/* The daemon's backoff without its jitter: 5 s doubling. */
static long long
fake_backoff(unsigned n)
{
	return 5000LL << (n - 1);
}

/* session_run(): no backoff (it gives up after 3 sessions), a
 * throttle_max_wait of 60 s or 1 s; the daemon's watchers: the backoff. */
static const struct retry_policy pol_run = { 60, 3, NULL };
static const struct retry_policy pol_run_1s = { 1, 3, NULL };
static const struct retry_policy pol_daemon = { 60, 3, fake_backoff };

static const struct wait_case {
	const struct retry_policy *pol;
	int kind;
	unsigned attempt;
	int connected;
	unsigned suggested_ms;
	long long wait;
} wait_cases[] = {
	/* An expired token: at once, then as a reconnect. */
	{ &pol_run, PM_RETRY_TOKEN_EXPIRED, 0, 1, 0, 0 },
	{ &pol_run, PM_RETRY_TOKEN_EXPIRED, 1, 1, 0, 0 },
	{ &pol_run, PM_RETRY_TOKEN_EXPIRED, 2, 1, 0, 2000 },
	{ &pol_run, PM_RETRY_TOKEN_EXPIRED, 3, 1, 0, 4000 },
	{ &pol_daemon, PM_RETRY_TOKEN_EXPIRED, 1, 0, 0, 0 },
	{ &pol_daemon, PM_RETRY_TOKEN_EXPIRED, 2, 1, 0, 2000 },
	{ &pol_daemon, PM_RETRY_TOKEN_EXPIRED, 2, 0, 0, 10000 },
	{ &pol_daemon, PM_RETRY_TOKEN_EXPIRED, 4, 1, 0, 40000 },
	/* Throttled: the suggestion within throttle_max_wait. */
	{ &pol_run, PM_RETRY_THROTTLED, 1, 1, 700, 700 },
	{ &pol_run, PM_RETRY_THROTTLED, 3, 1, 700, 700 },
	{ &pol_run, PM_RETRY_THROTTLED, 1, 1, 90000, 60000 },
	{ &pol_run_1s, PM_RETRY_THROTTLED, 2, 1, 30000, 1000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 1, 0, 700, 700 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 3, 0, 90000, 60000 },
	/* ... and the backoff once it keeps on past the quick ones. */
	{ &pol_daemon, PM_RETRY_THROTTLED, 4, 0, 700, 5000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 4, 0, 30000, 30000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 6, 0, 90000, 60000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 8, 0, 90000, 80000 },
	/* Throttled with no suggestion: as any other failure. */
	{ &pol_run, PM_RETRY_THROTTLED, 2, 1, 0, 2000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 1, 1, 0, 1000 },
	{ &pol_daemon, PM_RETRY_THROTTLED, 1, 0, 0, 5000 },
	/* A lost session: 1, 2, 4 s (at most 8 s without a backoff). */
	{ &pol_run, PM_RETRY_RECONNECT, 0, 1, 0, 1000 },
	{ &pol_run, PM_RETRY_RECONNECT, 1, 1, 0, 1000 },
	{ &pol_run, PM_RETRY_RECONNECT, 2, 1, 0, 2000 },
	{ &pol_run, PM_RETRY_RECONNECT, 3, 1, 0, 4000 },
	{ &pol_run, PM_RETRY_RECONNECT, 4, 1, 0, 8000 },
	{ &pol_run, PM_RETRY_RECONNECT, 9, 1, 0, 8000 },
	{ &pol_daemon, PM_RETRY_RECONNECT, 1, 0, 0, 1000 },
	{ &pol_daemon, PM_RETRY_RECONNECT, 3, 0, 0, 4000 },
	{ &pol_daemon, PM_RETRY_RECONNECT, 4, 0, 0, 40000 },
	/* No reason said: soon after a session that got connected, else
	 * the backoff. */
	{ &pol_daemon, 0, 1, 1, 0, 1000 },
	{ &pol_daemon, 0, 3, 1, 0, 4000 },
	{ &pol_daemon, 0, 4, 1, 0, 40000 },
	{ &pol_daemon, 0, 1, 0, 0, 5000 },
	{ &pol_daemon, 0, 2, 0, 0, 10000 },
};

START_TEST(test_retry_wait)
{
	const struct wait_case *c = &wait_cases[_i];
	long long w;

	w = session_retry_wait(c->kind, c->attempt, c->connected,
	    c->suggested_ms, c->pol);
	ck_assert_msg(w == c->wait, "case %d: kind %d attempt %u: %lld ms, "
	    "not %lld", _i, c->kind, c->attempt, w, c->wait);
}
END_TEST

#define N(a)	((int)(sizeof (a) / sizeof (a)[0]))

Suite *
suite_session(void)
{
	Suite *s = suite_create("session");
	TCase *tc;

	tc = tcase_create("sasl_exchange");
	tcase_add_loop_test(tc, test_exchange, 0, N(exchange_cases));
	tcase_add_test(tc, test_exchange_long_line);
	tcase_add_test(tc, test_exchange_long_challenge);
	tcase_add_test(tc, test_exchange_start_fails);
	suite_add_tcase(s, tc);

	tc = tcase_create("retry_wait");
	tcase_add_loop_test(tc, test_retry_wait, 0, N(wait_cases));
	suite_add_tcase(s, tc);
	return s;
}
