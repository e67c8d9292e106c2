/*
 * The session without a network: the SASL exchange (sasl_exchange())
 * against a scripted server that plays a list of reply lines and records
 * what the client sent; the rule for the wait before a new session
 * (session_retry_wait()) as session_run() and the daemon use it; and
 * session_run() itself over a fake plugin (which logs in through the
 * host's real sasl_auth() with scripted replies) into a real Maildir and
 * UID state: what several sessions of one run deliver, record, dispose of
 * and count, and when a run goes on with a new session or a new token.
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/host.h>
#include <pullmail/plugin.h>

#include "base64.h"
#include "config.h"
#include "fetch.h"
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

/* The scripted protocol's table, without size limits. */
static void
script_proto(struct pm_sasl_proto *p)
{
	memset(p, 0, sizeof *p);
	p->start = script_start;
	p->respond = script_respond;
	p->reply = script_reply;
}

/* Play lines to an exchange of mech, with initial response ir (the
 * server takes one on the start line); sc is zeroed by the caller (but
 * for fail_start) and holds what the client sent. */
static int
play(struct script *sc, const char *const *lines, const char *mech,
    const struct pm_secret *ir, int *refused_r, char **err)
{
	struct pm_sasl_proto p;
	struct sasl_login l;

	script_proto(&p);
	sc->lines = lines;
	memset(&l, 0, sizeof l);
	l.mech = mech;
	l.user = "u@example.com";
	l.ir = ir;
	l.server_ir = 1;
	return sasl_exchange(&p, sc, &l, refused_r, err);
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

	script_proto(&p);
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
	memset(&sc, 0, sizeof sc);
	ck_assert_int_eq(play(&sc, lines, "XOAUTH2", ir, &refused, &err),
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
	b64 = base64_encode(BASE64_STD, json, strlen(json));
	chal = xasprintf("+ %s", b64);
	lines[0] = chal;
	lines[1] = "A1 NO failed";
	lines[2] = NULL;
	memset(&sc, 0, sizeof sc);
	ck_assert_int_eq(play(&sc, lines, "OAUTHBEARER", ir, &refused, &err),
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
	struct script sc;
	char *err = NULL;
	int refused = -1;

	memset(&sc, 0, sizeof sc);
	sc.fail_start = 1;
	ck_assert_int_eq(play(&sc, lines, "LOGIN", NULL, &refused, &err),
	    PM_ETEMP);
	ck_assert_int_eq(refused, 0);
	ck_assert_uint_eq(sc.next, 0);
	ck_assert_str_eq(err, "connection reset by peer");
	free(err);
}
END_TEST

/* --- session_run() over a fake plugin ------------------------------------ */

#define SRV_MSGS	8
#define SRV_SESSIONS	8

/*
 * The fake server: messages (deleted ones are no longer listed) and, per
 * session (one open() each), how its login goes and where its fetch
 * breaks.
 */
static struct fakesrv {
	const char *uids[SRV_MSGS];
	const char *bodies[SRV_MSGS];
	int deleted[SRV_MSGS];
	size_t n;
	const char *mechs;		/* advertised SASL mechanisms */
	struct {
		const char *login[4];	/* scripted replies; default OK */
		int cut_after;		/* fetch fails after this many
					 * messages (-1: at once); 0:
					 * never */
		int hint;		/* enum pm_retry said before */
		unsigned hint_ms;
	} sess[SRV_SESSIONS];
	int opens;
	int fetched;			/* by this session */
	char log[4096];			/* OPEN, FETCH uid..., DELETE ... */
	char sent[SRV_SESSIONS][1024];	/* each login's client lines */
	const struct pm_host *h;
	struct pm_session *s;
	size_t map[SRV_MSGS];		/* listing index -> message */
	struct pm_entry list[SRV_MSGS];
} SRV;

static int srv_conn;

/* Append to the fake server's log. */
static void
srv_log(const char *what, const char *arg)
{
	size_t len = strlen(SRV.log);

	snprintf(SRV.log + len, sizeof SRV.log - len, "%s%s%s\n", what,
	    arg != NULL ? " " : "", arg != NULL ? arg : "");
}

static int
f_open(const struct pm_host *h, struct pm_session *s, struct pm_conn **c_r,
    char **err)
{
	static const char *const ok[] = { "A1 OK", NULL };
	struct pm_sasl_proto p;
	struct script sc;
	int i = SRV.opens++, r;

	ck_assert_int_lt(i, SRV_SESSIONS);
	SRV.fetched = 0;
	SRV.h = h;
	SRV.s = s;
	srv_log("OPEN", NULL);
	script_proto(&p);
	memset(&sc, 0, sizeof sc);
	sc.lines = SRV.sess[i].login[0] != NULL ? SRV.sess[i].login : ok;
	r = h->sasl_auth(s, &p, &sc, SRV.mechs, 1, err);
	memcpy(SRV.sent[i], sc.sent, sizeof SRV.sent[i]);
	SRV.sent[i][sizeof SRV.sent[i] - 1] = '\0';
	if (r != PM_OK)
		return r;
	*c_r = (struct pm_conn *)&srv_conn;
	return PM_OK;
}

static int
f_select(struct pm_conn *c, const char *folder, struct pm_folder *f_r,
    char **err)
{
	size_t i;

	(void)c;
	(void)err;
	(void)folder;
	f_r->validity = "1";
	f_r->count = 0;
	for (i = 0; i < SRV.n; i++)
		f_r->count += !SRV.deleted[i];
	return PM_OK;
}

static int
f_list(struct pm_conn *c, const struct pm_entry **e_r, size_t *n_r,
    int *have_uids_r, char **err)
{
	size_t i, n = 0;

	(void)c;
	(void)err;
	for (i = 0; i < SRV.n; i++) {
		if (SRV.deleted[i])
			continue;
		SRV.map[n] = i;
		SRV.list[n].uid = SRV.uids[i];
		SRV.list[n].size = strlen(SRV.bodies[i]);
		n++;
	}
	*e_r = SRV.list;
	*n_r = n;
	*have_uids_r = 1;
	return PM_OK;
}

static int
f_fetch(struct pm_conn *c, const size_t *idx, size_t n,
    const struct pm_sink *sink, struct pm_fetch *f, char **err)
{
	int sess = SRV.opens - 1;
	struct pm_msg *m;
	const char *body;
	size_t i, k;

	(void)c;
	for (i = 0; i < n; i++) {
		k = SRV.map[idx[i]];
		if (SRV.sess[sess].cut_after != 0 && SRV.fetched ==
		    (SRV.sess[sess].cut_after < 0 ? 0 :
		    SRV.sess[sess].cut_after)) {
			if (SRV.sess[sess].hint != 0)
				SRV.h->retry_hint(SRV.s, SRV.sess[sess].hint,
				    SRV.sess[sess].hint_ms);
			srv_log("CUT", SRV.uids[k]);
			return errf(err, PM_ETEMP, "connection lost");
		}
		SRV.fetched++;
		srv_log("FETCH", SRV.uids[k]);
		body = SRV.bodies[k];
		m = sink->begin(f, idx[i]);
		sink->write(m, body, strlen(body));
		sink->end(m, 1);
	}
	return PM_OK;
}

static int
f_dispose(struct pm_conn *c, int action, const size_t *idx, size_t n,
    unsigned char *done_r, char **err)
{
	size_t i;

	(void)c;
	(void)err;
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(action, PM_DISPOSE_DELETE);
		SRV.deleted[SRV.map[idx[i]]] = 1;
		srv_log("DELETE", SRV.uids[SRV.map[idx[i]]]);
		done_r[i] = 1;
	}
	return PM_OK;
}

static int
f_close(struct pm_conn *c, char **err)
{
	(void)c;
	(void)err;
	srv_log("CLOSE", NULL);
	return PM_OK;
}

static const struct pm_plugin srv_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "imap",
	.port_plain = 143,
	.open = f_open,
	.select = f_select,
	.list = f_list,
	.fetch = f_fetch,
	.dispose = f_dispose,
	.close = f_close,
};

static char *run_dir;

/* A fresh fake server with n messages "m1".."mN". */
static void
srv_reset(size_t n)
{
	static const char *const uids[] = { "1", "2", "3", "4", "5", "6",
	    "7", "8" };
	static const char *const bodies[] = {
		"Subject: m1\r\n\r\none\r\n",
		"Subject: m2\r\n\r\ntwo\r\n",
		"Subject: m3\r\n\r\nthree\r\n",
		"Subject: m4\r\n\r\nfour\r\n",
		"Subject: m5\r\n\r\nfive, a little longer than the rest\r\n",
		"Subject: m6\r\n\r\nsix\r\n",
		"Subject: m7\r\n\r\nseven\r\n",
		"Subject: m8\r\n\r\neight\r\n",
	};
	size_t i;

	memset(&SRV, 0, sizeof SRV);
	SRV.n = n;
	for (i = 0; i < n; i++) {
		SRV.uids[i] = uids[i];
		SRV.bodies[i] = bodies[i];
	}
	SRV.mechs = "PLAIN XOAUTH2";
}

/* Load one account from the config text extra (after the common keys),
 * in run_dir (made when NULL). */
static struct config *
run_config(const char *extra)
{
	struct config *cfg = NULL;
	char *text, *path, *err = NULL;

	if (run_dir == NULL)
		run_dir = test_tmpdir();
	text = xasprintf("[account t]\nserver = 127.0.0.1\nprotocol = imap\n"
	    "tls = none\nuser = u@example.com\ndeliver = maildir:%s/Maildir\n"
	    "state_dir = %s/state\n%s", run_dir, run_dir, extra);
	path = test_write_file(run_dir, "pullmail.conf", text, 0600);
	if (config_load(path, &cfg, &err) != PM_OK)
		ck_abort_msg("config: %s", err);
	free(text);
	free(path);
	return cfg;
}

/* The Maildir's messages, each as "<bytes>|", sorted. */
static char *
maildir_text(void)
{
	char *dir = xasprintf("%s/Maildir/new", run_dir), *path, *out;
	char *items[16];
	struct dirent *de;
	size_t n = 0, i, j, len = 0;
	DIR *d = opendir(dir);
	FILE *f;

	out = xstrdup("");
	if (d == NULL) {
		free(dir);
		return out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		ck_assert_uint_lt(n, 16);
		path = xasprintf("%s/%s", dir, de->d_name);
		f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		items[n] = xmalloc(4096);
		len = fread(items[n], 1, 4095, f);
		items[n][len] = '\0';
		fclose(f);
		free(path);
		n++;
	}
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(items[j - 1], items[j]) > 0;
		    j--) {
			char *x = items[j];

			items[j] = items[j - 1];
			items[j - 1] = x;
		}
	for (i = 0; i < n; i++) {
		char *o = xasprintf("%s%s|", out, items[i]);

		free(out);
		free(items[i]);
		out = o;
	}
	free(dir);
	return out;
}

static void
run_cleanup(struct config *cfg)
{
	config_free(cfg);
	test_rm_rf(run_dir);
	free(run_dir);
	run_dir = NULL;
}

/* A session lost after two messages (the server says reconnect): the
 * next goes on where it stopped, deleting first what the state holds as
 * delivered.  Each message is delivered once, recorded and deleted; the
 * run's count is the sum. */
START_TEST(test_run_goes_on)
{
	struct config *cfg = run_config("password = secret\nkeep = no\n");
	struct run_stats st;
	char *err = NULL, *md;
	int r;

	srv_reset(4);
	SRV.sess[0].cut_after = 2;
	SRV.sess[0].hint = PM_RETRY_RECONNECT;
	memset(&st, 0, sizeof st);
	r = session_run(config_find(cfg, "t"), &srv_plugin, 0, &st, &err);
	ck_assert_msg(r == PM_OK, "%d %s", r, err != NULL ? err : "");
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(st.delivered, 4);
	ck_assert_uint_eq(st.failed, 0);
	ck_assert_int_eq(SRV.opens, 2);
	ck_assert_str_eq(SRV.log,
	    "OPEN\nFETCH 1\nFETCH 2\nCUT 3\nCLOSE\n"
	    "OPEN\nDELETE 1\nDELETE 2\nFETCH 3\nFETCH 4\nDELETE 3\n"
	    "DELETE 4\nCLOSE\n");
	md = maildir_text();
	ck_assert_str_eq(md, "Subject: m1\n\none\n|Subject: m2\n\ntwo\n|"
	    "Subject: m3\n\nthree\n|Subject: m4\n\nfour\n|");
	free(md);
	ck_assert_str_eq(SRV.sent[0], "AUTHENTICATE PLAIN "
	    "AHVAZXhhbXBsZS5jb20Ac2VjcmV0\n");
	run_cleanup(cfg);
}
END_TEST

/* Run account t of cfg once; returns the status, *err_r the error. */
static int
run_once(struct config *cfg, struct run_stats *st, char **err_r)
{
	memset(st, 0, sizeof *st);
	*err_r = NULL;
	return session_run(config_find(cfg, "t"), &srv_plugin, 0, st, err_r);
}

/* Lost without a reason the plugin named: no new session.  What was
 * delivered is recorded: the next run deletes it and fetches the rest. */
START_TEST(test_run_no_hint)
{
	struct config *cfg = run_config("password = secret\nkeep = no\n");
	struct run_stats st;
	char *err, *md;

	srv_reset(3);
	SRV.sess[0].cut_after = 2;
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_ETEMP);
	ck_assert_str_eq(err, "connection lost");
	ck_assert_uint_eq(st.delivered, 2);
	ck_assert_int_eq(SRV.opens, 1);
	free(err);
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_OK);
	ck_assert_uint_eq(st.delivered, 1);
	ck_assert_str_eq(SRV.log, "OPEN\nFETCH 1\nFETCH 2\nCUT 3\nCLOSE\n"
	    "OPEN\nDELETE 1\nDELETE 2\nFETCH 3\nDELETE 3\nCLOSE\n");
	md = maildir_text();
	ck_assert_str_eq(md, "Subject: m1\n\none\n|Subject: m2\n\ntwo\n|"
	    "Subject: m3\n\nthree\n|");
	free(md);
	run_cleanup(cfg);
}
END_TEST

/* Sessions that deliver nothing: after 3 new ones in a row the run ends
 * with the temporary failure and the mail stays on the server. */
START_TEST(test_run_stalls)
{
	struct config *cfg = run_config("password = secret\nkeep = no\n");
	struct run_stats st;
	char *err, *md;
	int i;

	srv_reset(2);
	for (i = 0; i < SRV_SESSIONS; i++) {
		SRV.sess[i].cut_after = -1;
		SRV.sess[i].hint = PM_RETRY_THROTTLED;
		SRV.sess[i].hint_ms = 1;
	}
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_ETEMP);
	ck_assert_str_eq(err, "connection lost");
	ck_assert_int_eq(SRV.opens, 4);
	ck_assert_uint_eq(st.delivered, 0);
	ck_assert_int_eq(SRV.deleted[0] + SRV.deleted[1], 0);
	md = maildir_text();
	ck_assert_str_eq(md, "");
	free(md);
	free(err);
	run_cleanup(cfg);
}
END_TEST

/* As long as each session delivers something the run goes on, past the
 * 3 new sessions allowed in a row without progress. */
START_TEST(test_run_progress)
{
	struct config *cfg = run_config("password = secret\nkeep = no\n");
	struct run_stats st;
	char *err, *md;
	int i;

	srv_reset(6);
	for (i = 0; i < 5; i++) {
		SRV.sess[i].cut_after = 1;
		SRV.sess[i].hint = PM_RETRY_THROTTLED;
		SRV.sess[i].hint_ms = 1;
	}
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(SRV.opens, 6);
	ck_assert_uint_eq(st.delivered, 6);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(SRV.deleted[i], 1);
	md = maildir_text();
	ck_assert_str_eq(md, "Subject: m1\n\none\n|Subject: m2\n\ntwo\n|"
	    "Subject: m3\n\nthree\n|Subject: m4\n\nfour\n|"
	    "Subject: m5\n\nfive, a little longer than the rest\n|"
	    "Subject: m6\n\nsix\n|");
	free(md);
	run_cleanup(cfg);
}
END_TEST

/* A message over the size limit is skipped by every session of the run
 * and counted once. */
START_TEST(test_run_skipped_once)
{
	struct config *cfg = run_config("password = secret\nkeep = no\n"
	    "size_limit = 40\n");
	struct run_stats st;
	char *err, *md;

	srv_reset(6);
	SRV.sess[0].cut_after = 2;
	SRV.sess[0].hint = PM_RETRY_RECONNECT;
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_OK);
	ck_assert_uint_eq(st.delivered, 5);
	ck_assert_uint_eq(st.skipped, 1);
	ck_assert_int_eq(SRV.opens, 2);
	ck_assert_int_eq(SRV.deleted[4], 0);
	md = maildir_text();
	ck_assert_ptr_null(strstr(md, "m5"));
	free(md);
	run_cleanup(cfg);
}
END_TEST

/* A refused password login is final: no new session, nothing fetched. */
START_TEST(test_run_login_refused)
{
	struct config *cfg = run_config("password = secret\n");
	struct run_stats st;
	char *err;

	srv_reset(1);
	SRV.sess[0].login[0] = "A1 NO [AUTHENTICATIONFAILED] wrong";
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_EAUTH);
	ck_assert_str_eq(err, "server refused the PLAIN login for "
	    "u@example.com: NO [AUTHENTICATIONFAILED] wrong");
	ck_assert_int_eq(SRV.opens, 1);
	ck_assert_str_eq(SRV.log, "OPEN\n");
	free(err);
	run_cleanup(cfg);
}
END_TEST

#define XOAUTH2_TOK1 "dXNlcj11QGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHRvazEBAQ=="
#define XOAUTH2_TOK2 "dXNlcj11QGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHRvazIBAQ=="

/* An account whose tokens come from a command printing tok1, tok2, ...
 * (never cached). */
static struct config *
token_config(void)
{
	struct config *cfg;
	char *script, *extra, *path;

	run_dir = test_tmpdir();
	script = xasprintf("#!/bin/sh\nn=$(cat %s/count 2>/dev/null)\n"
	    "n=$((n + 1))\necho $n > %s/count\necho tok$n\n", run_dir,
	    run_dir);
	path = test_write_file(run_dir, "token.sh", script, 0700);
	extra = xasprintf("keep = no\noauth_token_command = %s\n", path);
	cfg = run_config(extra);
	free(extra);
	free(script);
	free(path);
	return cfg;
}

/* The server refuses a token that did not come from a cache: it is
 * dropped and the run fails (PM_EAUTH) without asking for another. */
START_TEST(test_run_token_refused)
{
	struct config *cfg;
	struct run_stats st;
	char *err;

	cfg = token_config();
	srv_reset(1);
	SRV.sess[0].login[0] = "+ " ERR_401;
	SRV.sess[0].login[1] = "A1 NO failed";
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_EAUTH);
	ck_assert_str_eq(err, "server refused the XOAUTH2 login for "
	    "u@example.com: NO failed (status 401, schemes bearer, scope "
	    "mail)");
	ck_assert_int_eq(SRV.opens, 1);
	ck_assert_str_eq(SRV.sent[0], "AUTHENTICATE XOAUTH2 " XOAUTH2_TOK1
	    "\n\n");
	free(err);
	run_cleanup(cfg);
}
END_TEST

/* The server ends a session because the token expired: a new session
 * follows at once, with a new token, and goes on where the first
 * stopped. */
START_TEST(test_run_token_expired)
{
	struct config *cfg;
	struct run_stats st;
	long long t0;
	char *err, *md;

	cfg = token_config();
	srv_reset(2);
	SRV.sess[0].cut_after = 1;
	SRV.sess[0].hint = PM_RETRY_TOKEN_EXPIRED;
	t0 = mono_ms();
	ck_assert_int_eq(run_once(cfg, &st, &err), PM_OK);
	ck_assert_uint_eq(st.delivered, 2);
	ck_assert_int_lt(mono_ms() - t0, 900);	/* no 1 s pause */
	ck_assert_int_eq(SRV.opens, 2);
	ck_assert_str_eq(SRV.sent[0], "AUTHENTICATE XOAUTH2 " XOAUTH2_TOK1
	    "\n");
	ck_assert_str_eq(SRV.sent[1], "AUTHENTICATE XOAUTH2 " XOAUTH2_TOK2
	    "\n");
	ck_assert_str_eq(SRV.log, "OPEN\nFETCH 1\nCUT 2\nCLOSE\n"
	    "OPEN\nDELETE 1\nFETCH 2\nDELETE 2\nCLOSE\n");
	md = maildir_text();
	ck_assert_str_eq(md, "Subject: m1\n\none\n|Subject: m2\n\ntwo\n|");
	free(md);
	run_cleanup(cfg);
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

	tc = tcase_create("run");
	tcase_add_test(tc, test_run_goes_on);
	tcase_add_test(tc, test_run_no_hint);
	tcase_add_test(tc, test_run_stalls);
	tcase_add_test(tc, test_run_progress);
	tcase_add_test(tc, test_run_skipped_once);
	tcase_add_test(tc, test_run_login_refused);
	tcase_add_test(tc, test_run_token_refused);
	tcase_add_test(tc, test_run_token_expired);
	suite_add_tcase(s, tc);
	return s;
}
