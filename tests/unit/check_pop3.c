/*
 * The POP3 plugin: its reply parsers and the dot-unstuffing state machine
 * (table-driven, with broken input, fed byte by byte and split at every
 * point), and its fetch logic run against a mock host table that plays a
 * scripted server dialogue (no dlopen, no network).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/plugin.h>

#include "pop3-parse.h"
#include "secret.h"
#include "suites.h"

/* The plugin itself, compiled here: the test program already holds the
 * IMAP plugin's pullmail_plugin, so this one is renamed. */
#define pullmail_plugin pop3_test_plugin
/* A small listing bound, so a test can pass it cheaply. */
#define POP3_LIST_MAX 200
#include "pop3.c"
#undef pullmail_plugin

/* --- status lines -------------------------------------------------------- */

static const struct status_case {
	const char *line;
	int sasl;
	int rc;
	int status;
	const char *text;
} status_cases[] = {
	{ "+OK Dovecot ready.", 0, PM_OK, POP3_OK, "Dovecot ready." },
	{ "+OK", 0, PM_OK, POP3_OK, "" },
	{ "+OK ", 0, PM_OK, POP3_OK, "" },
	{ "+ok fine", 0, PM_OK, POP3_OK, "fine" },
	{ "-ERR [AUTH] Authentication failed.", 0, PM_OK, POP3_ERR,
	  "[AUTH] Authentication failed." },
	{ "-ERR", 0, PM_OK, POP3_ERR, "" },
	{ "+ ", 1, PM_OK, POP3_CONT, "" },
	{ "+", 1, PM_OK, POP3_CONT, "" },
	{ "+ eyJzdGF0dXMiOiI0MDEifQ==", 1, PM_OK, POP3_CONT,
	  "eyJzdGF0dXMiOiI0MDEifQ==" },
	{ "+OK Logged in.", 1, PM_OK, POP3_OK, "Logged in." },
	{ "-ERR Protocol error. Connection is closed.", 1, PM_OK, POP3_ERR,
	  "Protocol error. Connection is closed." },
	/* broken: garbage status */
	{ .line = "", .rc = PM_EPROTO },
	{ .line = "OK", .rc = PM_EPROTO },
	{ .line = "+OKAY", .rc = PM_EPROTO },
	{ .line = "-ER", .rc = PM_EPROTO },
	{ .line = "-ERROR x", .rc = PM_EPROTO },
	{ .line = " +OK", .rc = PM_EPROTO },
	{ .line = "* OK IMAP here", .rc = PM_EPROTO },
	{ .line = "+ challenge", .sasl = 0, .rc = PM_EPROTO },
	{ .line = "+", .sasl = 0, .rc = PM_EPROTO },
	{ .line = "+x", .sasl = 1, .rc = PM_EPROTO },
	{ .line = "HTTP/1.1 400 Bad Request", .rc = PM_EPROTO },
};

START_TEST(test_status)
{
	const struct status_case *c = &status_cases[_i];
	const char *text;
	char *err = NULL;
	int rc, st;

	rc = pop3_parse_status(c->line, strlen(c->line), c->sasl, &st, &text,
	    &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_ptr_null(err);
	ck_assert_int_eq(st, c->status);
	ck_assert_str_eq(text, c->text);
}
END_TEST

/* A NUL inside, and an overlong status line, are refused. */
START_TEST(test_status_broken_bytes)
{
	static const char nul[] = "+OK fi\0ne";
	const char *text;
	char *err = NULL, *big;
	int st;

	ck_assert_int_eq(pop3_parse_status(nul, sizeof nul - 1, 0, &st, &text,
	    &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(err);
	err = NULL;
	big = malloc(POP3_STATUS_MAX + 2);
	memcpy(big, "+OK ", 4);
	memset(big + 4, 'x', POP3_STATUS_MAX - 3);
	big[POP3_STATUS_MAX + 1] = '\0';
	ck_assert_int_eq(pop3_parse_status(big, POP3_STATUS_MAX + 1, 0, &st,
	    &text, &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	free(err);
	err = NULL;
	/* Exactly the limit is fine. */
	ck_assert_int_eq(pop3_parse_status(big, POP3_STATUS_MAX, 0, &st,
	    &text, &err), PM_OK);
	/* Garbage is quoted, control characters made harmless. */
	ck_assert_int_eq(pop3_parse_status("\033[31mboom", 9, 0, &st, &text,
	    &err), PM_EPROTO);
	ck_assert_str_eq(err, "malformed status line \"?[31mboom\"");
	free(err);
	free(big);
}
END_TEST

/* --- multi-line listings ------------------------------------------------- */

START_TEST(test_multiline)
{
	const char *d;
	size_t n;

	ck_assert_int_eq(pop3_multiline(".", 1, &d, &n), 1);
	ck_assert_int_eq(pop3_multiline("..", 2, &d, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(d[0], '.');
	ck_assert_int_eq(pop3_multiline("..x", 3, &d, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(d, ".x", 2), 0);
	ck_assert_int_eq(pop3_multiline("1 abc", 5, &d, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(pop3_multiline("", 0, &d, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_caps)
{
	static const char *const lines[] = {
		"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE",
		"sasl plain Login  xoauth2\tOAUTHBEARER", "USER", "stls",
		"IMPLEMENTATION Dovecot", "",
	};
	struct pop3_caps c;
	char *err = NULL;
	size_t i;

	memset(&c, 0, sizeof c);
	pop3_caps_reset(&c);
	ck_assert_str_eq(c.mechs, "");
	for (i = 0; i < sizeof lines / sizeof lines[0]; i++)
		ck_assert_int_eq(pop3_caps_line(lines[i], strlen(lines[i]),
		    &c, &err), PM_OK);
	ck_assert_int_eq(c.top, 1);
	ck_assert_int_eq(c.uidl, 1);
	ck_assert_int_eq(c.pipelining, 1);
	ck_assert_int_eq(c.user, 1);
	ck_assert_int_eq(c.stls, 1);
	ck_assert_str_eq(c.mechs, "PLAIN LOGIN XOAUTH2 OAUTHBEARER");
	/* "UIDLX" or "PIPELINING2" are other capabilities. */
	pop3_caps_reset(&c);
	ck_assert_int_eq(pop3_caps_line("UIDLX", 5, &c, &err), PM_OK);
	ck_assert_int_eq(pop3_caps_line("PIPELINING2", 11, &c, &err), PM_OK);
	ck_assert_int_eq(c.uidl, 0);
	ck_assert_int_eq(c.pipelining, 0);
	/* Broken: control characters. */
	ck_assert_int_eq(pop3_caps_line("SASL PL\001AIN", 11, &c, &err),
	    PM_EPROTO);
	ck_assert_ptr_nonnull(err);
	free(err);
	pop3_caps_free(&c);
}
END_TEST

static const struct uidl_case {
	const char *line;
	int rc;
	unsigned long num;
	const char *uid;
} uidl_cases[] = {
	{ "1 000000016a1b2c3d", PM_OK, 1, "000000016a1b2c3d" },
	{ "23 AQAAAFhM~!x", PM_OK, 23, "AQAAAFhM~!x" },
	{ "2147483647 z", PM_OK, 2147483647UL, "z" },
	{ "4 uid-with-trailing-space  ", PM_OK, 4, "uid-with-trailing-space" },
	{ "5 " "0123456789012345678901234567890123456789"
	  "012345678901234567890123456789", PM_OK, 5,
	  "0123456789012345678901234567890123456789"
	  "012345678901234567890123456789" },
	/* broken */
	{ .line = "", .rc = PM_EPROTO },
	{ .line = "1", .rc = PM_EPROTO },
	{ .line = "1 ", .rc = PM_EPROTO },
	{ .line = "0 abc", .rc = PM_EPROTO },
	{ .line = "-1 abc", .rc = PM_EPROTO },
	{ .line = "x abc", .rc = PM_EPROTO },
	{ .line = "1abc", .rc = PM_EPROTO },
	{ .line = "2147483648 abc", .rc = PM_EPROTO },
	{ .line = "99999999999999999999999 abc", .rc = PM_EPROTO },
	{ .line = "1 two words", .rc = PM_EPROTO },
	{ .line = "1 tab\there", .rc = PM_EPROTO },
	{ .line = "1 caf\xc3\xa9", .rc = PM_EPROTO },
	{ .line = "6 " "0123456789012345678901234567890123456789"
	  "0123456789012345678901234567890", .rc = PM_EPROTO },
};

START_TEST(test_uidl)
{
	const struct uidl_case *c = &uidl_cases[_i];
	const char *uid;
	unsigned long num;
	size_t ulen;
	char *err = NULL;
	int rc;

	rc = pop3_parse_uidl(c->line, strlen(c->line), &num, &uid, &ulen,
	    &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_uint_eq(num, c->num);
	ck_assert_uint_eq(ulen, strlen(c->uid));
	ck_assert_int_eq(memcmp(uid, c->uid, ulen), 0);
}
END_TEST

static const struct list_case {
	const char *line;
	int rc;
	unsigned long num;
	uint64_t size;
} list_cases[] = {
	{ "1 120", PM_OK, 1, 120 },
	{ "7 0", PM_OK, 7, 0 },
	{ "3 4294967296 extra info", PM_OK, 3, 4294967296ULL },
	{ "9 18446744073709551615", PM_OK, 9, UINT64_MAX },
	/* broken */
	{ .line = "", .rc = PM_EPROTO },
	{ .line = "1", .rc = PM_EPROTO },
	{ .line = "1 ", .rc = PM_EPROTO },
	{ .line = "1 -5", .rc = PM_EPROTO },
	{ .line = "1 12x", .rc = PM_EPROTO },
	{ .line = "0 12", .rc = PM_EPROTO },
	{ .line = "1 18446744073709551616", .rc = PM_EPROTO },
	{ .line = "one 12", .rc = PM_EPROTO },
};

START_TEST(test_list)
{
	const struct list_case *c = &list_cases[_i];
	unsigned long num;
	uint64_t size;
	char *err = NULL;
	int rc;

	rc = pop3_parse_list(c->line, strlen(c->line), &num, &size, &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_uint_eq(num, c->num);
	ck_assert_uint_eq(size, c->size);
}
END_TEST

/* Overlong UIDL and LIST lines are refused too. */
START_TEST(test_listing_overlong)
{
	const char *uid;
	unsigned long num;
	uint64_t size;
	size_t ulen;
	char *big, *err = NULL;

	big = malloc(POP3_STATUS_MAX + 10);
	memset(big, '1', POP3_STATUS_MAX + 9);
	big[1] = ' ';
	big[POP3_STATUS_MAX + 9] = '\0';
	ck_assert_int_eq(pop3_parse_uidl(big, strlen(big), &num, &uid, &ulen,
	    &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	free(err);
	err = NULL;
	ck_assert_int_eq(pop3_parse_list(big, strlen(big), &num, &size, &err),
	    PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	free(err);
	free(big);
}
END_TEST

/* --- dot-unstuffing ------------------------------------------------------ */

/* A body as it comes on the wire, what it is once unstuffed, and what
 * follows the terminator (NULL: no terminator at all). */
static const struct undot_case {
	const char *wire;
	const char *body;
	const char *rest;
} undot_cases[] = {
	{ ".\r\n", "", "" },
	{ "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n",
	  "" },
	/* a line of a single dot, a stuffed "..x", a "From " line */
	{ "a\r\n..\r\n...x\r\nFrom me\r\n.\r\n+OK next\r\n",
	  "a\r\n.\r\n..x\r\nFrom me\r\n", "+OK next\r\n" },
	{ "..\r\n.\r\n", ".\r\n", "" },
	{ "x.\r\n.y\r\n.\r\n", "x.\r\ny\r\n", "" },
	/* a dot not at the start of a line stays */
	{ "a.b\r\n a\r\n.\r\n-ERR", "a.b\r\n a\r\n", "-ERR" },
	/* a CR alone is no line end; ".\r" then more is a stuffed line */
	{ "a\r.\r\n.\r\n", "a\r.\r\n", "" },
	{ ".\rx\r\n.\r\n", "\rx\r\n", "" },
	{ ".\r\r\n.\r\n", "\r\r\n", "" },
	/* bare LF line ends, and a bare-LF terminator */
	{ "a\n..b\n.\nrest", "a\n.b\n", "rest" },
	/* what follows a terminator is not looked at */
	{ "a\r\n.\r\n..\r\n.\r\n", "a\r\n", "..\r\n.\r\n" },
	/* broken: no terminator */
	{ "a\r\n..\r\n", "a\r\n.\r\n", NULL },
	{ "a\r\n.", "a\r\n", NULL },
	{ "a\r\n.\r", "a\r\n", NULL },
	{ "", "", NULL },
	{ "no line end at all", "no line end at all", NULL },
};

/* Feed wire in pieces of the given sizes (cycled); check the result. */
static void
undot_run(const struct undot_case *c, const size_t *pieces, size_t np,
    const char *label)
{
	struct pop3_undot u;
	size_t wlen = strlen(c->wire), pos = 0, k = 0, n, olen, used;
	char *out, *got;
	size_t glen = 0;
	int done = 0;

	got = malloc(wlen + 2);
	out = malloc(wlen + 2);
	pop3_undot_init(&u);
	while (pos < wlen && !done) {
		n = pieces[k++ % np];
		if (n > wlen - pos)
			n = wlen - pos;
		done = pop3_undot(&u, c->wire + pos, n, out, &olen, &used);
		ck_assert_uint_le(olen, n + 1);
		ck_assert_uint_le(used, n);
		if (!done)
			ck_assert_uint_eq(used, n);
		memcpy(got + glen, out, olen);
		glen += olen;
		pos += used;
	}
	if (c->rest == NULL)
		ck_assert_msg(!done, "%s: \"%s\": terminator found", label,
		    c->wire);
	else {
		ck_assert_msg(done, "%s: \"%s\": no terminator", label,
		    c->wire);
		ck_assert_str_eq(c->wire + pos, c->rest);
	}
	ck_assert_msg(glen == strlen(c->body) &&
	    memcmp(got, c->body, glen) == 0, "%s: \"%s\": got \"%.*s\"",
	    label, c->wire, (int)glen, got);
	free(got);
	free(out);
}

START_TEST(test_undot_whole)
{
	static const size_t all[] = { 100000 };

	undot_run(&undot_cases[_i], all, 1, "whole");
}
END_TEST

START_TEST(test_undot_bytewise)
{
	static const size_t one[] = { 1 };

	undot_run(&undot_cases[_i], one, 1, "byte by byte");
}
END_TEST

/* Two reads, split at every point of the wire. */
START_TEST(test_undot_splits)
{
	const struct undot_case *c = &undot_cases[_i];
	size_t wlen = strlen(c->wire), cut, pieces[2];
	char label[32];

	for (cut = 1; cut < wlen; cut++) {
		pieces[0] = cut;
		pieces[1] = wlen;
		snprintf(label, sizeof label, "split at %zu", cut);
		undot_run(c, pieces, 2, label);
	}
}
END_TEST

/* An overlong line (4 MiB, no line end) streams through in chunks: the
 * state machine holds nothing but its state. */
START_TEST(test_undot_overlong_line)
{
	struct pop3_undot u;
	char in[4096], out[4097];
	size_t i, olen, used, total = 0;

	memset(in, 'x', sizeof in);
	in[0] = '.';	/* a dot that is not at the start of a line */
	pop3_undot_init(&u);
	ck_assert_int_eq(pop3_undot(&u, "y", 1, out, &olen, &used), 0);
	total += olen;
	for (i = 0; i < 1024; i++) {
		ck_assert_int_eq(pop3_undot(&u, in, sizeof in, out, &olen,
		    &used), 0);
		ck_assert_uint_eq(olen, sizeof in);
		total += olen;
	}
	ck_assert_int_eq(pop3_undot(&u, "\r\n.\r\n", 5, out, &olen, &used),
	    1);
	ck_assert_uint_eq(olen, 2);
	ck_assert_uint_eq(used, 5);
	ck_assert_uint_eq(total + olen, 1 + 4096 * 1024 + 2);
}
END_TEST

/* --- the plugin against a mock host -------------------------------------- */

struct pm_msg {
	char uid[80];
	char *data;
	size_t len;
};

/* The scripted server and everything the plugin did. */
static struct mock {
	const char *in;		/* what the server sends */
	size_t inlen, pos;
	size_t chunk;		/* most bytes read_bytes hands out */
	char line[70000];
	char *log;		/* one event per line */
	size_t loglen;
	char delivered[8192];	/* "UID:bytes|" per finished message */
	char known[256][80];	/* UIDs the state knows */
	size_t nknown;
	char pending[256][80];	/* finished, not yet committed */
	size_t npending;
	int commit_rc;		/* what commit() returns */
	const char *fail_uid;	/* msg_write fails for this UID */
	int fail_rc;		/* with this status (0: PM_ETEMP) */
	int open_msgs;		/* begun and not finished or aborted */
	int tls;		/* TLS is up */
	int no_tls;		/* connect() brings no TLS */
	size_t unread;		/* bytes given back */
	struct pm_account_info acct;
	struct pm_secret *pw;
} M;

/* Append one event to the log. */
static void PM_PRINTF(1, 2)
ev(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	M.log = realloc(M.log, M.loglen + n + 2);
	memcpy(M.log + M.loglen, s, n);
	M.loglen += n;
	M.log[M.loglen++] = '\n';
	M.log[M.loglen] = '\0';
	free(s);
}

/* Position of needle in the event log; fails the test when absent. */
static size_t
at(const char *needle)
{
	const char *p = strstr(M.log, needle);

	ck_assert_msg(p != NULL, "\"%s\" not in log:\n%s", needle, M.log);
	return p - M.log;
}

/* 1 when needle does not occur in the event log. */
static int
absent(const char *needle)
{
	return M.log == NULL || strstr(M.log, needle) == NULL;
}

static int PM_PRINTF(3, 4)
merr(char **err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		abort();
	va_end(ap);
	return rc;
}

static const struct pm_account_info *
m_account(struct pm_session *s)
{
	return &M.acct;
}

static void
m_log(struct pm_session *s, int level, const char *fmt, ...)
{
	va_list ap;
	char *t;

	va_start(ap, fmt);
	if (vasprintf(&t, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (level <= PM_LOG_INFO)
		ev("LOG %s", t);
	free(t);
}

static int
m_connect(struct pm_session *s, char **err)
{
	ev("CONNECT");
	M.tls = M.acct.tls == PM_TLS_IMPLICIT && !M.no_tls;
	return PM_OK;
}

static int
m_starttls(struct pm_session *s, char **err)
{
	ev("TLS");
	M.tls = 1;
	return PM_OK;
}

static int
m_tls_active(struct pm_session *s)
{
	return M.tls;
}

static int
m_send(struct pm_session *s, char **err, const char *fmt, ...)
{
	va_list ap;
	char *t;

	va_start(ap, fmt);
	if (vasprintf(&t, fmt, ap) < 0)
		abort();
	va_end(ap);
	ev("C: %s", t);
	free(t);
	return PM_OK;
}

static int
m_send_secret(struct pm_session *s, const char *prefix,
    const struct pm_secret *sec, char **err)
{
	if (!M.tls && M.acct.tls != PM_TLS_NONE)
		return merr(err, PM_ETLS, "refusing to send credentials");
	ev("C: %s<%s>", prefix, secret_reveal(sec));
	return PM_OK;
}

static int
m_read_line(struct pm_session *s, const char **line_r, size_t *len_r,
    char **err)
{
	const char *nl;
	size_t n;

	if (M.pos >= M.inlen)
		return merr(err, PM_ETEMP, "connection closed by server");
	nl = memchr(M.in + M.pos, '\n', M.inlen - M.pos);
	if (nl == NULL)
		return merr(err, PM_ETEMP, "connection closed by server");
	n = nl - (M.in + M.pos);
	memcpy(M.line, M.in + M.pos, n);
	M.pos += n + 1;
	if (n > 0 && M.line[n - 1] == '\r')
		n--;
	M.line[n] = '\0';
	*line_r = M.line;
	*len_r = n;
	return PM_OK;
}

static int
m_read_bytes(struct pm_session *s, void *buf, size_t len, size_t *got_r,
    char **err)
{
	size_t n = len;

	if (M.pos >= M.inlen)
		return merr(err, PM_ETEMP, "connection closed by server");
	if (n > M.chunk)
		n = M.chunk;
	if (n > M.inlen - M.pos)
		n = M.inlen - M.pos;
	memcpy(buf, M.in + M.pos, n);
	M.pos += n;
	*got_r = n;
	return PM_OK;
}

/* Bytes given back must be exactly the ones just read. */
static void
m_unread(struct pm_session *s, const void *buf, size_t len)
{
	ck_assert_uint_ge(M.pos, len);
	ck_assert_int_eq(memcmp(M.in + M.pos - len, buf, len), 0);
	M.pos -= len;
	M.unread += len;
}

static void
m_disconnect(struct pm_session *s)
{
	ev("DISCONNECT");
}

/* A small SASL engine: XOAUTH2 when offered, else PLAIN; it sends the
 * initial response on the start line when the protocol allows it. */
static int
m_sasl_auth(struct pm_session *s, const struct pm_sasl_proto *p, void *ctx,
    const char *mechs, int ir, char **err)
{
	struct pm_secret *resp, *empty;
	const char *mech;
	char *text;
	int rc, kind, two;

	ev("SASL [%s] ir=%d max=%zu overhead=%zu two_step=%d", mechs, ir,
	    p->max_line, p->overhead, p->xoauth2_two_step);
	if (strstr(mechs, "XOAUTH2") != NULL)
		mech = "XOAUTH2";
	else if (strstr(mechs, "PLAIN") != NULL)
		mech = "PLAIN";
	else
		return merr(err, PM_ECONFIG, "no usable mechanism");
	two = p->xoauth2_two_step && strcmp(mech, "XOAUTH2") == 0;
	resp = secret_from_str("dG9rZW4=");
	empty = secret_from_str("");
	rc = p->start(ctx, mech, ir && !two ? resp : NULL, err);
	while (rc == PM_OK) {
		if ((rc = p->reply(ctx, &kind, &text, err)) != PM_OK)
			break;
		ev("SASL reply %d [%s]", kind, text);
		if (kind == PM_SASL_CONTINUE) {
			rc = p->respond(ctx, *text == '\0' ? resp : empty,
			    err);
			free(text);
			continue;
		}
		if (kind == PM_SASL_FAILURE)
			rc = merr(err, PM_EAUTH, "authentication failed: %s",
			    text);
		free(text);
		break;
	}
	secret_free(resp);
	secret_free(empty);
	return rc;
}

static const struct pm_secret *
m_password(struct pm_session *s)
{
	return M.pw;
}

static int
m_state_known(struct pm_session *s, const char *mailbox, const char *uid)
{
	size_t i;

	ck_assert_str_eq(mailbox, "");
	for (i = 0; i < M.nknown; i++) {
		if (strcmp(M.known[i], uid) == 0)
			return 1;
	}
	return 0;
}

/* Record uid in the mock state (as a commit does). */
static void
known_add(const char *uid)
{
	if (m_state_known(NULL, "", uid))
		return;
	ck_assert_uint_lt(M.nknown, sizeof M.known / sizeof M.known[0]);
	snprintf(M.known[M.nknown++], sizeof M.known[0], "%s", uid);
}

static int
m_state_prune(struct pm_session *s, const char *mailbox,
    const char *const *present, size_t n, char **err)
{
	char buf[1024] = "";
	size_t i;

	for (i = 0; i < n && strlen(buf) < sizeof buf - 100; i++) {
		strcat(buf, " ");
		strcat(buf, present[i]);
	}
	ev("PRUNE [%s]%s", mailbox, buf);
	/* Forget what is not present, as the real state does. */
	for (i = 0; i < M.nknown;) {
		size_t j;

		for (j = 0; j < n; j++)
			if (strcmp(present[j], M.known[i]) == 0)
				break;
		if (j < n) {
			i++;
			continue;
		}
		memmove(M.known[i], M.known[i + 1], (M.nknown - i - 1) *
		    sizeof M.known[0]);
		M.nknown--;
	}
	return PM_OK;
}

static int
m_msg_begin(struct pm_session *s, const char *mailbox, const char *uid,
    uint64_t size, struct pm_msg **msg_r, char **err)
{
	struct pm_msg *m;

	ck_assert_str_eq(mailbox, "");
	ev("BEGIN %s %llu", uid, (unsigned long long)size);
	m = calloc(1, sizeof *m);
	snprintf(m->uid, sizeof m->uid, "%s", uid);
	M.open_msgs++;
	*msg_r = m;
	return PM_OK;
}

static int
m_msg_write(struct pm_msg *m, const void *buf, size_t len, char **err)
{
	if (M.fail_uid != NULL && strcmp(M.fail_uid, m->uid) == 0)
		return merr(err, M.fail_rc != PM_OK ? M.fail_rc : PM_ETEMP,
		    "disk full");
	m->data = realloc(m->data, m->len + len);
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return PM_OK;
}

static int
m_msg_finish(struct pm_msg *m, char **err)
{
	size_t n = strlen(M.delivered);

	ev("FINISH %s", m->uid);
	snprintf(M.delivered + n, sizeof M.delivered - n, "%s:%.*s|", m->uid,
	    (int)m->len, m->data != NULL ? m->data : "");
	ck_assert_uint_lt(M.npending, sizeof M.pending / sizeof M.pending[0]);
	snprintf(M.pending[M.npending++], sizeof M.pending[0], "%s", m->uid);
	M.open_msgs--;
	free(m->data);
	free(m);
	return PM_OK;
}

static void
m_msg_abort(struct pm_msg *m)
{
	ev("ABORT %s", m->uid);
	M.open_msgs--;
	free(m->data);
	free(m);
}

static int
m_commit(struct pm_session *s, char **err)
{
	size_t i;

	ev("COMMIT");
	if (M.commit_rc != PM_OK)
		return merr(err, M.commit_rc, "state file: disk full");
	for (i = 0; i < M.npending; i++)
		known_add(M.pending[i]);
	M.npending = 0;
	return PM_OK;
}

static void
m_skipped(struct pm_session *s, const char *mailbox, const char *uid,
    uint64_t size)
{
	ev("SKIPPED %s %llu", uid, (unsigned long long)size);
}

static const char *
m_secret_data(const struct pm_secret *sec, size_t *len_r)
{
	*len_r = secret_len(sec);
	return secret_reveal(sec);
}

static const struct pm_host mock_host = {
	.abi = PM_PLUGIN_ABI,
	.account = m_account,
	.log = m_log,
	.connect = m_connect,
	.starttls = m_starttls,
	.tls_active = m_tls_active,
	.send = m_send,
	.send_secret = m_send_secret,
	.read_line = m_read_line,
	.read_bytes = m_read_bytes,
	.disconnect = m_disconnect,
	.sasl_auth = m_sasl_auth,
	.password = m_password,
	.state_known = m_state_known,
	.state_prune = m_state_prune,
	.msg_begin = m_msg_begin,
	.msg_write = m_msg_write,
	.msg_finish = m_msg_finish,
	.msg_abort = m_msg_abort,
	.commit = m_commit,
	.skipped = m_skipped,
	.secret_data = m_secret_data,
	.secret_new = secret_new,
	.secret_free = secret_free,
	.unread = m_unread,
};

/* Reset the mock for a dialogue in which the server says script. */
static void
mock_reset(const char *script)
{
	free(M.log);
	secret_free(M.pw);
	memset(&M, 0, sizeof M);
	M.in = script;
	M.inlen = strlen(script);
	M.chunk = 7;
	M.acct.name = "test";
	M.acct.server = "127.0.0.1";
	M.acct.port = 995;
	M.acct.tls = PM_TLS_IMPLICIT;
	M.acct.user = "joe@example.test";
	M.acct.keep = 1;
	M.acct.xoauth2_two_step = 1;
}

/* The next run against a server that says script: the state (known UIDs)
 * stays, the rest is reset. */
static void
mock_next(const char *script)
{
	free(M.log);
	M.log = NULL;
	M.loglen = 0;
	M.in = script;
	M.inlen = strlen(script);
	M.pos = 0;
	M.delivered[0] = '\0';
	M.npending = 0;
}

/* Run the plugin; returns its status, *err_r gets its reason. */
static int
mock_run(char **err_r)
{
	int rc;

	*err_r = NULL;
	rc = pop3_test_plugin.fetch(&mock_host, (struct pm_session *)&M,
	    err_r);
	ck_assert_int_eq(M.open_msgs, 0);
	return rc;
}

static void
mock_done(char *err)
{
	free(err);
	free(M.log);
	M.log = NULL;
	secret_free(M.pw);
	M.pw = NULL;
}

#define GREETING \
	"+OK Dovecot ready.\r\n"
#define CAPA_PIPE \
	"+OK\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nUSER\r\n" \
	"SASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n"
#define CAPA_PLAIN \
	"+OK\r\nUIDL\r\nUSER\r\nSASL PLAIN XOAUTH2\r\n.\r\n"
#define AUTH_OK \
	"+ \r\n+OK Logged in.\r\n"
#define UIDL_3 \
	"+OK\r\n1 u-one\r\n2 u-two\r\n3 u-three\r\n.\r\n"
#define LIST_3 \
	"+OK 3 messages\r\n1 9\r\n2 30\r\n3 11\r\n.\r\n"
#define BODY_1 "+OK 9 octets\r\nA: 1\r\n\r\nx\r\n.\r\n"
#define BODY_2 "+OK\r\nB: 2\r\n\r\n..\r\n...x\r\nFrom here\r\n.\r\n"
#define BODY_3 "+OK\r\nC: 3\r\n\r\n..\r\n.\r\n"
#define WANT_1 "u-one:A: 1\r\n\r\nx\r\n|"
#define WANT_2 "u-two:B: 2\r\n\r\n.\r\n..x\r\nFrom here\r\n|"
#define WANT_3 "u-three:C: 3\r\n\r\n.\r\n|"

/* PIPELINING: every RETR goes out before the first body is read; keep. */
START_TEST(test_plugin_pipelined_keep)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK Logging out.\r\n";
	static const char want[] =
	    "CONNECT\n"
	    "C: CAPA\n"
	    "SASL [PLAIN XOAUTH2 OAUTHBEARER] ir=1 max=255 overhead=8 "
	    "two_step=1\n"
	    "C: AUTH XOAUTH2\n"
	    "SASL reply 0 []\n"
	    "C: <dG9rZW4=>\n"
	    "SASL reply 1 [Logged in.]\n"
	    "C: CAPA\n"
	    "C: UIDL\n"
	    "C: LIST\n"
	    "PRUNE [] u-one u-two u-three\n"
	    "LOG 3 new of 3 messages\n"
	    "C: RETR 1\n"
	    "C: RETR 2\n"
	    "C: RETR 3\n"
	    "BEGIN u-one 9\n"
	    "FINISH u-one\n"
	    "BEGIN u-two 30\n"
	    "FINISH u-two\n"
	    "BEGIN u-three 11\n"
	    "FINISH u-three\n"
	    "COMMIT\n"
	    "C: QUIT\n"
	    "DISCONNECT\n";
	char *err;
	size_t chunk;

	/* Any read size: the body reader gives back what it read past the
	 * terminator. */
	for (chunk = 1; chunk <= 80; chunk++) {
		mock_reset(script);
		M.chunk = chunk;
		ck_assert_int_eq(mock_run(&err), PM_OK);
		ck_assert_ptr_null(err);
		ck_assert_str_eq(M.log, want);
		ck_assert_str_eq(M.delivered, WANT_1 WANT_2 WANT_3);
		ck_assert_uint_eq(M.pos, M.inlen);
		if (chunk > 20)
			ck_assert_uint_gt(M.unread, 0);
		mock_done(err);
	}
}
END_TEST

/* Without PIPELINING, one command at a time; keep = no deletes after the
 * commit, and known messages still there are deleted undelivered. */
START_TEST(test_plugin_delete_one_at_a_time)
{
	static const char script[] =
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN UIDL_3 LIST_3
	    "+OK\r\n"			/* DELE 2 (known) */
	    BODY_1 BODY_3
	    "+OK\r\n+OK\r\n"		/* DELE 1, DELE 3 */
	    "+OK Logging out.\r\n";
	static const char want[] =
	    "PRUNE [] u-one u-two u-three\n"
	    "LOG 2 new of 3 messages\n"
	    "LOG deleting 1 messages delivered by an earlier run\n"
	    "C: DELE 2\n"
	    "C: RETR 1\n"
	    "BEGIN u-one 9\n"
	    "FINISH u-one\n"
	    "C: RETR 3\n"
	    "BEGIN u-three 11\n"
	    "FINISH u-three\n"
	    "COMMIT\n"
	    "C: DELE 1\n"
	    "C: DELE 3\n"
	    "C: QUIT\n"
	    "PRUNE []\n"
	    "COMMIT\n"
	    "DISCONNECT\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	known_add("u-two");
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_str_eq(M.log + at("PRUNE"), want);
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	/* Every message is gone from the server, and from the state. */
	ck_assert_uint_eq(M.nknown, 0);
	mock_done(err);
}
END_TEST

/* A window of DELEs in flight with PIPELINING. */
START_TEST(test_plugin_delete_pipelined)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n-ERR no such message\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	static const char want[] =
	    "COMMIT\n"
	    "C: DELE 1\n"
	    "C: DELE 2\n"
	    "C: DELE 3\n"
	    "LOG DELE 2 failed: -ERR no such message\n"
	    "C: QUIT\n"
	    "PRUNE [] u-two\n"
	    "COMMIT\n"
	    "DISCONNECT\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_str_eq(M.log + at("COMMIT"), want);
	/* The one whose DELE was refused stays recorded: deleted next run. */
	ck_assert_uint_eq(M.nknown, 1);
	ck_assert_str_eq(M.known[0], "u-two");
	mock_done(err);
}
END_TEST

/* The connection drops in the middle of a body: the message is aborted,
 * the ones before it are committed, nothing is deleted, no QUIT. */
START_TEST(test_plugin_cut_mid_retr)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 "+OK\r\nB: 2\r\n\r\n..\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "RETR 2: connection closed by server");
	at("FINISH u-one\nBEGIN u-two 30\nABORT u-two\nCOMMIT\nDISCONNECT\n");
	ck_assert(absent("DELE"));
	ck_assert(absent("QUIT"));
	ck_assert_str_eq(M.delivered, WANT_1);
	mock_done(err);
}
END_TEST

/* A garbage status line instead of a RETR response: a protocol error,
 * nothing deleted. */
START_TEST(test_plugin_garbage_status)
{
	static const char script[] =
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN UIDL_3 LIST_3
	    BODY_1 "* OK this is IMAP\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "RETR 2: malformed status line "
	    "\"* OK this is IMAP\"");
	ck_assert(absent("DELE"));
	ck_assert(absent("QUIT"));
	at("FINISH u-one\nC: RETR 2\nCOMMIT\nDISCONNECT\n");
	mock_done(err);
}
END_TEST

/* A delivery failure: no more RETRs, those in flight are read and dropped,
 * the earlier ones are committed and deleted, QUIT commits the deletes. */
START_TEST(test_plugin_delivery_fails)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n+OK\r\n"		/* DELE 1, DELE 3 */
	    "+OK Logging out.\r\n";
	char *err;

	/* The failed message stays on the server; the others go on. */
	mock_reset(script);
	M.acct.keep = 0;
	M.fail_uid = "u-two";
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "disk full");
	at("BEGIN u-two 30\nABORT u-two\nLOG disk full; the message stays "
	    "on the server\nBEGIN u-three 11\nFINISH u-three\nCOMMIT\n"
	    "C: DELE 1\nC: DELE 3\nC: QUIT\n");
	ck_assert(absent("DELE 2"));
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert_uint_eq(M.pos, M.inlen);
	/* The deleted ones are forgotten; the failed one was never known. */
	at("C: QUIT\nPRUNE [] u-two\nCOMMIT\nDISCONNECT\n");
	ck_assert_uint_eq(M.nknown, 0);
	mock_done(err);
}
END_TEST

/* A RETR the server refuses: the message stays on the server, the others
 * go on, and the run reports a temporary failure (it is not "nothing
 * new"). */
START_TEST(test_plugin_retr_refused)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 "-ERR [IN-USE] message locked\r\n" BODY_3
	    "+OK\r\n+OK\r\n"		/* DELE 1, DELE 3 */
	    "+OK Logging out.\r\n";
	static const char script_keep[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 "-ERR [IN-USE] message locked\r\n" BODY_3
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "RETR 2 (UIDL u-two) failed: -ERR [IN-USE] "
	    "message locked");
	at("FINISH u-one\nLOG RETR 2 (UIDL u-two) failed: -ERR [IN-USE] "
	    "message locked; the message stays on the server\n"
	    "BEGIN u-three 11\nFINISH u-three\nCOMMIT\n"
	    "C: DELE 1\nC: DELE 3\nC: QUIT\n");
	ck_assert(absent("BEGIN u-two"));
	ck_assert(absent("DELE 2"));
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert(!m_state_known(NULL, "", "u-two"));
	ck_assert_uint_eq(M.pos, M.inlen);
	mock_done(err);

	/* keep = yes: the same status, the others recorded. */
	mock_reset(script_keep);
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "RETR 2 (UIDL u-two) failed"));
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert(m_state_known(NULL, "", "u-one"));
	ck_assert(!m_state_known(NULL, "", "u-two"));
	ck_assert(m_state_known(NULL, "", "u-three"));
	at("COMMIT\nC: QUIT\nDISCONNECT\n");
	mock_done(err);

	/* A permanent delivery failure elsewhere still wins. */
	mock_reset(script);
	M.acct.keep = 0;
	M.fail_uid = "u-three";
	M.fail_rc = PM_EDELIVER;
	ck_assert_int_eq(mock_run(&err), PM_EDELIVER);
	ck_assert_str_eq(err, "disk full");
	mock_done(err);
}
END_TEST

/* keep = no and a server that reuses a UIDL (a re-sent identical message
 * under a header-hash UIDL): once a QUIT applied the deletes, the UIDL is
 * forgotten, so the new message is fetched, not deleted undelivered. */
START_TEST(test_plugin_reused_uidl)
{
	static const char script1[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n+OK\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	static const char script2[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE
	    "+OK\r\n1 u-two\r\n.\r\n+OK\r\n1 8\r\n.\r\n"
	    "+OK\r\nB: 2b\r\n\r\n.\r\n"
	    "+OK\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script1);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("C: DELE 3\nC: QUIT\nPRUNE []\nCOMMIT\nDISCONNECT\n");
	ck_assert_uint_eq(M.nknown, 0);
	mock_done(err);

	mock_next(script2);
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_ptr_null(err);
	at("LOG 1 new of 1 messages\nC: RETR 1\nBEGIN u-two 8\n"
	    "FINISH u-two\nCOMMIT\nC: DELE 1\nC: QUIT\nPRUNE []\n"
	    "COMMIT\n");
	ck_assert(absent("earlier run"));
	ck_assert_str_eq(M.delivered, "u-two:B: 2b\r\n\r\n|");
	ck_assert_uint_eq(M.nknown, 0);
	mock_done(err);
}
END_TEST

/* The connection is cut after the DELEs and before QUIT's answer: the
 * deletes did not happen and the state still lists the messages, so the
 * next run deletes them without fetching them again. */
START_TEST(test_plugin_cut_before_quit)
{
	static const char script1[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n+OK\r\n+OK\r\n";
	static const char script2[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    "+OK\r\n+OK\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script1);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "stay on the server until the next "
	    "run"));
	ck_assert_str_eq(M.log + at("C: QUIT"), "C: QUIT\nDISCONNECT\n");
	ck_assert_uint_eq(M.nknown, 3);
	mock_done(err);

	mock_next(script2);
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("LOG 0 new of 3 messages\n"
	    "LOG deleting 3 messages delivered by an earlier run\n"
	    "C: DELE 1\nC: DELE 2\nC: DELE 3\nCOMMIT\nC: QUIT\n"
	    "PRUNE []\nCOMMIT\nDISCONNECT\n");
	ck_assert(absent("RETR"));
	ck_assert(absent("BEGIN"));
	ck_assert_uint_eq(M.nknown, 0);
	mock_done(err);
}
END_TEST

/* No UIDL: a clear error and QUIT, unless fetch_all. */
START_TEST(test_plugin_no_uidl)
{
	static const char script[] =
	    GREETING "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" AUTH_OK
	    "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
	    "-ERR Unknown command\r\n" LIST_3
	    "+OK Logging out.\r\n";
	static const char script_all[] =
	    GREETING "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" AUTH_OK
	    "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
	    "-ERR Unknown command\r\n" LIST_3
	    BODY_1 BODY_2 BODY_3 "+OK\r\n+OK\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "does not support UIDL"));
	ck_assert_ptr_nonnull(strstr(err, "fetch_all = yes"));
	ck_assert(absent("RETR"));
	ck_assert(absent("PRUNE"));
	at("C: QUIT\n");
	mock_done(err);

	mock_reset(script_all);
	M.acct.fetch_all = 1;
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert(absent("PRUNE"));
	at("BEGIN no-uidl 1 9\n");
	at("COMMIT\nC: DELE 1\nC: DELE 2\nC: DELE 3\nC: QUIT\n");
	mock_done(err);
}
END_TEST

/* Messages over the size limit are skipped and reported, every run. */
START_TEST(test_plugin_size_limit)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_3
	    "+OK\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	M.acct.size_limit = 20;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("SKIPPED u-two 30\nLOG 2 new of 3 messages\n"
	    "LOG 1 messages over the size limit skipped\n"
	    "C: RETR 1\nC: RETR 3\n");
	at("COMMIT\nC: DELE 1\nC: DELE 3\nC: QUIT\n");
	ck_assert(absent("DELE 2"));
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	mock_done(err);
}
END_TEST

/* STLS, then CAPA again; a server without STLS is refused. */
START_TEST(test_plugin_stls)
{
	static const char script[] =
	    GREETING "+OK\r\nSTLS\r\nUSER\r\n.\r\n"
	    "+OK Begin TLS negotiation now.\r\n"
	    CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n.\r\n+OK\r\n.\r\n"
	    "+OK Logging out.\r\n";
	static const char script_no[] =
	    GREETING "+OK\r\nUSER\r\n.\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	M.acct.tls = PM_TLS_STARTTLS;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("CONNECT\nC: CAPA\nC: STLS\nTLS\nC: CAPA\nSASL [PLAIN XOAUTH2]");
	mock_done(err);

	mock_reset(script_no);
	M.acct.tls = PM_TLS_STARTTLS;
	ck_assert_int_eq(mock_run(&err), PM_ETLS);
	ck_assert_str_eq(err, "server does not offer STLS");
	ck_assert(absent("SASL"));
	mock_done(err);
}
END_TEST

/* USER/PASS when the server offers no SASL; its refusal is PM_EAUTH. */
START_TEST(test_plugin_user_pass)
{
	static const char script[] =
	    GREETING "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK\r\n+OK Logged in.\r\n"
	    "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK\r\n.\r\n+OK\r\n.\r\n"
	    "+OK Logging out.\r\n";
	static const char script_bad[] =
	    GREETING "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK\r\n-ERR [AUTH] Authentication failed.\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	M.pw = secret_from_str("s3cret pass");
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("C: USER joe@example.test\nC: PASS <s3cret pass>\nC: CAPA\n");
	ck_assert(absent("SASL"));
	mock_done(err);

	mock_reset(script_bad);
	M.pw = secret_from_str("wrong");
	ck_assert_int_eq(mock_run(&err), PM_EAUTH);
	ck_assert_str_eq(err, "server refused the USER/PASS login for "
	    "joe@example.test: [AUTH] Authentication failed.");
	ck_assert_ptr_null(strstr(err, "wrong"));
	mock_done(err);

	/* Never in clear unless tls = none. */
	mock_reset(script);
	M.no_tls = 1;
	M.pw = secret_from_str("s3cret");
	ck_assert_int_eq(mock_run(&err), PM_ETLS);
	ck_assert_ptr_nonnull(strstr(err, "unencrypted"));
	ck_assert(absent("USER"));
	mock_done(err);

	/* A password PASS cannot carry. */
	mock_reset(script);
	M.pw = secret_from_str("a\r\nDELE 1");
	ck_assert_int_eq(mock_run(&err), PM_ECONFIG);
	ck_assert(absent("PASS"));
	mock_done(err);
}
END_TEST

/* An AUTH refusal, and a -ERR greeting. */
START_TEST(test_plugin_auth_refused)
{
	static const char script[] =
	    GREETING CAPA_PLAIN
	    "+ \r\n-ERR Protocol error. Connection is closed.\r\n"
	    "+OK Logging out.\r\n";
	static const char script_greet[] =
	    "-ERR too many connections\r\n";
	char *err;

	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_EAUTH);
	ck_assert_str_eq(err, "authentication failed: Protocol error. "
	    "Connection is closed.");
	mock_done(err);

	mock_reset(script_greet);
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "server refused the session: -ERR too many "
	    "connections");
	ck_assert(absent("QUIT"));
	mock_done(err);
}
END_TEST

/* pop3_xoauth2_two_step = no lets the engine send the response at once. */
START_TEST(test_plugin_one_step)
{
	static const char script[] =
	    GREETING CAPA_PLAIN "+OK Logged in.\r\n" CAPA_PLAIN
	    "+OK\r\n.\r\n+OK\r\n.\r\n"
	    "+OK Logging out.\r\n";
	char *err;

	mock_reset(script);
	M.acct.xoauth2_two_step = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("two_step=0\nC: AUTH XOAUTH2 <dG9rZW4=>\n");
	mock_done(err);
}
END_TEST

/* Broken listings: UIDL and LIST disagree, a duplicate UIDL, garbage. */
START_TEST(test_plugin_broken_listing)
{
	static const char *const scripts[] = {
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n1 5\r\n.\r\n",
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a\r\n2 a\r\n.\r\n+OK\r\n1 5\r\n2 6\r\n.\r\n",
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a\r\n3 b\r\n.\r\n+OK\r\n1 5\r\n2 6\r\n.\r\n",
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a b\r\n.\r\n",
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a\r\n.\r\n+OK\r\n1 five\r\n.\r\n",
	    GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK\r\n1 a\r\n.\r\n-ERR no\r\n+OK bye\r\n",
	};
	static const char *const want[] = {
	    "UIDL lists 2 messages, LIST 1",
	    "messages 1 and 2 have the same UIDL",
	    "message 3 is in the UIDL listing but not in LIST",
	    "malformed UIDL line \"1 a b\"",
	    "malformed LIST line \"1 five\"",
	    "LIST failed: -ERR no",
	};
	char *err;
	size_t i;

	for (i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		mock_reset(scripts[i]);
		M.acct.keep = 0;
		ck_assert_int_eq(mock_run(&err), PM_EPROTO);
		ck_assert_str_eq(err, want[i]);
		ck_assert(absent("RETR"));
		ck_assert(absent("DELE"));
		mock_done(err);
	}
}
END_TEST

/* A listing longer than POP3_LIST_MAX is refused (a hostile server could
 * otherwise exhaust memory); exactly the bound is fine. */
START_TEST(test_plugin_listing_bound)
{
	char *script, *p, *err;
	size_t i, cap = 64 * 1024;

	script = malloc(cap);
	/* UIDL too long. */
	p = script;
	p += sprintf(p, GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN "+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX + 1; i++)
		p += sprintf(p, "%zu u%zu\r\n", i, i);
	p += sprintf(p, ".\r\n");
	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "the UIDL listing names more than 200 messages");
	ck_assert(absent("LIST"));
	ck_assert(absent("PRUNE"));
	ck_assert(absent("QUIT"));
	mock_done(err);

	/* LIST too long (without UIDL, fetch_all). */
	p = script;
	p += sprintf(p, GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "-ERR no UIDL\r\n+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX + 1; i++)
		p += sprintf(p, "%zu 9\r\n", i);
	p += sprintf(p, ".\r\n");
	mock_reset(script);
	M.acct.fetch_all = 1;
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "the LIST listing names more than 200 messages");
	ck_assert(absent("RETR"));
	ck_assert(absent("QUIT"));
	mock_done(err);

	/* Exactly the bound (every message skipped for its size). */
	p = script;
	p += sprintf(p, GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN "+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX; i++)
		p += sprintf(p, "%zu u%zu\r\n", i, i);
	p += sprintf(p, ".\r\n+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX; i++)
		p += sprintf(p, "%zu 9\r\n", i);
	p += sprintf(p, ".\r\n+OK bye\r\n");
	ck_assert_uint_lt((size_t)(p - script), cap);
	mock_reset(script);
	M.acct.size_limit = 5;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("LOG 0 new of 200 messages\n");
	at("C: QUIT\n");
	ck_assert_uint_eq(M.pos, M.inlen);
	mock_done(err);
	free(script);
}
END_TEST

/* QUIT refused with keep = no: the deletions did not happen; say so. */
START_TEST(test_plugin_quit_refused)
{
	static const char script[] =
	    GREETING CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3 "+OK\r\n+OK\r\n+OK\r\n"
	    "-ERR Some deleted messages were not removed.\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "QUIT failed: -ERR Some deleted messages were "
	    "not removed.; messages marked for deletion stay on the server "
	    "until the next run");
	/* The state keeps them: the next run deletes them. */
	ck_assert_str_eq(M.log + at("C: QUIT"), "C: QUIT\nDISCONNECT\n");
	ck_assert_uint_eq(M.nknown, 3);
	mock_done(err);
}
END_TEST

/* a before b, both present. */
#define PTR_LT(a, b) ((a) != NULL && (b) != NULL && (a) < (b))

/* More messages than a batch: several commits, each before its DELEs. */
START_TEST(test_plugin_batches)
{
	char *script, *p;
	size_t i, n = POP3_BATCH * 2 + 3, cap = 200000;
	char *err;
	const char *c1, *d1, *c2;

	script = malloc(cap);
	p = script;
	p += sprintf(p, GREETING CAPA_PIPE AUTH_OK CAPA_PIPE "+OK\r\n");
	for (i = 1; i <= n; i++)
		p += sprintf(p, "%zu uid%zu\r\n", i, i);
	p += sprintf(p, ".\r\n+OK\r\n");
	for (i = 1; i <= n; i++)
		p += sprintf(p, "%zu 7\r\n", i);
	p += sprintf(p, ".\r\n");
	for (i = 1; i <= n; i++) {
		p += sprintf(p, "+OK\r\nN: %zu\r\n.\r\n", i);
		if (i % POP3_BATCH == 0 || i == n) {
			size_t j;

			for (j = 0; j < (i % POP3_BATCH ? i % POP3_BATCH :
			    POP3_BATCH); j++)
				p += sprintf(p, "+OK\r\n");
		}
	}
	p += sprintf(p, "+OK bye\r\n");
	ck_assert_uint_lt((size_t)(p - script), cap);
	mock_reset(script);
	M.acct.keep = 0;
	M.chunk = 4096;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	c1 = strstr(M.log, "COMMIT");
	d1 = strstr(M.log, "C: DELE 1\n");
	ck_assert_ptr_nonnull(c1);
	ck_assert_ptr_nonnull(d1);
	ck_assert(PTR_LT(c1, d1));
	ck_assert(PTR_LT(strstr(M.log, "FINISH uid50\n"), c1));
	ck_assert(PTR_LT(d1, strstr(M.log, "BEGIN uid51 ")));
	c2 = strstr(c1 + 1, "COMMIT");
	ck_assert_ptr_nonnull(c2);
	ck_assert(PTR_LT(c2, strstr(M.log, "C: DELE 51\n")));
	at("C: DELE 103\nC: QUIT\n");
	ck_assert_uint_eq(M.pos, M.inlen);
	mock_done(err);
	free(script);
}
END_TEST

/* The exported entry: magic, ABI, name, default ports. */
START_TEST(test_plugin_entry)
{
	ck_assert_uint_eq(pop3_test_plugin.magic, PM_PLUGIN_MAGIC);
	ck_assert_uint_eq(pop3_test_plugin.abi, PM_PLUGIN_ABI);
	ck_assert_str_eq(pop3_test_plugin.name, "pop3");
	ck_assert_uint_eq(pop3_test_plugin.port_tls, 995);
	ck_assert_uint_eq(pop3_test_plugin.port_plain, 110);
}
END_TEST

Suite *
suite_pop3(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("pop3");
	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_status, 0,
	    sizeof status_cases / sizeof status_cases[0]);
	tcase_add_test(tc, test_status_broken_bytes);
	tcase_add_test(tc, test_multiline);
	tcase_add_test(tc, test_caps);
	tcase_add_loop_test(tc, test_uidl, 0,
	    sizeof uidl_cases / sizeof uidl_cases[0]);
	tcase_add_loop_test(tc, test_list, 0,
	    sizeof list_cases / sizeof list_cases[0]);
	tcase_add_test(tc, test_listing_overlong);
	suite_add_tcase(s, tc);

	tc = tcase_create("undot");
	tcase_add_loop_test(tc, test_undot_whole, 0,
	    sizeof undot_cases / sizeof undot_cases[0]);
	tcase_add_loop_test(tc, test_undot_bytewise, 0,
	    sizeof undot_cases / sizeof undot_cases[0]);
	tcase_add_loop_test(tc, test_undot_splits, 0,
	    sizeof undot_cases / sizeof undot_cases[0]);
	tcase_add_test(tc, test_undot_overlong_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("plugin");
	tcase_add_test(tc, test_plugin_pipelined_keep);
	tcase_add_test(tc, test_plugin_delete_one_at_a_time);
	tcase_add_test(tc, test_plugin_delete_pipelined);
	tcase_add_test(tc, test_plugin_cut_mid_retr);
	tcase_add_test(tc, test_plugin_garbage_status);
	tcase_add_test(tc, test_plugin_delivery_fails);
	tcase_add_test(tc, test_plugin_retr_refused);
	tcase_add_test(tc, test_plugin_reused_uidl);
	tcase_add_test(tc, test_plugin_cut_before_quit);
	tcase_add_test(tc, test_plugin_no_uidl);
	tcase_add_test(tc, test_plugin_size_limit);
	tcase_add_test(tc, test_plugin_stls);
	tcase_add_test(tc, test_plugin_user_pass);
	tcase_add_test(tc, test_plugin_auth_refused);
	tcase_add_test(tc, test_plugin_one_step);
	tcase_add_test(tc, test_plugin_broken_listing);
	tcase_add_test(tc, test_plugin_listing_bound);
	tcase_add_test(tc, test_plugin_quit_refused);
	tcase_add_test(tc, test_plugin_batches);
	tcase_add_test(tc, test_plugin_entry);
	suite_add_tcase(s, tc);
	return s;
}
