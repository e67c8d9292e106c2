/*
 * The POP3 plugin's own test program: its reply parsers and the
 * dot-unstuffing state machine (table-driven, with broken input, fed byte
 * by byte and split at every point), and its slots (open, select, list,
 * fetch, dispose, close) run against the shared mock host, which plays a
 * scripted server dialogue (no dlopen, no network).  Which messages are
 * fetched or deleted is the fetch engine's policy and tested there.
 *
 * Built with POP3_LIST_MAX 200 and POP3_WINDOW 4 (Makefile.am), so the
 * tests reach the listing bound and the pipelining window cheaply.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <pullmail/plugin.h>

#include "mock-host.h"
#include "pop3-parse.h"
#include "secret.h"

/* The plugin under test, linked in from pop3.c. */
extern const struct pm_plugin pullmail_plugin;
#define P pullmail_plugin

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

/* --- CAPA ---------------------------------------------------------------- */

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
	/* Several SASL lines add up, in order. */
	ck_assert_int_eq(pop3_caps_line("SASL GSSAPI", 11, &c, &err), PM_OK);
	ck_assert_int_eq(pop3_caps_line("SASL  cram-md5 SCRAM-SHA-256 ", 29,
	    &c, &err), PM_OK);
	ck_assert_str_eq(c.mechs, "PLAIN LOGIN XOAUTH2 OAUTHBEARER GSSAPI "
	    "CRAM-MD5 SCRAM-SHA-256");
	ck_assert_uint_eq(c.mlen, strlen(c.mechs));
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

/*
 * A CAPA of 800 KB of SASL lines (which anyone on the path can send before
 * STLS) is refused at the bound with a clear error, having taken at most
 * POP3_CAPA_BYTES_MAX bytes of mechanisms; up to the bound every word
 * counts.  Before the bound and the linear append, this cost minutes.
 */
START_TEST(test_caps_bound)
{
	static const char line[] = "SASL XOAUTH2 PLAIN LOGIN OAUTHBEARER "
	    "GSSAPI NTLM CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256 EXTERNAL";
	struct pop3_caps c;
	char *err = NULL, big[POP3_STATUS_MAX];
	size_t i, len = sizeof line - 1, n = 0;
	int rc = PM_OK;

	memset(&c, 0, sizeof c);
	pop3_caps_reset(&c);
	for (i = 0; i < 800 * 1024 / len && rc == PM_OK; i++, n++)
		rc = pop3_caps_line(line, len, &c, &err);
	ck_assert_int_eq(rc, PM_EPROTO);
	ck_assert_str_eq(err, "the CAPA response is longer than 100 lines or "
	    "16384 bytes: not a POP3 server's list of capabilities");
	free(err);
	err = NULL;
	ck_assert_uint_eq(n, POP3_CAPA_LINES_MAX + 1);
	ck_assert_uint_le(c.mlen, POP3_CAPA_BYTES_MAX);
	ck_assert_uint_eq(c.mlen, (len - 5 + 1) * POP3_CAPA_LINES_MAX - 1);
	/* The byte bound: few lines, but long ones. */
	pop3_caps_reset(&c);
	memset(big, 'A', sizeof big);
	memcpy(big, "SASL ", 5);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(pop3_caps_line(big, sizeof big, &c, &err),
		    PM_OK);
	ck_assert_int_eq(pop3_caps_line(big, sizeof big, &c, &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "16384 bytes"));
	free(err);
	/* A reset starts the count again. */
	pop3_caps_reset(&c);
	ck_assert_int_eq(pop3_caps_line("UIDL", 4, &c, &err), PM_OK);
	ck_assert_int_eq(c.uidl, 1);
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
	/* A bare LF ends no line: no terminator, no stuffing after it
	 * (servers stuff only lines that start after CRLF). */
	{ "a\n..b\n.\nrest", "a\n..b\n.\nrest", NULL },
	{ "x\n.\ny\r\n.\r\n", "x\n.\ny\r\n", "" },
	{ "x\n.\r\ny\r\n.\r\n", "x\n.\r\ny\r\n", "" },
	{ "x\r\n.\ny\r\n.\r\n", "x\r\n\ny\r\n", "" },
	{ ".\n.\r\n.\r\n", "\n.\r\n", "" },
	{ "\n.\n\r\n.\r\n", "\n.\n\r\n", "" },
	/* a message whose text holds a bare-LF "." line and a reply */
	{ "A: 1\r\n\r\ntext\n.\n+OK\r\nforged\r\n.\r\n+OK\r\n",
	  "A: 1\r\n\r\ntext\n.\n+OK\r\nforged\r\n", "+OK\r\n" },
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

/* --- the plugin against the mock host ------------------------------------ */

/* The mock host with every line read traced as "S: line", to show what
 * the plugin sent before it read an answer. */
static struct pm_host traced;

/* The session handle the mock host ignores. */
#define SESSION ((struct pm_session *)&M)
/* The fetch handle the mock sink ignores. */
#define FETCH ((struct pm_fetch *)&M)

/* trace: lines read with read_bytes, traced as read_line's. */
static void
t_trace(struct pm_session *s, const char *line, size_t len)
{
	(void)s;
	mock_ev("S: %.*s", (int)len, line);
}

/* read_line, traced. */
static int
t_read_line(struct pm_session *s, const char **line_r, size_t *len_r,
    char **err)
{
	int rc;

	rc = mock_host.read_line(s, line_r, len_r, err);
	if (rc == PM_OK)
		mock_ev("S: %s", *line_r);
	return rc;
}

/* Reset the mock for a dialogue in which the server says script: reads of
 * 7 bytes, XOAUTH2 in two steps (as for Microsoft 365). */
static void
reset(const char *script)
{
	mock_reset(script, 995);
	M.chunk = 7;
	M.acct.xoauth2_two_step = 1;
	M.acct.strict_size = PM_STRICT_SIZE_AUTO;
	traced = mock_host;
	traced.read_line = t_read_line;
	traced.trace = t_trace;
}

/* Free what the mock holds at the end of a test. */
static void
done(void)
{
	mock_reset("", 995);
}

/* Open through host h; the test fails unless it succeeds. */
static struct pm_conn *
open_ok(const struct pm_host *h)
{
	struct pm_conn *c = NULL;
	char *err = NULL;
	int rc;

	rc = P.open(h, SESSION, &c, &err);
	ck_assert_msg(rc == PM_OK, "open: %d %s\n%s", rc, err != NULL ? err :
	    "", mock_log());
	ck_assert_ptr_null(err);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Open through the mock host expecting failure want; returns the
 * reason (malloc'd).  Nothing may be left open. */
static char *
open_fails(int want)
{
	struct pm_conn *c = NULL;
	char *err = NULL;

	ck_assert_int_eq(P.open(&mock_host, SESSION, &c, &err), want);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(err);
	ck_assert_uint_gt(strlen(mock_log()), 11);
	ck_assert_str_eq(mock_log() + strlen(mock_log()) - 11,
	    "DISCONNECT\n");
	return err;
}

/* Select the maildrop and list it; the test fails unless both succeed. */
static const struct pm_entry *
list_ok(struct pm_conn *c, size_t *n_r, int *have_r)
{
	const struct pm_entry *e;
	struct pm_folder fo;
	char *err = NULL;
	int rc;

	ck_assert_int_eq(P.select(c, "", &fo, &err), PM_OK);
	rc = P.list(c, &e, n_r, have_r, &err);
	ck_assert_msg(rc == PM_OK, "list: %d %s\n%s", rc, err != NULL ? err :
	    "", mock_log());
	ck_assert_ptr_null(err);
	return e;
}

/* Select the maildrop and list it expecting failure want; returns the
 * reason (malloc'd). */
static char *
list_fails(struct pm_conn *c, int want)
{
	const struct pm_entry *e;
	struct pm_folder fo;
	char *err = NULL;
	size_t n;
	int have;

	ck_assert_int_eq(P.select(c, "", &fo, &err), PM_OK);
	ck_assert_int_eq(P.list(c, &e, &n, &have, &err), want);
	ck_assert_ptr_nonnull(err);
	return err;
}

/* Fetch idx[0..n) into the mock sink; every message begun is ended. */
static int
fetch(struct pm_conn *c, const size_t *idx, size_t n, char **err_r)
{
	int rc;

	*err_r = NULL;
	rc = P.fetch(c, idx, n, &mock_sink, FETCH, err_r);
	ck_assert_int_eq(M.open_msgs, 0);
	ck_assert((rc == PM_OK) == (*err_r == NULL));
	return rc;
}

/* Close c expecting status want; returns the reason (malloc'd) or NULL.
 * The connection is gone either way. */
static char *
close_rc(struct pm_conn *c, int want)
{
	char *err = NULL;

	ck_assert_int_eq(P.close(c, &err), want);
	ck_assert((want == PM_OK) == (err == NULL));
	ck_assert_uint_gt(strlen(mock_log()), 11);
	ck_assert_str_eq(mock_log() + strlen(mock_log()) - 11,
	    "DISCONNECT\n");
	return err;
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
#define LOGIN_PIPE	GREETING CAPA_PIPE AUTH_OK CAPA_PIPE
#define LOGIN_PLAIN	GREETING CAPA_PLAIN AUTH_OK CAPA_PLAIN
#define UIDL_3 \
	"+OK\r\n1 u-one\r\n2 u-two\r\n3 u-three\r\n.\r\n"
#define LIST_3 \
	"+OK 3 messages\r\n1 9\r\n2 27\r\n3 11\r\n.\r\n"
#define BODY_1 "+OK 9 octets\r\nA: 1\r\n\r\nx\r\n.\r\n"
#define BODY_2 "+OK\r\nB: 2\r\n\r\n..\r\n...x\r\nFrom here\r\n.\r\n"
#define BODY_3 "+OK\r\nC: 3\r\n\r\n..\r\n.\r\n"
#define WANT_1 "0:A: 1\r\n\r\nx\r\n|"
#define WANT_2 "1:B: 2\r\n\r\n.\r\n..x\r\nFrom here\r\n|"
#define WANT_3 "2:C: 3\r\n\r\n.\r\n|"

static const size_t ALL3[] = { 0, 1, 2 };

/* The exported entry: magic, ABI, name, default ports, flags, slots. */
START_TEST(test_plugin_entry)
{
	ck_assert_uint_eq(P.magic, PM_PLUGIN_MAGIC);
	ck_assert_uint_eq(P.abi, PM_PLUGIN_ABI);
	ck_assert_str_eq(P.name, "pop3");
	ck_assert_uint_eq(P.port_tls, 995);
	ck_assert_uint_eq(P.port_plain, 110);
	ck_assert_uint_eq(P.flags, PM_PLUGIN_DELETE_AT_CLOSE);
	ck_assert(P.open != NULL && P.select != NULL && P.list != NULL &&
	    P.fetch != NULL && P.dispose != NULL && P.close != NULL);
	ck_assert(P.wait == NULL);
}
END_TEST

/* A whole session with PIPELINING: every RETR of the set goes out before
 * the first body is read, bodies arrive unstuffed whatever the read size
 * (the reader gives back what it read past a terminator), DELEs go out
 * together, QUIT. */
START_TEST(test_plugin_session)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n+OK\r\n+OK\r\n"
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
	    "C: RETR 1\n"
	    "C: RETR 2\n"
	    "C: RETR 3\n"
	    "BEGIN 0\n"
	    "END 0 complete=1\n"
	    "BEGIN 1\n"
	    "END 1 complete=1\n"
	    "BEGIN 2\n"
	    "END 2 complete=1\n"
	    "C: DELE 1\n"
	    "C: DELE 2\n"
	    "C: DELE 3\n"
	    "C: QUIT\n"
	    "DISCONNECT\n";
	const struct pm_entry *e;
	struct pm_conn *c;
	unsigned char del[3];
	char *err;
	size_t chunk, n;
	int have;

	for (chunk = 1; chunk <= 80; chunk++) {
		reset(script);
		M.chunk = chunk;
		c = open_ok(&mock_host);
		e = list_ok(c, &n, &have);
		ck_assert_uint_eq(n, 3);
		ck_assert_int_eq(have, 1);
		ck_assert_str_eq(e[0].uid, "u-one");
		ck_assert_str_eq(e[1].uid, "u-two");
		ck_assert_str_eq(e[2].uid, "u-three");
		ck_assert_uint_eq(e[0].size, 9);
		ck_assert_uint_eq(e[1].size, 27);
		ck_assert_uint_eq(e[2].size, 11);
		ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
		ck_assert_str_eq(M.delivered, WANT_1 WANT_2 WANT_3);
		ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, ALL3, 3,
		    del, &err), PM_OK);
		ck_assert(del[0] == 1 && del[1] == 1 && del[2] == 1);
		ck_assert_ptr_null(close_rc(c, PM_OK));
		ck_assert_str_eq(mock_log(), want);
		ck_assert_uint_eq(M.pos, M.inlen);
		if (chunk > 20)
			ck_assert_uint_gt(M.unread, 0);
	}
	done();
}
END_TEST

/* With PIPELINING: UIDL and LIST go out before either answer is read;
 * RETR and DELE keep the window (4 in this build) full and no fuller. */
START_TEST(test_plugin_window)
{
	static const char script[] =
	    LOGIN_PIPE
	    "+OK\r\n1 a\r\n2 b\r\n3 c\r\n4 d\r\n5 e\r\n6 f\r\n.\r\n"
	    "+OK\r\n1 5\r\n2 5\r\n3 5\r\n4 5\r\n5 5\r\n6 5\r\n.\r\n"
	    "+OK\r\nN: 1\r\n.\r\n+OK\r\nN: 2\r\n.\r\n+OK\r\nN: 3\r\n.\r\n"
	    "+OK\r\nN: 4\r\n.\r\n+OK\r\nN: 5\r\n.\r\n+OK\r\nN: 6\r\n.\r\n"
	    "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n"
	    "+OK bye\r\n";
	static const char want[] =
	    "C: UIDL\nC: LIST\nS: +OK\nS: 1 a\n";
	static const char want_retr[] =
	    "C: RETR 1\nC: RETR 2\nC: RETR 3\nC: RETR 4\n"
	    "S: +OK\nBEGIN 0\nC: RETR 5\n"
	    "S: +OK\nEND 0 complete=1\nBEGIN 1\nC: RETR 6\n"
	    "S: +OK\nEND 1 complete=1\nBEGIN 2\n"
	    "S: +OK\nEND 2 complete=1\nBEGIN 3\n"
	    "S: +OK\nEND 3 complete=1\nBEGIN 4\n"
	    "S: +OK\nEND 4 complete=1\nBEGIN 5\nEND 5 complete=1\n"
	    "C: DELE 1\nC: DELE 2\nC: DELE 3\nC: DELE 4\n"
	    "S: +OK\nC: DELE 5\nS: +OK\nC: DELE 6\n"
	    "S: +OK\nS: +OK\nS: +OK\nS: +OK\n"
	    "C: QUIT\nS: +OK bye\nDISCONNECT\n";
	static const size_t all[] = { 0, 1, 2, 3, 4, 5 };
	struct pm_conn *c;
	unsigned char del[6];
	char *err;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&traced);
	list_ok(c, &n, &have);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(fetch(c, all, 6, &err), PM_OK);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, all, 6, del, &err),
	    PM_OK);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	mock_at(want);
	ck_assert_str_eq(mock_log() + mock_at("C: RETR 1\n"), want_retr);
	ck_assert_uint_eq(M.pos, M.inlen);
	done();
}
END_TEST

/* Without PIPELINING, exactly one command in flight: each answer is read
 * before the next command goes out (RFC 2449). */
START_TEST(test_plugin_one_at_a_time)
{
	static const char script[] =
	    LOGIN_PLAIN UIDL_3 LIST_3
	    BODY_1 BODY_2 BODY_3
	    "+OK\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	static const char want[] =
	    "C: UIDL\n"
	    "S: +OK\n"
	    "S: 1 u-one\n"
	    "S: 2 u-two\n"
	    "S: 3 u-three\n"
	    "S: .\n"
	    "C: LIST\n"
	    "S: +OK 3 messages\n"
	    "S: 1 9\n"
	    "S: 2 27\n"
	    "S: 3 11\n"
	    "S: .\n"
	    "C: RETR 1\n"
	    "S: +OK 9 octets\n"
	    "BEGIN 0\n"
	    "C: RETR 2\n"
	    "S: +OK\n"
	    "END 0 complete=1\n"
	    "BEGIN 1\n"
	    "C: RETR 3\n"
	    "S: +OK\n"
	    "END 1 complete=1\n"
	    "BEGIN 2\n"
	    "END 2 complete=1\n"
	    "C: DELE 1\n"
	    "S: +OK\n"
	    "C: DELE 3\n"
	    "S: +OK\n"
	    "C: QUIT\n"
	    "S: +OK Logging out.\n"
	    "DISCONNECT\n";
	static const size_t two[] = { 0, 2 };
	struct pm_conn *c;
	unsigned char del[2];
	char *err;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&traced);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(M.delivered, WANT_1 WANT_2 WANT_3);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, two, 2, del, &err),
	    PM_OK);
	ck_assert(del[0] == 1 && del[1] == 1);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert_str_eq(mock_log() + mock_at("C: UIDL\n"), want);
	ck_assert_uint_eq(M.pos, M.inlen);
	done();
}
END_TEST

/* Marking as seen is nothing to do in POP3: no command, nothing done. */
START_TEST(test_plugin_dispose_seen)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3 "+OK bye\r\n";
	struct pm_conn *c;
	unsigned char del[3] = { 7, 7, 7 };
	char *err = NULL;
	size_t n, before;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	before = strlen(mock_log());
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_SEEN, ALL3, 3, del, &err),
	    PM_OK);
	ck_assert_ptr_null(err);
	ck_assert(del[0] == 0 && del[1] == 0 && del[2] == 0);
	ck_assert_uint_eq(strlen(mock_log()), before);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();
}
END_TEST

/* A refused DELE is logged and the message left (done 0); the others are
 * marked, and QUIT applies them. */
START_TEST(test_plugin_dele_refused)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    "+OK\r\n-ERR no such message\r\n+OK\r\n"
	    "+OK Logging out.\r\n";
	static const char want[] =
	    "C: DELE 1\n"
	    "C: DELE 2\n"
	    "C: DELE 3\n"
	    "LOG DELE 2 failed: -ERR no such message\n"
	    "C: QUIT\n"
	    "DISCONNECT\n";
	struct pm_conn *c;
	unsigned char del[3];
	char *err = NULL;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, ALL3, 3, del, &err),
	    PM_OK);
	ck_assert_ptr_null(err);
	ck_assert(del[0] == 1 && del[1] == 0 && del[2] == 1);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert_str_eq(mock_log() + mock_at("C: DELE 1"), want);
	done();
}
END_TEST

/* QUIT refused after DELEs: the deletions did not happen; say so.  Without
 * DELEs a refused QUIT is just that. */
START_TEST(test_plugin_quit_refused)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3 "+OK\r\n+OK\r\n+OK\r\n"
	    "-ERR Some deleted messages were not removed.\r\n";
	static const char script_nodele[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    "-ERR Some deleted messages were not removed.\r\n";
	struct pm_conn *c;
	unsigned char del[3];
	char *err = NULL;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, ALL3, 3, del, &err),
	    PM_OK);
	err = close_rc(c, PM_ETEMP);
	ck_assert_str_eq(err, "QUIT failed: -ERR Some deleted messages were "
	    "not removed.; messages marked for deletion stay on the server "
	    "until the next run");
	ck_assert_str_eq(mock_log() + mock_at("C: QUIT"),
	    "C: QUIT\nDISCONNECT\n");
	free(err);

	reset(script_nodele);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	err = close_rc(c, PM_ETEMP);
	ck_assert_str_eq(err, "QUIT failed: -ERR Some deleted messages were "
	    "not removed.");
	free(err);
	done();
}
END_TEST

/* The connection is cut after the DELEs, before QUIT's answer: the
 * deletions did not take effect. */
START_TEST(test_plugin_cut_before_quit)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3 "+OK\r\n+OK\r\n+OK\r\n";
	struct pm_conn *c;
	unsigned char del[3];
	char *err = NULL;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, ALL3, 3, del, &err),
	    PM_OK);
	err = close_rc(c, PM_ETEMP);
	ck_assert_str_eq(err, "connection closed by server; messages marked "
	    "for deletion stay on the server until the next run");
	ck_assert_str_eq(mock_log() + mock_at("C: QUIT"),
	    "C: QUIT\nDISCONNECT\n");
	free(err);
	done();
}
END_TEST

/* The connection drops in the middle of a body: that message ends
 * incomplete, the one before stays delivered, nothing more is read or
 * sent and close() sends no QUIT.  With a DELE already accepted, close()
 * says the deletion did not take effect. */
START_TEST(test_plugin_cut_mid_retr)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    BODY_1 "+OK\r\nB: 2\r\n\r\n..\r\n";
	static const char script_dele[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    BODY_1 "+OK\r\n" "+OK\r\nB: 2\r\n\r\n..\r\n";
	static const size_t first[] = { 0 }, rest[] = { 1, 2 };
	struct pm_conn *c;
	unsigned char del[3];
	char *err = NULL;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_ETEMP);
	ck_assert_str_eq(err, "RETR 2: connection closed by server");
	free(err);
	ck_assert_str_eq(mock_log() + mock_at("BEGIN 0"),
	    "BEGIN 0\nEND 0 complete=1\nBEGIN 1\nHINT 2 0\n"
	    "END 1 complete=0\n");
	ck_assert_str_eq(M.delivered, WANT_1);
	/* Out of step: no more commands, no QUIT. */
	err = NULL;
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, first, 1, del,
	    &err), PM_EINTERNAL);
	free(err);
	ck_assert(mock_absent("DELE"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert(mock_absent("QUIT"));

	reset(script_dele);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, first, 1, &err), PM_OK);
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, first, 1, del,
	    &err), PM_OK);
	ck_assert_int_eq(del[0], 1);
	ck_assert_int_eq(fetch(c, rest, 2, &err), PM_ETEMP);
	free(err);
	err = close_rc(c, PM_ETEMP);
	ck_assert_str_eq(err, "the connection broke off before QUIT; "
	    "messages marked for deletion stay on the server until the next "
	    "run");
	ck_assert(mock_absent("QUIT"));
	free(err);
	done();
}
END_TEST

/*
 * A garbage status line instead of a RETR response: a protocol error, and
 * the message before it, whole as it seemed, is not kept (ended
 * incomplete), since a server out of step may have cut it short and sent
 * the rest as this reply.  With PIPELINING or without.
 */
START_TEST(test_plugin_garbage_status)
{
	static const char *const scripts[] = {
	    LOGIN_PLAIN UIDL_3 LIST_3 BODY_1 "* OK this is IMAP\r\n",
	    LOGIN_PIPE UIDL_3 LIST_3 BODY_1 "* OK this is IMAP\r\n",
	};
	struct pm_conn *c;
	char *err;
	size_t i, n;
	int have;

	for (i = 0; i < 2; i++) {
		reset(scripts[i]);
		c = open_ok(&mock_host);
		list_ok(c, &n, &have);
		ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_EPROTO);
		ck_assert_str_eq(err, "RETR 2: malformed status line "
		    "\"* OK this is IMAP\"; message 1 before it stays on the "
		    "server, as no well-formed reply followed it");
		free(err);
		ck_assert_str_eq(mock_log() + mock_at("BEGIN 0"), i == 0 ?
		    "BEGIN 0\nC: RETR 2\nEND 0 complete=0\n" :
		    "BEGIN 0\nEND 0 complete=0\n");
		ck_assert_ptr_null(M.delivered);
		ck_assert_ptr_null(close_rc(c, PM_OK));
		ck_assert(mock_absent("QUIT"));
		done();
	}
}
END_TEST

/*
 * With PIPELINING, a message whose text holds bare-LF "." lines (which
 * servers do not stuff) and a line that looks like a reply: only CRLF "."
 * CRLF ends it, so it arrives whole and the next message is the next
 * message, whatever the reads' sizes.  (The old reader ended it at the
 * "\n.\n" and delivered the rest under the next message's UIDL.)
 */
START_TEST(test_plugin_bare_lf_dot)
{
#define EVIL "A: 1\r\n\r\ntext\n.\n+OK\r\nSubject: forged\r\n\r\n" \
	"x\n.\r\nand\r\n.\nmore\r\n"
#define EVIL_UNDOT "A: 1\r\n\r\ntext\n.\n+OK\r\nSubject: forged\r\n\r\n" \
	"x\n.\r\nand\r\n\nmore\r\n"
	static const char script[] =
	    LOGIN_PIPE UIDL_3
	    "+OK\r\n1 56\r\n2 27\r\n3 11\r\n.\r\n"
	    "+OK\r\n" EVIL ".\r\n" BODY_2 BODY_3
	    "+OK Logging out.\r\n";
	struct pm_conn *c;
	char *err;
	size_t chunk, n;
	int have;

	ck_assert_uint_eq(strlen(EVIL_UNDOT), 56);
	for (chunk = 1; chunk <= 80; chunk++) {
		reset(script);
		M.chunk = chunk;
		c = open_ok(&mock_host);
		list_ok(c, &n, &have);
		ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
		ck_assert_str_eq(M.delivered, "0:" EVIL_UNDOT "|" WANT_2
		    WANT_3);
		ck_assert(mock_absent("MISSING"));
		ck_assert_ptr_null(close_rc(c, PM_OK));
		ck_assert_uint_eq(M.pos, M.inlen);
		done();
	}
#undef EVIL
#undef EVIL_UNDOT
}
END_TEST

/*
 * A message shorter than LIST said is not kept: ended incomplete, then
 * missing() with both numbers and what to do; the dialogue goes on.  With
 * pop3_strict_size = no it is kept, and so it is under the default auto
 * when the greeting is Microsoft Exchange's (whose sizes are estimates),
 * but not under yes.  Longer than LIST said is kept either way (message 1:
 * 11 bytes where LIST says 9).
 */
START_TEST(test_plugin_size_check)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3
	    "+OK\r\n1 9\r\n2 28\r\n3 11\r\n.\r\n"
	    BODY_1 BODY_2 BODY_3
	    "+OK Logging out.\r\n";
	static const char exchange[] =
	    "+OK The Microsoft Exchange POP3 service is ready.\r\n"
	    CAPA_PIPE AUTH_OK CAPA_PIPE UIDL_3
	    "+OK\r\n1 9\r\n2 28\r\n3 11\r\n.\r\n"
	    BODY_1 BODY_2 BODY_3
	    "+OK Logging out.\r\n";
	struct pm_conn *c;
	char *err;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(mock_log() + mock_at("BEGIN 1"),
	    "BEGIN 1\nEND 1 complete=0\n"
	    "MISSING 1 1 RETR 2: the server sent 27 bytes where LIST "
	    "announced 28, so the message may be cut short; it stays on the "
	    "server (if this server's LIST sizes are only estimates, as old "
	    "Microsoft Exchange and HP OpenMail give, set pop3_strict_size = "
	    "no)\n"
	    "BEGIN 2\nEND 2 complete=1\n");
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert_uint_eq(M.pos, M.inlen);
	done();

	reset(script);
	M.acct.strict_size = PM_STRICT_SIZE_NO;
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(M.delivered, WANT_1 WANT_2 WANT_3);
	ck_assert(mock_absent("MISSING"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();

	reset(exchange);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(M.delivered, WANT_1 WANT_2 WANT_3);
	ck_assert(mock_absent("MISSING"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();

	reset(exchange);
	M.acct.strict_size = PM_STRICT_SIZE_YES;
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert(!mock_absent("MISSING 1 1 RETR 2"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();
}
END_TEST

/*
 * Listings end only at CRLF "." CRLF too: a bare-LF "." in a UIDL listing
 * does not end it, and what follows is taken as part of its line (here
 * refused); a CAPA the same.
 */
START_TEST(test_plugin_listing_bare_lf)
{
	static const char script[] =
	    LOGIN_PIPE "+OK\r\n1 a\r\n.\n+OK\r\n1 5\r\n.\r\n";
	static const char script_capa[] =
	    GREETING "+OK\r\nUIDL\r\nSASL PLAIN\r\n.\n+ \r\n+OK\r\n";
	struct pm_conn *c;
	char *err;

	reset(script);
	c = open_ok(&mock_host);
	err = list_fails(c, PM_EPROTO);
	ck_assert_str_eq(err, "malformed UIDL line \"?+OK\"");
	free(err);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert(mock_absent("QUIT"));
	done();

	reset(script_capa);
	err = open_fails(PM_EPROTO);
	ck_assert_str_eq(err, "malformed CAPA line \"?+ \"");
	free(err);
	done();
}
END_TEST

/* A RETR the server refuses: missing() with the reason, and the dialogue
 * goes on with the next message. */
START_TEST(test_plugin_retr_refused)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    BODY_1 "-ERR [IN-USE] message locked\r\n" BODY_3
	    "+OK Logging out.\r\n";
	struct pm_conn *c;
	char *err;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_OK);
	ck_assert_str_eq(mock_log() + mock_at("END 0"),
	    "END 0 complete=1\n"
	    "MISSING 1 1 RETR 2 (UIDL u-two) failed: -ERR [IN-USE] message "
	    "locked\n"
	    "BEGIN 2\nEND 2 complete=1\n");
	ck_assert(mock_absent("BEGIN 1"));
	ck_assert_str_eq(M.delivered, WANT_1 WANT_3);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert_uint_eq(M.pos, M.inlen);
	done();
}
END_TEST

/* A server that refuses UIDL: the listing is LIST's, under made-up keys,
 * with have_uids 0.  With PIPELINING, LIST was sent with UIDL anyway. */
START_TEST(test_plugin_no_uidl)
{
	static const char script[] =
	    GREETING "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" AUTH_OK
	    "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
	    "-ERR Unknown command\r\n" LIST_3
	    BODY_1 "-ERR gone\r\n"
	    "+OK Logging out.\r\n";
	static const char script_pipe[] =
	    GREETING "+OK\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n" AUTH_OK
	    "+OK\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n"
	    "-ERR Unknown command\r\n" LIST_3
	    "+OK Logging out.\r\n";
	static const size_t two[] = { 0, 1 };
	const struct pm_entry *e;
	struct pm_conn *c;
	char *err;
	size_t n;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	e = list_ok(c, &n, &have);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(have, 0);
	ck_assert_str_eq(e[0].uid, "no-uidl 1");
	ck_assert_str_eq(e[1].uid, "no-uidl 2");
	ck_assert_str_eq(e[2].uid, "no-uidl 3");
	ck_assert_uint_eq(e[1].size, 27);
	ck_assert_int_eq(fetch(c, two, 2, &err), PM_OK);
	mock_at("C: RETR 2\nEND 0 complete=1\n"
	    "MISSING 1 1 RETR 2 failed: -ERR gone\n");
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();

	reset(script_pipe);
	c = open_ok(&traced);
	e = list_ok(c, &n, &have);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(have, 0);
	mock_at("C: UIDL\nC: LIST\nS: -ERR Unknown command\n"
	    "S: +OK 3 messages\n");
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();
}
END_TEST

/* STLS, then CAPA again; a server without STLS is refused. */
START_TEST(test_plugin_stls)
{
	static const char script[] =
	    GREETING "+OK\r\nSTLS\r\nUSER\r\n.\r\n"
	    "+OK Begin TLS negotiation now.\r\n"
	    CAPA_PLAIN AUTH_OK CAPA_PLAIN
	    "+OK Logging out.\r\n";
	static const char script_no[] =
	    GREETING "+OK\r\nUSER\r\n.\r\n"
	    "+OK Logging out.\r\n";
	struct pm_conn *c;
	char *err;

	reset(script);
	M.acct.tls = PM_TLS_STARTTLS;
	c = open_ok(&mock_host);
	mock_at("CONNECT\nC: CAPA\nC: STLS\nTLS\nC: CAPA\nSASL [PLAIN "
	    "XOAUTH2]");
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();

	reset(script_no);
	M.acct.tls = PM_TLS_STARTTLS;
	err = open_fails(PM_ETLS);
	ck_assert_str_eq(err, "server does not offer STLS");
	ck_assert(mock_absent("SASL"));
	ck_assert(mock_absent("STLS"));
	free(err);
	done();
}
END_TEST

/* USER/PASS when the server offers no SASL; its refusal is PM_EAUTH. */
START_TEST(test_plugin_user_pass)
{
	static const char script[] =
	    GREETING "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK\r\n+OK Logged in.\r\n"
	    "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK Logging out.\r\n";
	static const char script_bad[] =
	    GREETING "+OK\r\nUIDL\r\nUSER\r\n.\r\n"
	    "+OK\r\n-ERR [AUTH] Authentication failed.\r\n"
	    "+OK Logging out.\r\n";
	struct pm_conn *c;
	char *err;

	reset(script);
	M.pw = secret_from_str("s3cret pass");
	c = open_ok(&mock_host);
	ck_assert_str_eq(mock_log(), "CONNECT\nC: CAPA\n"
	    "C: USER joe@example.test\nC: PASS <s3cret pass>\nC: CAPA\n");
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();

	reset(script_bad);
	M.pw = secret_from_str("wrong");
	err = open_fails(PM_EAUTH);
	ck_assert_str_eq(err, "server refused the USER/PASS login for "
	    "joe@example.test: [AUTH] Authentication failed.");
	ck_assert_ptr_null(strstr(err, "wrong"));
	free(err);
	done();

	/* Never in clear unless tls = none. */
	reset(script);
	M.no_tls = 1;
	M.pw = secret_from_str("s3cret");
	err = open_fails(PM_ETLS);
	ck_assert_ptr_nonnull(strstr(err, "unencrypted"));
	ck_assert(mock_absent("USER"));
	free(err);
	done();

	/* A password PASS cannot carry. */
	reset(script);
	M.pw = secret_from_str("a\r\nDELE 1");
	err = open_fails(PM_ECONFIG);
	ck_assert(mock_absent("PASS"));
	free(err);
	done();
}
END_TEST

/* An AUTH refusal, and a -ERR greeting (no QUIT then). */
START_TEST(test_plugin_auth_refused)
{
	static const char script[] =
	    GREETING CAPA_PLAIN
	    "+ \r\n-ERR Protocol error. Connection is closed.\r\n";
	static const char script_greet[] =
	    "-ERR too many connections\r\n";
	char *err;

	reset(script);
	err = open_fails(PM_EAUTH);
	ck_assert_str_eq(err, "authentication failed: Protocol error. "
	    "Connection is closed.");
	free(err);
	done();

	reset(script_greet);
	err = open_fails(PM_ETEMP);
	ck_assert_str_eq(err, "server refused the session: -ERR too many "
	    "connections");
	ck_assert(mock_absent("HINT"));
	ck_assert_str_eq(mock_log(), "CONNECT\nDISCONNECT\n");
	free(err);
	done();
}
END_TEST

/* Exchange's throttling -ERR, to AUTH and to a RETR in a pipeline: a
 * temporary failure with the server's suggested wait, never an
 * authentication failure; the message before it is whole. */
START_TEST(test_plugin_throttled)
{
	static const char script_auth[] =
	    GREETING CAPA_PLAIN
	    "+ \r\n-ERR Request is throttled. Suggested Backoff Time: 1500 "
	    "milliseconds\r\n";
	static const char script_retr[] =
	    LOGIN_PIPE UIDL_3 LIST_3
	    BODY_1 "-ERR Request is throttled. Suggested Backoff Time: "
	    "99999999999999999999 milliseconds\r\n";
	struct pm_conn *c;
	char *err;
	size_t n;
	int have;

	reset(script_auth);
	err = open_fails(PM_ETEMP);
	ck_assert_str_eq(err, "the server turned a command away for now: "
	    "-ERR Request is throttled. Suggested Backoff Time: 1500 "
	    "milliseconds");
	free(err);
	mock_at("HINT 1 1500\n");
	ck_assert(mock_absent("SASL reply 2"));
	ck_assert(mock_absent("QUIT"));
	done();

	reset(script_retr);
	c = open_ok(&mock_host);
	list_ok(c, &n, &have);
	ck_assert_int_eq(fetch(c, ALL3, 3, &err), PM_ETEMP);
	free(err);
	ck_assert_str_eq(M.delivered, WANT_1);
	mock_at("END 0 complete=1");
	mock_at("HINT 1 3600000\n");
	ck_assert(mock_absent("MISSING"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert(mock_absent("QUIT"));
	done();
}
END_TEST

/* pop3_xoauth2_two_step = no lets the engine send the response on the
 * AUTH line (which the engine keeps within 255 octets: max, overhead). */
START_TEST(test_plugin_one_step)
{
	static const char script[] =
	    GREETING CAPA_PLAIN "+OK Logged in.\r\n" CAPA_PLAIN
	    "+OK Logging out.\r\n";
	struct pm_conn *c;

	reset(script);
	M.acct.xoauth2_two_step = 0;
	c = open_ok(&mock_host);
	mock_at("SASL [PLAIN XOAUTH2] ir=1 max=255 overhead=8 two_step=0\n"
	    "C: AUTH XOAUTH2 <dG9rZW4=>\n");
	ck_assert_ptr_null(close_rc(c, PM_OK));
	done();
}
END_TEST

/* Broken listings: UIDL and LIST disagree, duplicates, garbage.  A
 * refusal or a listing that does not add up leaves the dialogue in step
 * (QUIT follows); a malformed line does not. */
START_TEST(test_plugin_broken_listing)
{
	static const struct {
		const char *script;
		const char *err;
		int quit;
	} cases[] = {
	    { LOGIN_PLAIN "+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n1 5\r\n.\r\n"
	      "+OK bye\r\n", "UIDL lists 2 messages, LIST 1", 1 },
	    { LOGIN_PLAIN "+OK\r\n1 a\r\n2 a\r\n.\r\n"
	      "+OK\r\n1 5\r\n2 6\r\n.\r\n+OK bye\r\n",
	      "messages 1 and 2 have the same UIDL", 1 },
	    { LOGIN_PLAIN "+OK\r\n1 a\r\n3 b\r\n.\r\n"
	      "+OK\r\n1 5\r\n2 6\r\n.\r\n+OK bye\r\n",
	      "message 3 is in the UIDL listing but not in LIST", 1 },
	    { LOGIN_PLAIN "+OK\r\n1 a b\r\n.\r\n",
	      "malformed UIDL line \"1 a b\"", 0 },
	    { LOGIN_PLAIN "+OK\r\n1 a\r\n.\r\n+OK\r\n1 five\r\n.\r\n",
	      "malformed LIST line \"1 five\"", 0 },
	    { LOGIN_PLAIN "+OK\r\n1 a\r\n.\r\n-ERR no\r\n+OK bye\r\n",
	      "LIST failed: -ERR no", 1 },
	    { LOGIN_PLAIN "-ERR no\r\n+OK\r\n1 5\r\n1 6\r\n.\r\n+OK bye\r\n",
	      "LIST names message 1 twice", 1 },
	    { LOGIN_PIPE "+OK\r\n1 a\r\n2 a\r\n.\r\n+OK\r\n1 5\r\n2 6\r\n.\r\n"
	      "+OK bye\r\n", "messages 1 and 2 have the same UIDL", 1 },
	};
	struct pm_conn *c;
	char *err;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		reset(cases[i].script);
		c = open_ok(&mock_host);
		err = list_fails(c, PM_EPROTO);
		ck_assert_str_eq(err, cases[i].err);
		free(err);
		ck_assert_ptr_null(close_rc(c, PM_OK));
		ck_assert_int_eq(!mock_absent("C: QUIT"), cases[i].quit);
		if (cases[i].quit)
			ck_assert_uint_eq(M.pos, M.inlen);
		done();
	}
}
END_TEST

/* A listing longer than POP3_LIST_MAX is refused (a hostile server could
 * otherwise exhaust memory); exactly the bound is fine. */
START_TEST(test_plugin_listing_bound)
{
	const struct pm_entry *e;
	struct pm_conn *c;
	char *script, *p, *err;
	size_t i, n, cap = 64 * 1024;
	int have;

	script = malloc(cap);
	/* UIDL too long: LIST is not even sent. */
	p = script;
	p += sprintf(p, LOGIN_PLAIN "+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX + 1; i++)
		p += sprintf(p, "%zu u%zu\r\n", i, i);
	p += sprintf(p, ".\r\n");
	reset(script);
	c = open_ok(&mock_host);
	err = list_fails(c, PM_EPROTO);
	ck_assert_str_eq(err, "the UIDL listing names more than 200 "
	    "messages");
	free(err);
	ck_assert(mock_absent("LIST"));
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert(mock_absent("QUIT"));
	done();

	/* LIST too long (without UIDL). */
	p = script;
	p += sprintf(p, LOGIN_PLAIN "-ERR no UIDL\r\n+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX + 1; i++)
		p += sprintf(p, "%zu 9\r\n", i);
	p += sprintf(p, ".\r\n");
	reset(script);
	c = open_ok(&mock_host);
	err = list_fails(c, PM_EPROTO);
	ck_assert_str_eq(err, "the LIST listing names more than 200 "
	    "messages");
	free(err);
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert(mock_absent("QUIT"));
	done();

	/* Exactly the bound. */
	p = script;
	p += sprintf(p, LOGIN_PLAIN "+OK\r\n");
	for (i = 1; i <= POP3_LIST_MAX; i++)
		p += sprintf(p, "%zu u%zu\r\n", i, i);
	p += sprintf(p, ".\r\n+OK\r\n");
	for (i = POP3_LIST_MAX; i >= 1; i--)
		p += sprintf(p, "%zu %zu\r\n", i, i);
	p += sprintf(p, ".\r\n+OK bye\r\n");
	ck_assert_uint_lt((size_t)(p - script), cap);
	reset(script);
	M.chunk = 4096;
	c = open_ok(&mock_host);
	e = list_ok(c, &n, &have);
	ck_assert_uint_eq(n, POP3_LIST_MAX);
	/* In message order, with LIST's sizes matched by number. */
	for (i = 0; i < n; i++) {
		char uid[32];

		snprintf(uid, sizeof uid, "u%zu", i + 1);
		ck_assert_str_eq(e[i].uid, uid);
		ck_assert_uint_eq(e[i].size, i + 1);
	}
	ck_assert_ptr_null(close_rc(c, PM_OK));
	ck_assert_uint_eq(M.pos, M.inlen);
	done();
	free(script);
}
END_TEST

/* Only the maildrop "" can be selected; select() drops the listing, and
 * indexes outside the listing are refused before anything is sent. */
START_TEST(test_plugin_select)
{
	static const char script[] =
	    LOGIN_PIPE UIDL_3 LIST_3 "+OK bye\r\n";
	static const size_t one[] = { 0 }, far[] = { 0, 3 };
	struct pm_folder fo;
	struct pm_conn *c;
	unsigned char del[2];
	char *err = NULL;
	size_t n, before;
	int have;

	reset(script);
	c = open_ok(&mock_host);
	ck_assert_int_eq(P.select(c, "INBOX", &fo, &err), PM_ECONFIG);
	ck_assert_str_eq(err, "POP3 has no folders: cannot select \"INBOX\"");
	free(err);
	err = NULL;
	ck_assert_int_eq(P.select(c, "", &fo, &err), PM_OK);
	ck_assert_ptr_null(fo.validity);
	ck_assert_uint_eq(fo.count, 0);
	list_ok(c, &n, &have);
	before = strlen(mock_log());
	ck_assert_int_eq(fetch(c, far, 2, &err), PM_EINTERNAL);
	free(err);
	err = NULL;
	ck_assert_int_eq(P.dispose(c, PM_DISPOSE_DELETE, far, 2, del, &err),
	    PM_EINTERNAL);
	free(err);
	err = NULL;
	ck_assert_int_eq(P.select(c, "", &fo, &err), PM_OK);
	ck_assert_int_eq(fetch(c, one, 1, &err), PM_EINTERNAL);
	free(err);
	ck_assert_uint_eq(strlen(mock_log()), before);
	/* Refusing a bad call does not break the dialogue. */
	ck_assert_ptr_null(close_rc(c, PM_OK));
	mock_at("C: QUIT\n");
	done();
}
END_TEST

/* The POP3 plugin's suite. */
static Suite *
suite_pop3(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("pop3");
	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_status, 0,
	    sizeof status_cases / sizeof status_cases[0]);
	tcase_add_test(tc, test_status_broken_bytes);
	tcase_add_test(tc, test_caps);
	tcase_add_test(tc, test_caps_bound);
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
	tcase_add_test(tc, test_plugin_entry);
	tcase_add_test(tc, test_plugin_session);
	tcase_add_test(tc, test_plugin_window);
	tcase_add_test(tc, test_plugin_one_at_a_time);
	tcase_add_test(tc, test_plugin_dispose_seen);
	tcase_add_test(tc, test_plugin_dele_refused);
	tcase_add_test(tc, test_plugin_quit_refused);
	tcase_add_test(tc, test_plugin_cut_before_quit);
	tcase_add_test(tc, test_plugin_cut_mid_retr);
	tcase_add_test(tc, test_plugin_garbage_status);
	tcase_add_test(tc, test_plugin_bare_lf_dot);
	tcase_add_test(tc, test_plugin_size_check);
	tcase_add_test(tc, test_plugin_listing_bare_lf);
	tcase_add_test(tc, test_plugin_retr_refused);
	tcase_add_test(tc, test_plugin_no_uidl);
	tcase_add_test(tc, test_plugin_stls);
	tcase_add_test(tc, test_plugin_user_pass);
	tcase_add_test(tc, test_plugin_auth_refused);
	tcase_add_test(tc, test_plugin_throttled);
	tcase_add_test(tc, test_plugin_one_step);
	tcase_add_test(tc, test_plugin_broken_listing);
	tcase_add_test(tc, test_plugin_listing_bound);
	tcase_add_test(tc, test_plugin_select);
	suite_add_tcase(s, tc);
	return s;
}

/* The test program: the one suite, with the runner's case timeout. */
int
main(void)
{
	SRunner *sr;
	int failed;

	setenv("CK_DEFAULT_TIMEOUT", "60", 0);
	sr = srunner_create(suite_pop3());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
