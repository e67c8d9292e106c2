/*
 * The IMAP plugin's own test program: its response parser (table-driven,
 * with broken input) and its slots (open, select, list, fetch, dispose,
 * wait, close) run against the shared mock host, which plays a scripted
 * server dialogue (no dlopen, no network).  The fetch policy is the
 * engine's and tested there.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pullmail/plugin.h>

#include "imap-parse.h"
#include "mock-host.h"
#include "plugin-util.h"
#include "secret.h"

extern const struct pm_plugin pullmail_plugin;

/* --- response lines ------------------------------------------------------ */

static const struct resp_case {
	const char *line;
	int rc;
	int type;
	const char *tag;
	int status;
	const char *word;
	int has_num;
	uint32_t num;
	const char *code;
	const char *text;
} resp_cases[] = {
	{ "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.", PM_OK,
	  IMAP_UNTAGGED, NULL, IMAP_OK, "OK", 0, 0,
	  "CAPABILITY IMAP4rev1 AUTH=PLAIN", "Dovecot ready." },
	{ "A12 NO [AUTHENTICATIONFAILED] Authentication failed.", PM_OK,
	  IMAP_TAGGED, "A12", IMAP_NO, "NO", 0, 0, "AUTHENTICATIONFAILED",
	  "Authentication failed." },
	{ "a1 ok done", PM_OK, IMAP_TAGGED, "a1", IMAP_OK, "OK", 0, 0, NULL,
	  "done" },
	{ "A3 BAD", PM_OK, IMAP_TAGGED, "A3", IMAP_BAD, "BAD", 0, 0, NULL,
	  "" },
	{ "* 23 EXISTS", PM_OK, IMAP_UNTAGGED, NULL, IMAP_DATA, "EXISTS", 1,
	  23, NULL, "" },
	{ "* 4 FETCH (UID 9)", PM_OK, IMAP_UNTAGGED, NULL, IMAP_DATA, "FETCH",
	  1, 4, NULL, "(UID 9)" },
	{ "* CAPABILITY IMAP4rev1 UIDPLUS", PM_OK, IMAP_UNTAGGED, NULL,
	  IMAP_DATA, "CAPABILITY", 0, 0, NULL, "IMAP4rev1 UIDPLUS" },
	{ "* BYE [UNAVAILABLE] going down", PM_OK, IMAP_UNTAGGED, NULL,
	  IMAP_BYE, "BYE", 0, 0, "UNAVAILABLE", "going down" },
	{ "* PREAUTH hi", PM_OK, IMAP_UNTAGGED, NULL, IMAP_PREAUTH, "PREAUTH",
	  0, 0, NULL, "hi" },
	{ "* OK [UIDVALIDITY 1700000000] UIDs valid", PM_OK, IMAP_UNTAGGED,
	  NULL, IMAP_OK, "OK", 0, 0, "UIDVALIDITY 1700000000", "UIDs valid" },
	{ "+ dGVzdA==", PM_OK, IMAP_CONTINUE, NULL, IMAP_DATA, NULL, 0, 0,
	  NULL, "dGVzdA==" },
	{ "+ ", PM_OK, IMAP_CONTINUE, NULL, IMAP_DATA, NULL, 0, 0, NULL, "" },
	{ "+", PM_OK, IMAP_CONTINUE, NULL, IMAP_DATA, NULL, 0, 0, NULL, "" },
	/* broken */
	{ .line = "", .rc = PM_EPROTO },
	{ .line = " OK missing tag", .rc = PM_EPROTO },
	{ .line = "A1", .rc = PM_EPROTO },
	{ .line = "A1 MAYBE later", .rc = PM_EPROTO },
	{ .line = "A1 FETCH 3", .rc = PM_EPROTO },
	{ .line = "A1 OK [ALERT unterminated", .rc = PM_EPROTO },
	{ .line = "* OK [CAPABILITY IMAP4rev1", .rc = PM_EPROTO },
	{ .line = "*", .rc = PM_EPROTO },
	{ .line = "*OK", .rc = PM_EPROTO },
	{ .line = "* 99999999999 EXISTS", .rc = PM_EPROTO },
	{ .line = "* 3", .rc = PM_EPROTO },
	{ .line = "+x", .rc = PM_EPROTO },
	{ .line = "A(1 OK", .rc = PM_EPROTO },
};

START_TEST(test_resp)
{
	const struct resp_case *c = &resp_cases[_i];
	struct imap_resp r;
	char *err = NULL;
	int rc;

	rc = imap_parse_resp(c->line, strlen(c->line), &r, &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_ptr_null(err);
	ck_assert_int_eq(r.type, c->type);
	ck_assert_int_eq(r.status, c->status);
	if (c->tag == NULL)
		ck_assert_ptr_null(r.tag);
	else
		ck_assert_str_eq(r.tag, c->tag);
	if (c->word != NULL)
		ck_assert_str_eq(r.word, c->word);
	ck_assert_int_eq(r.has_num, c->has_num);
	ck_assert_uint_eq(r.num, c->num);
	if (c->code == NULL)
		ck_assert_ptr_null(r.code);
	else
		ck_assert_str_eq(r.code, c->code);
	ck_assert_str_eq(r.text, c->text);
	imap_resp_free(&r);
}
END_TEST

START_TEST(test_resp_nul)
{
	static const char line[] = "A1 OK fi\0ne";
	struct imap_resp r;
	char *err = NULL;

	ck_assert_int_eq(imap_parse_resp(line, sizeof line - 1, &r, &err),
	    PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(err);
}
END_TEST

/* --- capabilities -------------------------------------------------------- */

static const struct caps_case {
	const char *list;
	int rc, rev1, starttls, logindisabled, sasl_ir, uidplus;
	const char *mechs;
	int idle;
} caps_cases[] = {
	{ "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "STARTTLS AUTH=PLAIN AUTH=xoauth2 AUTH=OAUTHBEARER", PM_OK,
	  1, 1, 0, 1, 0, "PLAIN XOAUTH2 OAUTHBEARER", 1 },
	{ "IMAP4 IMAP4rev1 LOGINDISABLED UIDPLUS", PM_OK, 1, 0, 1, 0, 1, "",
	  0 },
	{ "  imap4rev1   uidplus idle", PM_OK, 1, 0, 0, 0, 1, "", 1 },
	{ "IMAP4rev1 IDLEX X-IDLE", PM_OK, 1, 0, 0, 0, 0, "", 0 },
	{ "IMAP4rev2 AUTH=", PM_OK, 0, 0, 0, 0, 0, "", 0 },
	{ .list = "", .rc = PM_EPROTO },
	{ .list = "   ", .rc = PM_EPROTO },
	{ .list = "IMAP4rev1 (weird)", .rc = PM_EPROTO },
	{ .list = "IMAP4rev1 \"quoted\"", .rc = PM_EPROTO },
	{ .list = "IMAP4rev1 AUTH=PL\x01" "AIN", .rc = PM_EPROTO },
};

START_TEST(test_caps)
{
	const struct caps_case *c = &caps_cases[_i];
	struct imap_caps caps;
	char *err = NULL;
	int rc;

	memset(&caps, 0, sizeof caps);
	rc = imap_parse_caps(c->list, &caps, &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->list, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		imap_caps_free(&caps);
		return;
	}
	ck_assert_int_eq(caps.imap4rev1, c->rev1);
	ck_assert_int_eq(caps.starttls, c->starttls);
	ck_assert_int_eq(caps.logindisabled, c->logindisabled);
	ck_assert_int_eq(caps.sasl_ir, c->sasl_ir);
	ck_assert_int_eq(caps.uidplus, c->uidplus);
	ck_assert_int_eq(caps.idle, c->idle);
	ck_assert_str_eq(caps.mechs, c->mechs);
	imap_caps_free(&caps);
}
END_TEST

/* --- literals ------------------------------------------------------------ */

static const struct lit_case {
	const char *line;
	uint64_t max;
	int rc, found;
	uint64_t n;
} lit_cases[] = {
	{ "* 1 FETCH (BODY[] {123}", 1000, PM_OK, 1, 123 },
	{ "* 1 FETCH (BODY[] {0}", 1000, PM_OK, 1, 0 },
	{ "* LIST () \"/\" {5+}", 1000, PM_OK, 1, 5 },
	{ "{1000}", 1000, PM_OK, 1, 1000 },
	{ "* FLAGS (\\Seen)", 1000, PM_OK, 0, 0 },
	{ "* FLAGS (foo})", 1000, PM_OK, 0, 0 },
	{ "* SEARCH 1 2 x}", 1000, PM_OK, 0, 0 },
	{ "* 1 FETCH (BODY[] {12", 1000, PM_OK, 0, 0 },
	{ "", 1000, PM_OK, 0, 0 },
	/* broken */
	{ .line = "* 1 FETCH (BODY[] {abc}", .max = 1000, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {}", .max = 1000, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {+}", .max = 1000, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {-5}", .max = 1000, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {1001}", .max = 1000, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {99999999999999999999}",
	  .max = UINT64_MAX, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {18446744073709551616}",
	  .max = UINT64_MAX, .rc = PM_EPROTO },
	{ .line = "* 1 FETCH (BODY[] {2147483649}",
	  .max = IMAP_LITERAL_MAX, .rc = PM_EPROTO },
};

START_TEST(test_literal)
{
	const struct lit_case *c = &lit_cases[_i];
	char *err = NULL;
	uint64_t n;
	int rc, found;

	rc = imap_literal(c->line, strlen(c->line), c->max, &found, &n, &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_int_eq(found, c->found);
	ck_assert_uint_eq(n, c->n);
}
END_TEST

START_TEST(test_literal_limit_message)
{
	static const char line[] = "* 1 FETCH (BODY[] {3000000000}";
	char *err = NULL;
	uint64_t n;
	int found;

	ck_assert_int_eq(imap_literal(line, sizeof line - 1, IMAP_LITERAL_MAX,
	    &found, &n, &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "3000000000"));
	ck_assert_ptr_nonnull(strstr(err, "limit"));
	free(err);
}
END_TEST

/* --- FETCH responses ----------------------------------------------------- */

static const struct fetch_case {
	const char *line;
	int rc;
	int has_uid;
	uint32_t uid;
	int has_size;
	uint64_t size;
	int body;
	int pending, pending_body;
	uint64_t literal;
	int done;
} fetch_cases[] = {
	{ "* 1 FETCH (UID 7 RFC822.SIZE 1234)", PM_OK, 1, 7, 1, 1234,
	  IMAP_BODY_NONE, 0, 0, 0, 1 },
	{ "* 2 fetch (rfc822.size 5 uid 8)", PM_OK, 1, 8, 1, 5,
	  IMAP_BODY_NONE, 0, 0, 0, 1 },
	{ "* 3 FETCH (FLAGS (\\Seen \\Answered))", PM_OK, 0, 0, 0, 0,
	  IMAP_BODY_NONE, 0, 0, 0, 1 },
	{ "* 3 FETCH (UID 9 BODY[] {42}", PM_OK, 1, 9, 0, 0,
	  IMAP_BODY_LITERAL, 1, 1, 42, 0 },
	{ "* 3 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 "
	  "-0700\" MODSEQ (12) UID 10 BODY[] {0}", PM_OK, 1, 10, 0, 0,
	  IMAP_BODY_LITERAL, 1, 1, 0, 0 },
	{ "* 3 FETCH (BODY[] NIL UID 11)", PM_OK, 1, 11, 0, 0,
	  IMAP_BODY_NIL, 0, 0, 0, 1 },
	{ "* 3 FETCH (BODY[HEADER.FIELDS (FROM TO)] {20}", PM_OK, 0, 0, 0, 0,
	  IMAP_BODY_NONE, 1, 0, 20, 0 },
	{ "* 3 FETCH (ENVELOPE (\"a\" {3}", PM_OK, 0, 0, 0, 0,
	  IMAP_BODY_NONE, 1, 0, 3, 0 },
	{ "* 3 FETCH (BODY[] \"hi \\\"there\\\"\")", PM_OK, 0, 0, 0, 0,
	  IMAP_BODY_QUOTED, 0, 0, 0, 1 },
	/* broken */
	{ .line = "* 3 FETCH (UID 9", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 FLAGS (\\Seen)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (FLAGS (\\Seen", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {12", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {abc}", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {-1}", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {99999999999999999999}",
	  .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {3000000000}", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9 BODY[] {5} )", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID x)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 0)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 4294967296)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (RFC822.SIZE -1)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (BODY[] FOO)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID (1))", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID 9) junk", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (UID)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH UID 9", .rc = PM_EPROTO },
	{ .line = "* x FETCH (UID 9)", .rc = PM_EPROTO },
	{ .line = "* 0 FETCH (UID 9)", .rc = PM_EPROTO },
	{ .line = "3 FETCH (UID 9)", .rc = PM_EPROTO },
	{ .line = "* 3 FETCH (INTERNALDATE \"unterminated)",
	  .rc = PM_EPROTO },
};

START_TEST(test_fetch)
{
	const struct fetch_case *c = &fetch_cases[_i];
	struct imap_fetch f;
	char *err = NULL;
	int rc;

	rc = imap_parse_fetch(c->line, strlen(c->line), IMAP_LITERAL_MAX, &f,
	    &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->line, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		free(err);
		imap_fetch_free(&f);
		return;
	}
	ck_assert_int_eq(f.has_uid, c->has_uid);
	ck_assert_uint_eq(f.uid, c->uid);
	ck_assert_int_eq(f.has_size, c->has_size);
	ck_assert_uint_eq(f.size, c->size);
	ck_assert_int_eq(f.body, c->body);
	ck_assert_int_eq(f.literal_pending, c->pending);
	ck_assert_int_eq(f.literal_body, c->pending_body);
	ck_assert_uint_eq(f.literal, c->literal);
	ck_assert_int_eq(f.done, c->done);
	imap_fetch_free(&f);
}
END_TEST

START_TEST(test_fetch_quoted_body)
{
	static const char line[] =
	    "* 3 FETCH (BODY[] \"a\\\\b \\\"c\\\"\" UID 4)";
	struct imap_fetch f;
	char *err = NULL;

	ck_assert_int_eq(imap_parse_fetch(line, sizeof line - 1,
	    IMAP_LITERAL_MAX, &f, &err), PM_OK);
	ck_assert_int_eq(f.body, IMAP_BODY_QUOTED);
	ck_assert_uint_eq(f.quoted_len, 7);
	ck_assert_str_eq(f.quoted, "a\\b \"c\"");
	ck_assert_uint_eq(f.uid, 4);
	imap_fetch_free(&f);
}
END_TEST

START_TEST(test_fetch_continued)
{
	static const char l1[] =
	    "* 3 FETCH (FLAGS (\\Seen) ENVELOPE (\"x\" {4}";
	static const char l2[] = " \"y\") BODY[] {10}";
	static const char l3[] = " UID 77 FLAGS (\\Seen))";
	static const char l4[] = " UID 1)";
	struct imap_fetch f;
	char *err = NULL;

	ck_assert_int_eq(imap_parse_fetch(l1, sizeof l1 - 1, 100, &f, &err),
	    PM_OK);
	ck_assert(f.literal_pending && !f.literal_body && f.literal == 4);
	ck_assert_int_eq(imap_parse_fetch_more(l2, sizeof l2 - 1, 100, &f,
	    &err), PM_OK);
	ck_assert(f.literal_pending && f.literal_body && f.literal == 10);
	ck_assert_int_eq(f.body, IMAP_BODY_LITERAL);
	ck_assert_int_eq(f.has_uid, 0);
	ck_assert_int_eq(imap_parse_fetch_more(l3, sizeof l3 - 1, 100, &f,
	    &err), PM_OK);
	ck_assert(!f.literal_pending && f.done);
	ck_assert(f.has_uid && f.uid == 77);
	/* Nothing may follow the end. */
	ck_assert_int_eq(imap_parse_fetch_more(l4, sizeof l4 - 1, 100, &f,
	    &err), PM_EPROTO);
	free(err);
	imap_fetch_free(&f);
}
END_TEST

START_TEST(test_fetch_broken_continuation)
{
	static const char l1[] = "* 3 FETCH (UID 5 BODY[] {10}";
	static const char l2[] = " FLAGS (\\Seen)";
	static const char l3[] = "";
	static const char nul[] = " UID 5\0)";
	struct imap_fetch f;
	char *err = NULL;

	ck_assert_int_eq(imap_parse_fetch(l1, sizeof l1 - 1, 100, &f, &err),
	    PM_OK);
	ck_assert_int_eq(imap_parse_fetch_more(l2, sizeof l2 - 1, 100, &f,
	    &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "parenthesis"));
	free(err);
	err = NULL;
	ck_assert_int_eq(imap_parse_fetch(l1, sizeof l1 - 1, 100, &f, &err),
	    PM_OK);
	ck_assert_int_eq(imap_parse_fetch_more(l3, 0, 100, &f, &err),
	    PM_EPROTO);
	free(err);
	err = NULL;
	ck_assert_int_eq(imap_parse_fetch(l1, sizeof l1 - 1, 100, &f, &err),
	    PM_OK);
	ck_assert_int_eq(imap_parse_fetch_more(nul, sizeof nul - 1, 100, &f,
	    &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	free(err);
	imap_fetch_free(&f);
}
END_TEST

/* --- SEARCH, UID sets, quoting ------------------------------------------- */

static const struct search_case {
	const char *text;
	int rc;
	size_t n;
	uint32_t first, last;
} search_cases[] = {
	{ "", PM_OK, 0, 0, 0 },
	{ "4", PM_OK, 1, 4, 4 },
	{ "2 84 882 4294967295", PM_OK, 4, 2, 4294967295u },
	{ " 1  2 ", PM_OK, 2, 1, 2 },
	{ .text = "1 two 3", .rc = PM_EPROTO },
	{ .text = "1 -2", .rc = PM_EPROTO },
	{ .text = "0", .rc = PM_EPROTO },
	{ .text = "4294967296", .rc = PM_EPROTO },
	{ .text = "1 (MODSEQ 5)", .rc = PM_EPROTO },
};

START_TEST(test_search)
{
	const struct search_case *c = &search_cases[_i];
	uint32_t *uids;
	char *err = NULL;
	size_t n;
	int rc;

	rc = imap_parse_search(c->text, &uids, &n, &err);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->text, rc);
	if (rc != PM_OK) {
		ck_assert_ptr_nonnull(err);
		ck_assert_ptr_null(uids);
		free(err);
		return;
	}
	ck_assert_uint_eq(n, c->n);
	if (n > 0) {
		ck_assert_uint_eq(uids[0], c->first);
		ck_assert_uint_eq(uids[n - 1], c->last);
	}
	free(uids);
}
END_TEST

START_TEST(test_uidset)
{
	static const uint32_t a[] = { 1, 2, 3, 4, 5, 8, 10, 11, 11, 12, 20 };
	static const uint32_t b[] = { 4294967294u, 4294967295u };
	uint32_t *many;
	char *set;
	size_t n, i, done, total;

	n = imap_uidset(a, sizeof a / sizeof a[0], 100, &set);
	ck_assert_uint_eq(n, sizeof a / sizeof a[0]);
	ck_assert_str_eq(set, "1:5,8,10:12,20");
	free(set);

	/* Cut before a piece that does not fit. */
	n = imap_uidset(a, sizeof a / sizeof a[0], 8, &set);
	ck_assert_str_eq(set, "1:5,8");
	ck_assert_uint_eq(n, 6);
	free(set);

	n = imap_uidset(b, 2, 100, &set);
	ck_assert_str_eq(set, "4294967294:4294967295");
	free(set);

	ck_assert_uint_eq(imap_uidset(a, 0, 100, &set), 0);
	ck_assert_ptr_null(set);
	ck_assert_uint_eq(imap_uidset(b, 2, 5, &set), 0);
	ck_assert_ptr_null(set);

	/* A long scattered list splits into sets under the bound that
	 * together cover every UID. */
	many = malloc(5000 * sizeof *many);
	for (i = 0; i < 5000; i++)
		many[i] = 1000000 + 2 * (uint32_t)i;
	for (done = 0, total = 0; done < 5000; done += n, total++) {
		n = imap_uidset(many + done, 5000 - done, 7900, &set);
		ck_assert_uint_gt(n, 0);
		ck_assert_uint_le(strlen(set), 7900);
		free(set);
	}
	ck_assert_uint_gt(total, 1);
	free(many);
}
END_TEST

START_TEST(test_quote)
{
	char *q;

	q = imap_quote("INBOX");
	ck_assert_str_eq(q, "\"INBOX\"");
	free(q);
	q = imap_quote("a \"b\" \\c");
	ck_assert_str_eq(q, "\"a \\\"b\\\" \\\\c\"");
	free(q);
	q = imap_quote("");
	ck_assert_str_eq(q, "\"\"");
	free(q);
	ck_assert_ptr_null(imap_quote("a\r\nb"));
	ck_assert_ptr_null(imap_quote("a\nb"));

	q = pmp_clean("ok\x1b[31m\xff", 9, 100);
	ck_assert_str_eq(q, "ok?[31m??");
	free(q);
	q = pmp_clean("abcdef", 6, 3);
	ck_assert_str_eq(q, "abc...");
	free(q);
}
END_TEST

/* Modified UTF-7 both ways: RFC 3501's example and others. */
static const struct {
	const char *utf8, *mutf7;
} mutf7_cases[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "\xc3\x84pfel", "&AMQ-pfel" },
	{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
	{ "R&D", "R&-D" },
	{ "&", "&-" },
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80",
	  "&BB8EQAQ4BDwENQRA-" },
	{ "\xf0\x9f\x98\x80", "&2D3eAA-" },
	{ "a\tb", "a&AAk-b" },
	{ "\xc3\xa4&\xc3\xb6", "&AOQ-&-&APY-" },
	{ "\xe2\x82\xac 5", "&IKw- 5" },
};

START_TEST(test_mutf7)
{
	const char *u = mutf7_cases[_i].utf8, *m = mutf7_cases[_i].mutf7;
	char *out, *err = NULL;

	out = imap_mutf7_encode(u, &err);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, m);
	free(out);
	out = imap_mutf7_decode(m, strlen(m), &err);
	ck_assert_msg(out != NULL, "%s: %s", m, err);
	ck_assert_str_eq(out, u);
	/* And back again. */
	free(out);
	out = imap_mutf7_encode(u, &err);
	ck_assert_str_eq(out, m);
	free(out);
}
END_TEST

/* Broken modified UTF-7, as a server might send it: a clear error. */
static const struct {
	const char *in, *why;
} mutf7_bad[] = {
	{ "&Jjo!", "not modified base64 at byte 5" },
	{ "&U,BTFw-&ZeVnLIqe-", "a run right after another at byte 9" },
	{ "&AMQ", "without its closing '-'" },
	{ "a&", "without its closing '-' at byte 2" },
	{ "&A-", "not whole UTF-16" },
	{ "&AMR-", "not whole UTF-16" },
	{ "&AMQA-", "not whole UTF-16" },
	{ "&AEE-", "must be written as itself" },
	{ "&AAA-", "must be written as itself" },
	{ "&2D0-", "unpaired surrogate" },
	{ "&2D3YPQ-", "unpaired surrogate" },
	{ "&3gA-", "unpaired surrogate" },
	{ "&AMQ=-", "not modified base64" },
	{ "&&-", "not modified base64 at byte 2" },
	{ "\xc3\x84pfel", "not printable US-ASCII at byte 1" },
	{ "a\tb", "not printable US-ASCII at byte 2" },
};

START_TEST(test_mutf7_bad)
{
	const char *in = mutf7_bad[_i].in;
	char *out, *err = NULL;

	out = imap_mutf7_decode(in, strlen(in), &err);
	ck_assert_msg(out == NULL, "%s decoded to %s", in, out);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, mutf7_bad[_i].why) != NULL, "%s: %s", in,
	    err);
	ck_assert_msg(strncmp(err, "invalid modified UTF-7 \"", 24) == 0,
	    "%s", err);
	free(err);
}
END_TEST

/* Names that are not UTF-8 cannot be encoded; which form of a configured
 * name is sent; server text decoded for the log. */
START_TEST(test_mutf7_wire)
{
	static const char *const bad_utf8[] = {
		"\xc3", "a\xc3(", "\xc0\x80", "\xe0\x80\xaf",
		"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "\x80",
	};
	static const struct {
		const char *in, *out;
	} wire[] = {
		{ "INBOX", "INBOX" },
		{ "\xc3\x84pfel", "&AMQ-pfel" },
		{ "&AMQ-pfel", "&AMQ-pfel" },
		{ "A&-B", "A&-B" },
		{ "R&D", "R&-D" },
		{ "R&D-Reports", "R&-D-Reports" },
		{ "Tom & Jerry", "Tom &- Jerry" },
		{ "&Jjo!", "&-Jjo!" },
	};
	static const struct {
		const char *in, *out;
	} text[] = {
		{ "NO Mailbox doesn't exist: &AMQ-pfel",
		  "NO Mailbox doesn't exist: \xc3\x84pfel" },
		{ "&AMQ-&-&APY- and R&-D", "\xc3\x84&\xc3\xb6 and R&D" },
		{ "bad &Jjo! &AMR- ok", "bad &Jjo! &AMR- ok" },
		{ "tab &AAk- nel &AIU- esc &ABs-",
		  "tab &AAk- nel &AIU- esc &ABs-" },
		{ "open &AMQ", "open &AMQ" },
		{ "", "" },
	};
	size_t i;
	char *out, *err = NULL;

	for (i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		ck_assert_ptr_null(imap_mutf7_encode(bad_utf8[i], &err));
		ck_assert_ptr_nonnull(strstr(err, "is not valid UTF-8"));
		free(err);
		err = NULL;
		ck_assert_ptr_null(imap_mutf7_wire(bad_utf8[i], &err));
		free(err);
		err = NULL;
	}
	for (i = 0; i < sizeof wire / sizeof wire[0]; i++) {
		out = imap_mutf7_wire(wire[i].in, &err);
		ck_assert_ptr_nonnull(out);
		ck_assert_str_eq(out, wire[i].out);
		free(out);
	}
	for (i = 0; i < sizeof text / sizeof text[0]; i++) {
		out = imap_mutf7_text(text[i].in);
		ck_assert_str_eq(out, text[i].out);
		free(out);
	}
}
END_TEST

/* Server text for a log: UTF-8 kept, controls and broken bytes not. */
START_TEST(test_clean_text)
{
	static const struct {
		const char *in;
		size_t max;
		const char *out;
	} cases[] = {
		{ "Mailbox doesn't exist: Birnen-\xc3\x84pfel", 200,
		  "Mailbox doesn't exist: Birnen-\xc3\x84pfel" },
		{ "ok\x1b[31m\x7f\xff", 200, "ok?[31m??" },
		{ "nel \xc2\x85 rlo \xe2\x80\xae ls \xe2\x80\xa8", 200,
		  "nel ?? rlo ??? ls ???" },
		{ "cut \xc3\x84\xe2\x82", 200, "cut \xc3\x84??" },
		{ "overlong \xc0\xaf", 200, "overlong ??" },
		{ "a\xc3\x84" "b", 3, "a\xc3\x84..." },
		{ "ab\xc3\x84", 3, "ab..." },
		{ "abc", 3, "abc" },
		{ "", 10, "" },
	};
	size_t i;
	char *out;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		out = imap_clean_text(cases[i].in, cases[i].max);
		ck_assert_str_eq(out, cases[i].out);
		free(out);
	}
}
END_TEST

/* The bound on a folder listing: EXISTS plus a margin, never more than
 * IMAP_LIST_MAX, and IMAP_LIST_MAX without EXISTS. */
START_TEST(test_list_limit)
{
	ck_assert_uint_eq(imap_list_limit(0, 0), IMAP_LIST_MAX);
	ck_assert_uint_eq(imap_list_limit(0, 5), IMAP_LIST_MAX);
	ck_assert_uint_eq(imap_list_limit(1, 0), IMAP_LIST_MARGIN);
	ck_assert_uint_eq(imap_list_limit(1, 3), 3 + IMAP_LIST_MARGIN);
	ck_assert_uint_eq(imap_list_limit(1, IMAP_LIST_MAX -
	    IMAP_LIST_MARGIN - 1), IMAP_LIST_MAX - 1);
	ck_assert_uint_eq(imap_list_limit(1, IMAP_LIST_MAX -
	    IMAP_LIST_MARGIN), IMAP_LIST_MAX);
	ck_assert_uint_eq(imap_list_limit(1, IMAP_LIST_MAX), IMAP_LIST_MAX);
	ck_assert_uint_eq(imap_list_limit(1, UINT32_MAX), IMAP_LIST_MAX);
}
END_TEST

/* Exchange Online's transient refusals, and texts that only look like
 * them. */
START_TEST(test_transient)
{
	static const struct {
		const char *text;
		int kind;
		unsigned ms;
	} cases[] = {
		{ "Request is throttled. Suggested Backoff Time: 1500 "
		  "milliseconds", PM_RETRY_THROTTLED, 1500 },
		{ "Request is throttled. Suggested Backoff Time: 201317 "
		  "milliseconds", PM_RETRY_THROTTLED, 201317 },
		{ "request IS THROTTLED. suggested backoff time:\t 42 "
		  "MILLISECONDS", PM_RETRY_THROTTLED, 42 },
		{ "[THROTTLED] Request is throttled. Suggested Backoff Time: "
		  "0 milliseconds", PM_RETRY_THROTTLED, 0 },
		{ "Request is throttled. Suggested Backoff Time: 3 seconds",
		  PM_RETRY_THROTTLED, 3000 },
		/* Hostile or broken numbers stay bounded. */
		{ "Request is throttled. Suggested Backoff Time: "
		  "99999999999999999999999999999999999999 milliseconds",
		  PM_RETRY_THROTTLED, PMP_BACKOFF_MAX_MS },
		{ "Request is throttled. Suggested Backoff Time: 3600001 "
		  "milliseconds", PM_RETRY_THROTTLED, PMP_BACKOFF_MAX_MS },
		{ "Request is throttled. Suggested Backoff Time: 18446744073709"
		  "551617 seconds", PM_RETRY_THROTTLED, PMP_BACKOFF_MAX_MS },
		{ "Request is throttled. Suggested Backoff Time: -5 "
		  "milliseconds", PM_RETRY_THROTTLED, 0 },
		{ "Request is throttled. Suggested Backoff Time:",
		  PM_RETRY_THROTTLED, 0 },
		{ "Request is throttled.", PM_RETRY_THROTTLED, 0 },
		{ "User is authenticated but not connected.",
		  PM_RETRY_RECONNECT, 0 },
		{ "Session invalidated - AccessTokenExpired",
		  PM_RETRY_TOKEN_EXPIRED, 0 },
		{ "Suggested Backoff Time: 1500 milliseconds", 0, 0 },
		{ "User is authenticated", 0, 0 },
		{ "AUTHENTICATE failed.", 0, 0 },
		{ "", 0, 0 },
	};
	unsigned ms = 7;

	ck_assert_int_eq(pmp_transient(cases[_i].text, &ms), cases[_i].kind);
	ck_assert_uint_eq(ms, cases[_i].ms);
	ck_assert_int_eq(pmp_transient(NULL, &ms), 0);
}
END_TEST

/* --- the plugin's slots against the mock host ---------------------------- */

#define SESSION ((struct pm_session *)&M)

#define at(s)		mock_at(s)
#define absent(s)	mock_absent(s)

static struct pm_conn *conn;
static const struct pm_entry *ents;
static size_t nents;
static struct pm_folder folder;

/* Open a session on script; returns open's status. */
static int
t_open(const char *script, char **err)
{
	mock_reset(script, 993);
	*err = NULL;
	conn = NULL;
	return pullmail_plugin.open(&mock_host, SESSION, &conn, err);
}

/* Open a session on script, select INBOX and list it, all successfully. */
static void
t_ready(const char *script)
{
	char *err = NULL;
	int have = 0;

	ck_assert_int_eq(t_open(script, &err), PM_OK);
	ck_assert_ptr_nonnull(conn);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.list(conn, &ents, &nents, &have,
	    &err), PM_OK);
	ck_assert_int_eq(have, 1);
}

/* Fetch idx[0..n) into the mock sink; returns fetch's status. */
static int
t_fetch(const size_t *idx, size_t n, char **err)
{
	*err = NULL;
	return pullmail_plugin.fetch(conn, idx, n, &mock_sink,
	    (struct pm_fetch *)&M, err);
}

/* Close the session, which always works for IMAP. */
static void
t_close(void)
{
	char *err = NULL;

	ck_assert_int_eq(pullmail_plugin.close(conn, &err), PM_OK);
	ck_assert_ptr_null(err);
	conn = NULL;
}

/* How often needle occurs in the event log before offset end. */
static size_t
count_before(const char *needle, size_t end)
{
	const char *p = mock_log();
	size_t n = 0;

	while ((p = strstr(p, needle)) != NULL &&
	    (size_t)(p - mock_log()) < end) {
		n++;
		p++;
	}
	return n;
}

/* A script built piece by piece. */
static char *S;
static size_t SL;

static void PM_PRINTF(1, 2)
sp(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	S = realloc(S, SL + n + 1);
	ck_assert_ptr_nonnull(S);
	va_start(ap, fmt);
	vsnprintf(S + SL, n + 1, fmt, ap);
	va_end(ap);
	SL += n;
}

#define GREETING_AUTH \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] hi\r\n" \
	"A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n"

/* Start a script: log in, select a folder of n messages uids[] with
 * sizes[] (numbered 1..n), list it; the next tag is A4. */
static void
sp_folder(const uint32_t *uids, const uint64_t *sizes, size_t n)
{
	size_t i;

	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH "* %zu EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n"
	    "A2 OK done\r\n", n);
	for (i = 0; i < n; i++)
		sp("* %zu FETCH (UID %u RFC822.SIZE %llu)\r\n", i + 1,
		    uids[i], (unsigned long long)sizes[i]);
	sp("A3 OK done\r\n");
}

#define SELECT_3(tag) \
	"* FLAGS (\\Answered \\Seen)\r\n" \
	"* 3 EXISTS\r\n" \
	"* OK [UIDVALIDITY 77] UIDs valid\r\n" \
	tag " OK [READ-WRITE] Select completed.\r\n"
/* Listing: message 1 is UID 5, 2 is UID 7, 3 is UID 9. */
#define LIST_5_7_9(tag) \
	"* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n" \
	"* 2 FETCH (UID 7 RFC822.SIZE 12)\r\n" \
	"* 3 FETCH (RFC822.SIZE 5 UID 9)\r\n" \
	"* 1 FETCH (FLAGS (\\Seen))\r\n" \
	tag " OK Fetch completed.\r\n"
/* The bodies of UIDs 7 (as Dovecot sends it: the UID first) and 9 (as
 * Exchange does: the UID after the literal). */
#define BODY_7 \
	"* 2 FETCH (UID 7 BODY[] {12}\r\nHello\r\nWorld)\r\n"
#define BODY_9 \
	"* 3 FETCH (BODY[] {5}\r\nab\r\nc UID 9 FLAGS (\\Seen))\r\n"
#define BODIES "1:Hello\r\nWorld|2:ab\r\nc|"

/* The whole life of a connection: every slot, in the engine's order. */
START_TEST(test_plugin_session)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7
	    BODY_9
	    "* 4 EXISTS\r\n"
	    "* 1 FETCH (FLAGS ())\r\n"
	    "A4 OK Fetch completed.\r\n"
	    "A5 OK Store completed.\r\n"
	    "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
	    "A6 OK Expunge completed.\r\n"
	    "* BYE Logging out\r\nA7 OK Logout completed.\r\n";
	static const char want[] =
	    "CONNECT\n"
	    "SASL [PLAIN XOAUTH2] ir=1 max=0 overhead=22 two_step=0\n"
	    "C: A1 AUTHENTICATE XOAUTH2 <dG9rZW4=>\n"
	    "SASL reply 1 [Logged in]\n"
	    "C: A2 SELECT \"INBOX\"\n"
	    "C: A3 UID FETCH 1:* (UID RFC822.SIZE)\n"
	    "C: A4 UID FETCH 7,9 (UID BODY.PEEK[])\n"
	    "BEGIN 1\n"
	    "END 1 complete=1\n"
	    "BEGIN 2\n"
	    "END 2 complete=1\n"
	    "C: A5 UID STORE 5,7,9 +FLAGS.SILENT (\\Deleted)\n"
	    "C: A6 UID EXPUNGE 5,7,9\n"
	    "C: A7 LOGOUT\n"
	    "DISCONNECT\n";
	static const size_t fetch[] = { 1, 2 }, del[] = { 2, 0, 1 };
	unsigned char done[3] = { 0, 0, 0 };
	char *err = NULL;

	ck_assert_uint_eq(pullmail_plugin.flags, PM_PLUGIN_FOLDERS);
	ck_assert_ptr_nonnull(pullmail_plugin.can_wait);
	ck_assert_ptr_nonnull(pullmail_plugin.wait);
	t_ready(script);
	ck_assert_str_eq(folder.validity, "77");
	ck_assert_uint_eq(folder.count, 3);
	ck_assert_uint_eq(nents, 3);
	ck_assert_str_eq(ents[0].uid, "5");
	ck_assert_uint_eq(ents[0].size, 10);
	ck_assert_str_eq(ents[1].uid, "7");
	ck_assert_uint_eq(ents[1].size, 12);
	ck_assert_str_eq(ents[2].uid, "9");
	ck_assert_uint_eq(ents[2].size, 5);
	ck_assert_int_eq(t_fetch(fetch, 2, &err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_DELETE,
	    del, 3, done, &err), PM_OK);
	ck_assert(done[0] && done[1] && done[2]);
	t_close();
	ck_assert_str_eq(mock_log(), want);
	ck_assert_str_eq(M.delivered, BODIES);
	ck_assert_uint_eq(M.pos, M.inlen);
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

/* A literal arrives intact however the transport cuts it, also one far
 * larger than the plugin's read buffer. */
START_TEST(test_plugin_chunks)
{
	static const char script[] =
	    GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    BODY_7 BODY_9 "A4 OK done\r\nA5 OK bye\r\n";
	static const size_t chunks[] = { 1, 2, 5, 7, 64 * 1024 };
	static const size_t fetch[] = { 1, 2 }, one[] = { 0 };
	size_t i, big = 200000;
	char *err = NULL, *body;

	for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		t_ready(script);
		M.chunk = chunks[i];
		ck_assert_int_eq(t_fetch(fetch, 2, &err), PM_OK);
		ck_assert_str_eq(M.delivered, BODIES);
		t_close();
	}

	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    "* 1 FETCH (UID 5 BODY[] {%zu}\r\n", big);
	body = malloc(big + 1);
	memset(body, 'x', big);
	body[big] = '\0';
	sp("%s)\r\nA4 OK done\r\nA5 OK bye\r\n", body);
	t_ready(S);
	M.chunk = 100 * 1024;
	ck_assert_int_eq(t_fetch(one, 1, &err), PM_OK);
	ck_assert_uint_eq(M.dlen, 2 + big + 1);
	ck_assert_int_eq(memcmp(M.delivered + 2, body, big), 0);
	t_close();
	ck_assert_uint_eq(M.pos, M.inlen);
	free(body);
}
END_TEST

START_TEST(test_plugin_seen_no_uidplus)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "+ \r\n"
	    "* CAPABILITY IMAP4rev1\r\n"
	    "A1 OK Logged in\r\n"
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "A4 OK Store completed.\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 1, 2 };
	unsigned char done[2] = { 0, 0 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_SEEN, idx,
	    2, done, &err), PM_OK);
	ck_assert(done[0] && done[1]);
	t_close();
	/* No SASL-IR: the response goes after "+". */
	ck_assert_uint_lt(at("C: A1 AUTHENTICATE PLAIN\n"), at("C: <dG9"));
	/* The untagged CAPABILITY during the login replaces the old list:
	 * no CAPABILITY command follows. */
	ck_assert(absent("CAPABILITY"));
	at("C: A4 UID STORE 7,9 +FLAGS.SILENT (\\Seen)\n");
	ck_assert(absent("EXPUNGE"));
	at("C: A5 LOGOUT");
}
END_TEST

/* Without UIDPLUS a plain EXPUNGE is sent only with expunge = all: it
 * removes every message flagged \Deleted in the folder. */
START_TEST(test_plugin_plain_expunge)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
	    "A1 OK Logged in\r\n"
	    "* CAPABILITY IMAP4rev1 IDLE\r\n"
	    "A2 OK Capability completed.\r\n"
	    SELECT_3("A3")
	    LIST_5_7_9("A4")
	    "A5 OK Store completed.\r\n"
	    "A6 OK Expunge completed.\r\n"
	    "A7 OK bye\r\n";
	static const size_t idx[] = { 0, 1, 2 };
	unsigned char done[3] = { 0, 0, 0 };
	char *err = NULL;

	t_ready(script);
	M.acct.expunge = PM_EXPUNGE_ALL;
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_DELETE,
	    idx, 3, done, &err), PM_OK);
	ck_assert(done[0] && done[1] && done[2]);
	t_close();
	/* No capabilities with the OK: they are asked for again. */
	at("C: A2 CAPABILITY\n");
	ck_assert_uint_lt(at("C: A5 UID STORE 5,7,9 +FLAGS.SILENT "
	    "(\\Deleted)\n"), at("C: A6 EXPUNGE\n"));
	ck_assert(absent("UID EXPUNGE"));
}
END_TEST

/*
 * Deleting without an expunge that names UIDs: by default without UIDPLUS,
 * and with expunge = never even with it.  The messages are flagged \Seen
 * and \Deleted and nothing is expunged, so a message another client
 * flagged \Deleted stays; the flagging is what the server accepted.
 */
START_TEST(test_plugin_no_expunge)
{
	static const struct {
		const char *caps;
		int mode;
		const char *why;
	} cases[] = {
		{ "IMAP4rev1 IDLE", PM_EXPUNGE_UID, "lacks UIDPLUS" },
		{ "IMAP4rev1 UIDPLUS", PM_EXPUNGE_NEVER, "expunge = never" },
	};
	static const size_t idx[] = { 2, 0 };
	unsigned char done[2];
	size_t i;
	char *err = NULL;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		free(S);
		S = NULL;
		SL = 0;
		sp("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
		    "A1 OK [CAPABILITY %s] Logged in\r\n"
		    SELECT_3("A2") LIST_5_7_9("A3")
		    "A4 OK Store completed.\r\n"
		    "A5 OK bye\r\n", cases[i].caps);
		t_ready(S);
		M.acct.expunge = cases[i].mode;
		done[0] = done[1] = 0;
		ck_assert_int_eq(pullmail_plugin.dispose(conn,
		    PM_DISPOSE_DELETE, idx, 2, done, &err), PM_OK);
		ck_assert(done[0] && done[1]);
		t_close();
		at("C: A4 UID STORE 5,9 +FLAGS.SILENT (\\Seen \\Deleted)\n");
		ck_assert(absent("C: A5 EXPUNGE"));
		ck_assert(absent("UID EXPUNGE"));
		at("LOG INBOX: 2 messages flagged \\Deleted but not "
		    "expunged: ");
		at(cases[i].why);
		at("C: A5 LOGOUT");
	}
}
END_TEST

/* A refused STORE leaves its messages as they are (and unexpunged); the
 * session goes on. */
START_TEST(test_plugin_store_refused)
{
	static const char script[] =
	    GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    "A4 NO [CANNOT] Mailbox is read-only\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 0, 1, 2 };
	unsigned char done[3] = { 1, 1, 1 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_DELETE,
	    idx, 3, done, &err), PM_OK);
	ck_assert(!done[0] && !done[1] && !done[2]);
	t_close();
	at("LOG INBOX: UID STORE 5,7,9 failed: NO [CANNOT] Mailbox is "
	    "read-only\n");
	ck_assert(absent("EXPUNGE"));
	at("C: A5 LOGOUT");
}
END_TEST

/* UID sets longer than a command line allows: the STOREs are pipelined,
 * one refused leaves only its messages, UID EXPUNGE covers the others. */
START_TEST(test_plugin_store_pipelined)
{
	enum { N = 3000 };
	static uint32_t uids[N];
	static uint64_t sizes[N];
	static size_t idx[N];
	static unsigned char done[N];
	size_t i, k, n1, n2, tag = 4;
	char *set1, *set2, *set3, *cmd;
	char *err = NULL;

	for (i = 0; i < N; i++) {
		uids[i] = 1 + 2 * (uint32_t)i;
		sizes[i] = 1;
		idx[i] = i;
	}
	/* The plugin's sets, as the parser builds them. */
	n1 = imap_uidset(uids, N, 7900, &set1);
	n2 = imap_uidset(uids + n1, N - n1, 7900, &set2);
	ck_assert_uint_eq(n1 + n2, N);
	ck_assert_uint_eq(imap_uidset(uids + n1, N - n1, 7900, &set3), n2);
	sp_folder(uids, sizes, N);
	sp("A4 NO [SERVERBUG] nope\r\nA5 OK done\r\n");
	sp("* %zu EXPUNGE\r\n", n1 + 1);
	sp("A6 OK done\r\nA7 OK bye\r\n");
	t_ready(S);
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_DELETE,
	    idx, N, done, &err), PM_OK);
	for (i = 0; i < N; i++)
		ck_assert_int_eq(done[i], i >= n1);
	t_close();
	/* Both sent before the refusal was read. */
	if (asprintf(&cmd, "C: A%zu UID STORE %s +FLAGS.SILENT (\\Deleted)\n",
	    tag, set1) < 0)
		abort();
	k = at(cmd);
	free(cmd);
	if (asprintf(&cmd, "C: A%zu UID STORE %s +FLAGS.SILENT (\\Deleted)\n",
	    tag + 1, set2) < 0)
		abort();
	ck_assert_uint_lt(k, at(cmd));
	ck_assert_uint_lt(at(cmd), at("LOG INBOX: UID STORE 1,3,5,"));
	free(cmd);
	if (asprintf(&cmd, "C: A6 UID EXPUNGE %s\n", set3) < 0)
		abort();
	at(cmd);
	free(cmd);
	ck_assert_uint_eq(M.pos, M.inlen);
	free(set1);
	free(set2);
	free(set3);
}
END_TEST

START_TEST(test_plugin_no_uidvalidity)
{
	static const char script[] =
	    GREETING_AUTH
	    "* 3 EXISTS\r\n"
	    "A2 OK [READ-WRITE] Select completed.\r\n"
	    "A3 OK bye\r\n";
	char *err = NULL;

	ck_assert_int_eq(t_open(script, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "UIDVALIDITY"));
	ck_assert_ptr_nonnull(strstr(err, "INBOX"));
	free(err);
	t_close();
	ck_assert(absent("UID FETCH"));
	at("C: A3 LOGOUT");
}
END_TEST

START_TEST(test_plugin_select_no)
{
	static const char script[] =
	    GREETING_AUTH
	    "A2 NO Mailbox doesn't exist: Archive\r\n"
	    "A3 NO [NONEXISTENT] Mailbox doesn't exist: &AMQ-pfel\r\n"
	    "A4 NO [NONEXISTENT] No &AMQ-pfel-&Jjo! &AMR-\r\n"
	    "A5 OK bye\r\n";
	char *err = NULL;

	ck_assert_int_eq(t_open(script, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "Archive", &folder,
	    &err), PM_EPROTO);
	ck_assert_str_eq(err, "SELECT \"Archive\" failed: NO Mailbox "
	    "doesn't exist: Archive");
	free(err);
	err = NULL;
	/* A UTF-8 name goes out in modified UTF-7; the server's text comes
	 * back decoded, or as it is where it is not valid. */
	ck_assert_int_eq(pullmail_plugin.select(conn, "\xc3\x84pfel",
	    &folder, &err), PM_EPROTO);
	ck_assert_str_eq(err, "SELECT \"\xc3\x84pfel\" failed: NO "
	    "[NONEXISTENT] Mailbox doesn't exist: \xc3\x84pfel");
	free(err);
	err = NULL;
	ck_assert_int_eq(pullmail_plugin.select(conn, "&AMQ-pfel-",
	    &folder, &err), PM_EPROTO);
	ck_assert_str_eq(err, "SELECT \"\xc3\x84pfel-\" failed: NO "
	    "[NONEXISTENT] No \xc3\x84pfel-&Jjo! &AMR-");
	free(err);
	err = NULL;
	at("C: A3 SELECT \"&AMQ-pfel\"\n");
	at("C: A4 SELECT \"&AMQ-pfel-\"\n");
	/* A name no quoted string can carry is refused before sending. */
	ck_assert_int_eq(pullmail_plugin.select(conn, "a\r\nb", &folder,
	    &err), PM_ECONFIG);
	free(err);
	/* Nor is a name that is not UTF-8. */
	err = NULL;
	ck_assert_int_eq(pullmail_plugin.select(conn, "\xc3(", &folder,
	    &err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "is not valid UTF-8"));
	free(err);
	t_close();
	ck_assert(absent("a\r\nb"));
	at("C: A5 LOGOUT");
}
END_TEST

START_TEST(test_plugin_bye_mid_fetch)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7
	    "* BYE Server shutting down.\r\n";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_ETEMP);
	ck_assert_str_eq(err, "server closed the session: Server shutting "
	    "down.");
	free(err);
	t_close();
	/* The finished message stays finished; a broken session gets no
	 * LOGOUT. */
	at("END 1 complete=1");
	ck_assert(absent("BEGIN 2"));
	ck_assert(absent("LOGOUT"));
	at("DISCONNECT");
}
END_TEST

START_TEST(test_plugin_cut_mid_literal)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 2 FETCH (UID 7 BODY[] {12}\r\nHello";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_ETEMP);
	free(err);
	t_close();
	ck_assert_uint_lt(at("BEGIN 1"), at("END 1 complete=0"));
	ck_assert(absent("complete=1"));
	ck_assert(absent("BEGIN 2"));
	ck_assert(absent("LOGOUT"));
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

START_TEST(test_plugin_broken_literal)
{
	static const char *const scripts[] = {
	    GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    "* 2 FETCH (UID 7 BODY[] {3000000000}\r\n",
	    GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    "* 2 FETCH (UID 7 BODY[] {12x}\r\nHello\r\nWorld)\r\n",
	    GREETING_AUTH SELECT_3("A2") LIST_5_7_9("A3")
	    "* 2 FETCH (UID 7 BODY[] {12}\r\nHello\r\nWorld\r\n"
	    "A4 OK done\r\n",
	};
	static const size_t idx[] = { 1, 2 };
	size_t i;
	char *err = NULL;

	for (i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		t_ready(scripts[i]);
		ck_assert_int_eq(t_fetch(idx, 2, &err), PM_EPROTO);
		ck_assert_ptr_nonnull(err);
		free(err);
		t_close();
		ck_assert(absent("complete=1"));
		ck_assert(absent("LOGOUT"));
		ck_assert_int_eq(M.open_msgs, 0);
	}
	at("END 1 complete=0");
}
END_TEST

/* BODY[] NIL, or (Dovecot) no response at all: the message is gone. */
START_TEST(test_plugin_vanished)
{
	static const char script[] =
	    GREETING_AUTH
	    "* 4 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\nA2 OK done\r\n"
	    "* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n"
	    "* 2 FETCH (UID 6 RFC822.SIZE 10)\r\n"
	    "* 3 FETCH (UID 7 RFC822.SIZE 12)\r\n"
	    "* 4 FETCH (UID 9 RFC822.SIZE 5)\r\n"
	    "A3 OK done\r\n"
	    "* 2 FETCH (UID 6 BODY[] NIL)\r\n"
	    "* 3 FETCH (UID 7 BODY[] {12}\r\nHello\r\nWorld)\r\n"
	    "A4 OK done\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 1, 2, 3 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 3, &err), PM_OK);
	t_close();
	at("MISSING 1 0 ");
	at("MISSING 3 0 ");
	ck_assert(absent("BEGIN 1"));
	ck_assert(absent("BEGIN 3"));
	ck_assert_str_eq(M.delivered, "2:Hello\r\nWorld|");
	at("C: A5 LOGOUT");
}
END_TEST

START_TEST(test_plugin_list_sorted)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    "* 1 FETCH (UID 9 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 5 RFC822.SIZE 2)\r\n"
	    "* 3 FETCH (RFC822.SIZE 3 UID 4000000000)\r\n"
	    "* 2 FETCH (FLAGS (\\Seen) UID 5 RFC822.SIZE 2)\r\n"
	    "* 3 FETCH (FLAGS ())\r\n"
	    "A3 OK done\r\n"
	    "A4 OK bye\r\n";

	t_ready(script);
	ck_assert_uint_eq(nents, 3);
	ck_assert_str_eq(ents[0].uid, "5");
	ck_assert_uint_eq(ents[0].size, 2);
	ck_assert_str_eq(ents[1].uid, "9");
	ck_assert_uint_eq(ents[1].size, 1);
	ck_assert_str_eq(ents[2].uid, "4000000000");
	ck_assert_uint_eq(ents[2].size, 3);
	t_close();
}
END_TEST

/* A listing far longer than the folder the server reported is refused
 * (a hostile server could otherwise exhaust memory); an EXISTS during the
 * listing (new mail) raises the bound. */
START_TEST(test_plugin_listing_bound)
{
	size_t i, n = 3 + IMAP_LIST_MARGIN;
	const struct pm_entry *e;
	char *err = NULL;
	int have;

	/* One entry more than allowed: a protocol error, the dialogue
	 * abandoned. */
	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH SELECT_3("A2"));
	for (i = 1; i <= n + 1; i++)
		sp("* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i, i);
	sp("A3 OK done\r\nA4 OK bye\r\n");
	ck_assert_int_eq(t_open(S, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.list(conn, &e, &nents, &have,
	    &err), PM_EPROTO);
	ck_assert_str_eq(err, "UID FETCH 1:*: the server sent more than 1003 "
	    "messages for a folder of 3 (EXISTS)");
	free(err);
	t_close();
	ck_assert(absent("LOGOUT"));

	/* Exactly the bound is fine. */
	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH SELECT_3("A2"));
	for (i = 1; i <= n; i++)
		sp("* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i, i);
	sp("A3 OK done\r\nA4 OK bye\r\n");
	t_ready(S);
	ck_assert_uint_eq(nents, 1003);
	ck_assert_str_eq(ents[1002].uid, "1003");
	t_close();
	at("C: A4 LOGOUT");
	ck_assert_uint_eq(M.pos, M.inlen);

	/* New mail announced while listing: the bound follows EXISTS. */
	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH SELECT_3("A2") "* 4 EXISTS\r\n");
	for (i = 1; i <= n + 1; i++)
		sp("* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i, i);
	sp("A3 OK done\r\nA4 OK bye\r\n");
	t_ready(S);
	ck_assert_uint_eq(nents, 1004);
	t_close();

	/* Without EXISTS at all only IMAP_LIST_MAX applies. */
	free(S);
	S = NULL;
	SL = 0;
	sp(GREETING_AUTH "* OK [UIDVALIDITY 77] ok\r\nA2 OK done\r\n");
	for (i = 1; i <= n + 1; i++)
		sp("* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i, i);
	sp("A3 OK done\r\nA4 OK bye\r\n");
	t_ready(S);
	ck_assert_uint_eq(nents, 1004);
	ck_assert_uint_eq(folder.count, 0);
	t_close();
}
END_TEST

START_TEST(test_plugin_starttls)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"
	    "A1 OK Begin TLS negotiation now.\r\n"
	    "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
	    "A2 OK done\r\n"
	    "A3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
	    "A4 OK bye\r\n";
	char *err = NULL;

	mock_reset(script, 143);
	M.acct.tls = PM_TLS_STARTTLS;
	M.no_tls = 1;
	ck_assert_int_eq(pullmail_plugin.open(&mock_host, SESSION, &conn,
	    &err), PM_EAUTH);
	ck_assert_ptr_null(conn);
	ck_assert_ptr_nonnull(strstr(err, "NO [AUTHENTICATIONFAILED] "
	    "Authentication failed."));
	free(err);
	ck_assert_uint_lt(at("C: A1 STARTTLS"), at("TLS\n"));
	/* The capabilities are asked for again over TLS. */
	ck_assert_uint_lt(at("TLS\n"), at("C: A2 CAPABILITY"));
	at("SASL [PLAIN] ir=0");
	ck_assert_uint_lt(at("C: A4 LOGOUT"), at("DISCONNECT"));
}
END_TEST

START_TEST(test_plugin_starttls_missing)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "A1 OK bye\r\n";
	char *err = NULL;

	mock_reset(script, 143);
	M.acct.tls = PM_TLS_STARTTLS;
	M.no_tls = 1;
	ck_assert_int_eq(pullmail_plugin.open(&mock_host, SESSION, &conn,
	    &err), PM_ETLS);
	ck_assert_str_eq(err, "server does not offer STARTTLS");
	free(err);
	ck_assert(absent("SASL"));
	ck_assert(absent("AUTHENTICATE"));
	at("DISCONNECT");
}
END_TEST

START_TEST(test_plugin_login)
{
	static const char script[] =
	    "* OK IMAP server ready\r\n"
	    "* CAPABILITY IMAP4rev1\r\n"
	    "A1 OK done\r\n"
	    "A2 OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n"
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nA3 OK done\r\n"
	    "A4 OK bye\r\n";
	char *err = NULL;
	int have;

	mock_reset(script, 993);
	M.pw = secret_from_str("hun ter\"2\\(x)");
	M.acct.user = "joe \"the\" user";
	ck_assert_int_eq(pullmail_plugin.open(&mock_host, SESSION, &conn,
	    &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.list(conn, &ents, &nents, &have,
	    &err), PM_OK);
	ck_assert_str_eq(folder.validity, "9");
	ck_assert_uint_eq(folder.count, 0);
	ck_assert_uint_eq(nents, 0);
	t_close();
	at("C: A1 CAPABILITY\n");
	at("C: A2 LOGIN \"joe \\\"the\\\" user\" "
	    "<\"hun ter\\\"2\\\\(x)\">\n");
	ck_assert(absent("SASL"));
	/* An empty folder is not listed. */
	ck_assert(absent("UID FETCH"));
	at("C: A4 LOGOUT");
}
END_TEST

START_TEST(test_plugin_login_disabled)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n"
	    "A1 OK bye\r\n";
	char *err = NULL;

	mock_reset(script, 993);
	M.pw = secret_from_str("hunter2");
	ck_assert_int_eq(pullmail_plugin.open(&mock_host, SESSION, &conn,
	    &err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "LOGIN"));
	free(err);
	ck_assert(absent("hunter2"));
	at("DISCONNECT");
}
END_TEST

START_TEST(test_plugin_greeting)
{
	static const struct {
		const char *script;
		int rc;
		const char *err;
	} cases[] = {
		{ "* BYE Too many connections\r\n", PM_ETEMP,
		  "server closed the session: Too many connections" },
		{ "HTTP/1.1 400 Bad Request\r\n", PM_EPROTO, NULL },
		{ "A1 OK hello\r\n", PM_EPROTO, NULL },
		{ "", PM_ETEMP, NULL },
		{ "* OK [CAPABILITY IMAP4rev1 (x)] hi\r\n", PM_EPROTO, NULL },
	};
	size_t i;
	char *err = NULL;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(t_open(cases[i].script, &err), cases[i].rc);
		ck_assert_ptr_null(conn);
		ck_assert_ptr_nonnull(err);
		if (cases[i].err != NULL)
			ck_assert_str_eq(err, cases[i].err);
		free(err);
		ck_assert(absent("SASL"));
		ck_assert(absent("LOGOUT"));
		at("DISCONNECT");
	}
}
END_TEST

START_TEST(test_plugin_sasl_challenge)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
	    "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"
	    "A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
	    "A2 OK bye\r\n";
	char *err = NULL;

	ck_assert_int_eq(t_open(script, &err), PM_EAUTH);
	free(err);
	at("SASL reply 0 [eyJzdGF0dXMiOiI0MDEifQ==]");
	/* The error challenge is answered with an empty line. */
	at("C: <>\n");
	at("SASL reply 2 [NO [AUTHENTICATIONFAILED] Authentication "
	    "failed.]");
	ck_assert_uint_lt(at("C: A2 LOGOUT"), at("DISCONNECT"));
}
END_TEST

/* Literals that are not a body asked for are read and dropped: other
 * items, a body of a message not in the set, a second body of one
 * already received. */
START_TEST(test_plugin_foreign_literals)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 1 FETCH (FLAGS (\\Seen) X-GM-LABELS ({3}\r\nabc \"x\"))\r\n"
	    "* 1 FETCH (UID 5 BODY[] {3}\r\nxyz)\r\n"
	    "* 9 RECENT\r\n"
	    "* LIST () \"/\" {4}\r\nJunk\r\n"
	    BODY_7
	    "* 2 FETCH (UID 7 BODY[] {3}\r\ndup)\r\n"
	    "* 3 FETCH (UID 9 BODY[] {5}\r\nab\r\nc BODY[] {3}\r\ntwo)\r\n"
	    "A4 OK done\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_OK);
	t_close();
	ck_assert_str_eq(M.delivered, BODIES);
	ck_assert(absent("BEGIN 0"));
	ck_assert_uint_eq(count_before("BEGIN 1", M.loglen), 1);
	ck_assert(absent("MISSING"));
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* --- pipelining ---------------------------------------------------------- */

/* Several UID FETCH commands go out before the first response is read,
 * never more than IMAP_INFLIGHT (8) at once: with one message per
 * command (each listed larger than a command's byte budget), the k-th
 * body is read while exactly min(8 + k, all) commands have been sent. */
START_TEST(test_plugin_pipeline_window)
{
	enum { N = 12 };
	uint32_t uids[N];
	uint64_t sizes[N];
	size_t idx[N], i;
	char *err = NULL, needle[64];

	for (i = 0; i < N; i++) {
		uids[i] = 101 + (uint32_t)i;
		sizes[i] = 3000000;
		idx[i] = i;
	}
	sp_folder(uids, sizes, N);
	for (i = 0; i < N; i++)
		sp("* %zu FETCH (UID %u BODY[] {1}\r\n%c)\r\nA%zu OK done\r\n",
		    i + 1, uids[i], (int)('a' + i), i + 4);
	sp("A%d OK bye\r\n", N + 4);
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, N, &err), PM_OK);
	t_close();
	for (i = 0; i < N; i++) {
		snprintf(needle, sizeof needle, "C: A%zu UID FETCH %u "
		    "(UID BODY.PEEK[])\n", i + 4, uids[i]);
		at(needle);
		snprintf(needle, sizeof needle, "BEGIN %zu\n", i);
		ck_assert_uint_eq(count_before("UID BODY.PEEK[]", at(needle)),
		    (i + 8 < N ? i + 8 : N));
	}
	ck_assert_str_eq(M.delivered, "0:a|1:b|2:c|3:d|4:e|5:f|6:g|7:h|8:i|"
	    "9:j|10:k|11:l|");
	ck_assert(absent("MISSING"));
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* What one UID FETCH covers: at most 32 messages and 2 MiB of listed
 * size, a larger message alone. */
START_TEST(test_plugin_pipeline_sets)
{
	static const struct {
		size_t n;
		uint64_t size[40];
		const char *cmds[4];
	} cases[] = {
		{ 40, { 0 }, { "1:32", "33:40" } },
		{ 5, { 1048576, 1048576, 1048576, 1048576, 1048576 },
		  { "1:2", "3:4", "5" } },
		{ 3, { 100, 3000000, 100 }, { "1", "2", "3" } },
		{ 4, { 1000000, 1097152, 1, 1 }, { "1:2", "3:4" } },
	};
	uint32_t uids[40];
	size_t idx[40], i, j, ncmd;
	char *err = NULL, needle[64];

	for (i = 0; i < 40; i++) {
		uids[i] = (uint32_t)i + 1;
		idx[i] = i;
	}
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (ncmd = 0; ncmd < 4 && cases[i].cmds[ncmd] != NULL;
		    ncmd++)
			;
		sp_folder(uids, cases[i].size, cases[i].n);
		for (j = 0; j < ncmd; j++)
			sp("A%zu OK done\r\n", j + 4);
		sp("A%zu OK bye\r\n", ncmd + 4);
		t_ready(S);
		ck_assert_int_eq(t_fetch(idx, cases[i].n, &err), PM_OK);
		t_close();
		for (j = 0; j < ncmd; j++) {
			snprintf(needle, sizeof needle, "C: A%zu UID FETCH %s "
			    "(UID BODY.PEEK[])\n", j + 4, cases[i].cmds[j]);
			at(needle);
		}
		ck_assert_uint_eq(count_before("UID BODY.PEEK", M.loglen),
		    ncmd);
		/* The server sent nothing: every message is gone. */
		ck_assert_uint_eq(count_before("MISSING", M.loglen),
		    cases[i].n);
		ck_assert_uint_eq(M.pos, M.inlen);
	}
}
END_TEST

/* Responses come in any order, interleaved with unsolicited FETCH FLAGS
 * and EXPUNGE; each body goes to the message whose UID it carries. */
START_TEST(test_plugin_out_of_order)
{
	static const uint32_t uids[] = { 5, 7, 9, 11 };
	static const uint64_t sizes[] = { 3000000, 3000000, 3000000,
	    3000000 };
	static const size_t idx[] = { 0, 1, 3 };
	char *err = NULL;

	sp_folder(uids, sizes, 4);
	sp("* 2 FETCH (UID 7 BODY[] {2}\r\nb7)\r\n"
	    "* 1 FETCH (FLAGS (\\Seen))\r\n"
	    "A5 OK done\r\n"
	    /* UID 9 is expunged: UID 11 becomes message 3. */
	    "* 3 EXPUNGE\r\n"
	    "* 3 FETCH (BODY[] {3}\r\nb11 UID 11)\r\n"
	    "* 2 FETCH (FLAGS (\\Seen \\Deleted) UID 7)\r\n"
	    "A6 OK done\r\n"
	    "* 1 FETCH (BODY[] {2}\r\nb5 UID 5)\r\n"
	    "A4 OK done\r\n"
	    "A7 OK bye\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 3, &err), PM_OK);
	t_close();
	ck_assert_str_eq(M.delivered, "1:b7|3:b11|0:b5|");
	ck_assert(absent("complete=0"));
	ck_assert(absent("MISSING"));
	ck_assert_msg(absent("\nLOG "), "%s", mock_log());
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* Exchange sends the UID after the literal: the sequence number is a
 * guess, checked when the UID arrives.  A wrong guess is not delivered:
 * the message guessed ends incomplete, the one the UID names is missing,
 * and both are fetched again next time. */
START_TEST(test_plugin_exchange_mismatch)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 2 FETCH (BODY[] {5}\r\nwrong UID 9)\r\n"
	    "A4 OK done\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_OK);
	t_close();
	ck_assert_uint_lt(at("BEGIN 1\n"), at("END 1 complete=0"));
	at("LOG INBOX: FETCH response 2 taken for UID 7 carried UID 9: "
	    "discarded\n");
	at("MISSING 2 1 ");
	ck_assert(absent("complete=1"));
	ck_assert(absent("BEGIN 2"));
	ck_assert_ptr_null(M.delivered);
	ck_assert_int_eq(M.open_msgs, 0);
	at("C: A5 LOGOUT");
}
END_TEST

/* A body with no UID at all is never delivered: with a sequence guess it
 * ends incomplete, without one it is not even begun; the messages not
 * received are then failures, not gone. */
START_TEST(test_plugin_no_uid)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 2 FETCH (BODY[] {5}\r\nnouid)\r\n"
	    "* 3 EXISTS\r\n"
	    "* 7 FETCH (BODY[] {3}\r\nabc FLAGS (\\Seen))\r\n"
	    "A4 OK done\r\n"
	    "A5 OK bye\r\n";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_OK);
	t_close();
	ck_assert_uint_lt(at("BEGIN 1\n"), at("END 1 complete=0"));
	at("LOG INBOX: FETCH response 2 taken for UID 7 carried no UID: "
	    "discarded\n");
	at("LOG INBOX: FETCH response 7 with a body and no UID dropped\n");
	ck_assert(absent("BEGIN 2"));
	at("MISSING 2 1 ");
	ck_assert(absent("complete=1"));
	ck_assert_ptr_null(M.delivered);
}
END_TEST

/* A message expunged by another client while commands are in flight:
 * the server sends nothing for it, the others arrive, and the sequence
 * numbers of later Exchange-form responses are taken as shifted. */
START_TEST(test_plugin_expunged_mid_window)
{
	static const uint32_t uids[] = { 10, 20, 30, 40, 50 };
	static const uint64_t sizes[] = { 3000000, 3000000, 3000000,
	    3000000, 3000000 };
	static const size_t idx[] = { 1, 2, 3, 4 };
	char *err = NULL;

	sp_folder(uids, sizes, 5);
	sp("* 2 EXPUNGE\r\n"
	    "A4 OK done\r\n"
	    "* 2 FETCH (BODY[] {3}\r\nm30 UID 30)\r\n"
	    "A5 OK done\r\n"
	    "* 3 FETCH (BODY[] {3}\r\nm40 UID 40)\r\n"
	    "A6 OK done\r\n"
	    "* 4 FETCH (BODY[] {3}\r\nm50 UID 50)\r\n"
	    "A7 OK done\r\n"
	    "A8 OK bye\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 4, &err), PM_OK);
	t_close();
	at("MISSING 1 0 ");
	ck_assert_str_eq(M.delivered, "2:m30|3:m40|4:m50|");
	ck_assert(absent("complete=0"));
	ck_assert_msg(absent("\nLOG "), "%s", mock_log());
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* A tagged NO to one UID FETCH (Exchange: "The specified message set is
 * invalid.") fails only that command's messages not yet received. */
START_TEST(test_plugin_fetch_no)
{
	static const uint32_t uids[] = { 5, 7, 9, 11 };
	static const uint64_t sizes[] = { 3000000, 1000000, 1000000,
	    3000000 };
	static const size_t idx[] = { 0, 1, 2, 3 }, seen[] = { 0, 1, 3 };
	unsigned char done[3];
	char *err = NULL;

	sp_folder(uids, sizes, 4);
	sp("* 1 FETCH (UID 5 BODY[] {2}\r\nb5)\r\n"
	    "A4 OK done\r\n"
	    "* 2 FETCH (UID 7 BODY[] {2}\r\nb7)\r\n"
	    "A5 NO The specified message set is invalid.\r\n"
	    "* 4 FETCH (UID 11 BODY[] {3}\r\nb11)\r\n"
	    "A6 OK done\r\n"
	    "A7 OK done\r\n"
	    "A8 OK bye\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 4, &err), PM_OK);
	ck_assert_ptr_null(err);
	at("C: A5 UID FETCH 7,9 (UID BODY.PEEK[])\n");
	at("MISSING 2 1 UID FETCH 7,9 failed: NO The specified message set "
	    "is invalid.\n");
	ck_assert_uint_eq(count_before("MISSING", M.loglen), 1);
	ck_assert_str_eq(M.delivered, "0:b5|1:b7|3:b11|");
	/* The session goes on. */
	ck_assert_int_eq(pullmail_plugin.dispose(conn, PM_DISPOSE_SEEN,
	    seen, 3, done, &err), PM_OK);
	t_close();
	at("C: A7 UID STORE 5,7,11 +FLAGS.SILENT (\\Seen)\n");
	at("C: A8 LOGOUT");
}
END_TEST

/* The connection drops with commands in flight: what was complete stays
 * complete, the message in flight ends incomplete, nothing else begins. */
START_TEST(test_plugin_cut_mid_window)
{
	static const uint32_t uids[] = { 5, 7, 9 };
	static const uint64_t sizes[] = { 3000000, 3000000, 3000000 };
	static const size_t idx[] = { 0, 1, 2 };
	char *err = NULL;

	sp_folder(uids, sizes, 3);
	sp("* 1 FETCH (UID 5 BODY[] {2}\r\nb5)\r\n"
	    "A4 OK done\r\n"
	    "* 2 FETCH (UID 7 BODY[] {10}\r\nabc");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 3, &err), PM_ETEMP);
	ck_assert_ptr_nonnull(err);
	free(err);
	t_close();
	ck_assert_uint_lt(at("END 0 complete=1"), at("BEGIN 1"));
	ck_assert_uint_lt(at("BEGIN 1"), at("END 1 complete=0"));
	ck_assert(absent("BEGIN 2"));
	ck_assert(absent("MISSING"));
	ck_assert(absent("LOGOUT"));
	ck_assert_str_eq(M.delivered, "0:b5|");
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

/* A BAD, or a tag nobody sent, is a protocol error that leaves the
 * dialogue out of step. */
START_TEST(test_plugin_fetch_bad)
{
	static const uint32_t uids[] = { 5, 7 };
	static const uint64_t sizes[] = { 3000000, 3000000 };
	static const size_t idx[] = { 0, 1 };
	char *err = NULL;

	sp_folder(uids, sizes, 2);
	sp("A4 BAD [PARSE] what?\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_EPROTO);
	ck_assert_str_eq(err, "UID FETCH 5 failed: BAD [PARSE] what?");
	free(err);
	t_close();
	ck_assert(absent("LOGOUT"));

	sp_folder(uids, sizes, 2);
	sp("A9 OK done\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_EPROTO);
	ck_assert_str_eq(err, "UID FETCH: response with unexpected tag "
	    "\"A9\"");
	free(err);
	t_close();
	ck_assert(absent("LOGOUT"));
}
END_TEST

/* Exchange throttles a login: a temporary failure with the server's
 * suggested wait, never an authentication failure; AUTHENTICATE and
 * LOGIN alike, as NO or BAD. */
START_TEST(test_plugin_throttled_login)
{
	static const char *const scripts[] = {
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
	    "A1 NO Request is throttled. Suggested Backoff Time: 1500 "
	    "milliseconds\r\n",
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
	    "A1 BAD Request is throttled. Suggested Backoff Time: 1500 "
	    "milliseconds\r\n",
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "A1 NO Request is throttled. Suggested Backoff Time: 1500 "
	    "milliseconds\r\n",
	};
	char *err = NULL;

	mock_reset(scripts[_i], 993);
	if (_i == 2)
		M.pw = secret_from_str("pw");
	ck_assert_int_eq(pullmail_plugin.open(&mock_host, SESSION, &conn,
	    &err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "turned a command away for now: "));
	ck_assert_ptr_nonnull(strstr(err, "Request is throttled. Suggested "
	    "Backoff Time: 1500 milliseconds"));
	free(err);
	at("HINT 1 1500\n");
	/* Not handed to the SASL engine as a refusal. */
	ck_assert(absent("SASL reply"));
	ck_assert(absent("LOGOUT"));
	at("DISCONNECT");
}
END_TEST

/* "authenticated but not connected" to SELECT: a new session is worth
 * it, this one is over. */
START_TEST(test_plugin_not_connected)
{
	static const char script[] =
	    GREETING_AUTH
	    "A2 BAD User is authenticated but not connected.\r\n"
	    "* BYE Connection closed. 14\r\n";
	char *err = NULL;

	ck_assert_int_eq(t_open(script, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_ETEMP);
	ck_assert_str_eq(err, "the server turned a command away for now: "
	    "BAD User is authenticated but not connected.");
	free(err);
	t_close();
	ck_assert_uint_eq(count_before("HINT", M.loglen), 1);
	at("HINT 2 0\n");
	ck_assert(absent("LOGOUT"));
}
END_TEST

/* BYE AccessTokenExpired after a complete message of a FETCH: the message
 * stays complete, a fresh token is called for. */
START_TEST(test_plugin_token_expired)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7
	    "* BYE Session invalidated - AccessTokenExpired\r\n";
	static const size_t idx[] = { 1, 2 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_ETEMP);
	ck_assert_str_eq(err, "server closed the session: Session "
	    "invalidated - AccessTokenExpired");
	free(err);
	t_close();
	at("END 1 complete=1");
	ck_assert(absent("BEGIN 2"));
	/* The BYE's reason, not the closed connection after it, counts. */
	ck_assert_uint_eq(count_before("HINT", M.loglen), 1);
	at("HINT 3 0\n");
	ck_assert(absent("LOGOUT"));
}
END_TEST

/* What looks like a BYE inside a literal is message data; the connection
 * cut after it is a lost session, and the message is incomplete. */
START_TEST(test_plugin_bye_in_literal)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 2 FETCH (UID 7 BODY[] {80}\r\nHello\r\n"
	    "* BYE Session invalidated - AccessTokenExpired\r\n";
	static const size_t idx[] = { 1 };
	char *err = NULL;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 1, &err), PM_ETEMP);
	free(err);
	t_close();
	at("END 1 complete=0");
	at("HINT 2 0\n");
	ck_assert(absent("HINT 3"));
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

/* A throttled FETCH in a pipeline ends the session with the wait; other
 * BYEs and a lost connection after login call for a new session, a
 * connection lost before login for nothing special. */
START_TEST(test_plugin_session_lost)
{
	static const uint32_t uids[] = { 5, 7 };
	static const uint64_t sizes[] = { 3000000, 3000000 };
	static const size_t idx[] = { 0, 1 };
	char *err = NULL;

	sp_folder(uids, sizes, 2);
	sp("* 1 FETCH (UID 5 BODY[] {2}\r\nb5)\r\n"
	    "A4 OK done\r\n"
	    "A5 NO Request is throttled. Suggested Backoff Time: 250 "
	    "milliseconds\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_ETEMP);
	free(err);
	t_close();
	ck_assert_str_eq(M.delivered, "0:b5|");
	at("HINT 1 250\n");
	ck_assert(absent("MISSING"));

	sp_folder(uids, sizes, 2);
	sp("* BYE Server shutting down.\r\n");
	t_ready(S);
	ck_assert_int_eq(t_fetch(idx, 2, &err), PM_ETEMP);
	free(err);
	t_close();
	at("HINT 2 0\n");

	ck_assert_int_eq(t_open(GREETING_AUTH, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.select(conn, "INBOX", &folder,
	    &err), PM_ETEMP);
	free(err);
	t_close();
	at("HINT 2 0\n");

	ck_assert_int_eq(t_open("* OK [CAPABILITY IMAP4rev1 SASL-IR "
	    "AUTH=XOAUTH2] hi\r\n", &err), PM_ETEMP);
	free(err);
	ck_assert(absent("HINT"));
}
END_TEST

/* --- waiting for new mail: IDLE ---------------------------------------- */

/* Dovecot's greeting and login, as the test Dovecot sends them. */
#define DOVECOT_LOGIN \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE " \
	"LITERAL+ AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2 AUTH=OAUTHBEARER] " \
	"Dovecot (Debian) ready.\r\n" \
	"A1 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE " \
	"SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS " \
	"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT " \
	"CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE " \
	"QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS " \
	"BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE " \
	"SAVEDATE LITERAL+ NOTIFY] Logged in\r\n"
/* Dovecot's SELECT of an INBOX of two messages (UIDs 1 and 2), listed. */
#define DOVECOT_SELECT_2 \
	"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n" \
	"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen " \
	"\\Draft \\*)] Flags permitted.\r\n" \
	"* 2 EXISTS\r\n" \
	"* 2 RECENT\r\n" \
	"* OK [UNSEEN 1] First unseen.\r\n" \
	"* OK [UIDVALIDITY 1796007545] UIDs valid\r\n" \
	"* OK [UIDNEXT 3] Predicted next UID\r\n" \
	"A2 OK [READ-WRITE] Select completed (0.003 + 0.000 + 0.002 " \
	"secs).\r\n" \
	"* 1 FETCH (UID 1 RFC822.SIZE 43)\r\n" \
	"* 2 FETCH (UID 2 RFC822.SIZE 43)\r\n" \
	"A3 OK Fetch completed (0.001 + 0.000 secs).\r\n"
/* A server with IDLE, INBOX of three messages (UIDs 5, 7, 9) listed; the
 * next tag is A4. */
#define IDLE_READY \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n" \
	"A1 OK [CAPABILITY IMAP4rev1 UIDPLUS IDLE] Logged in\r\n" \
	SELECT_3("A2") LIST_5_7_9("A3")
#define LOGOUT(tag) "* BYE Logging out\r\n" tag " OK Logout completed.\r\n"

/* Wait with timeout ms; returns wait's status, *news_r what it said. */
static int
t_wait(int ms, int *news_r, char **err)
{
	*err = NULL;
	*news_r = -1;
	return pullmail_plugin.wait(conn, ms, news_r, err);
}

/* Dovecot's own IDLE dialogue, as captured from the test Dovecot while
 * another client delivered a message, flagged one \Seen, expunged one and
 * delivered one more (doveadm save, flags, expunge, a file moved into
 * new/): each new message ends a wait, the flag change and the expunge
 * (with the RECENT count that went down after it) do not. */
START_TEST(test_idle_dovecot)
{
	static const char script[] =
	    DOVECOT_LOGIN
	    DOVECOT_SELECT_2
	    "+ idling\r\n"
	    "* 3 EXISTS\r\n"
	    "* 3 RECENT\r\n"
	    "A4 OK Idle completed (10.857 + 10.826 + 10.856 secs).\r\n"
	    "* 1 FETCH (UID 1 RFC822.SIZE 43)\r\n"
	    "* 2 FETCH (UID 2 RFC822.SIZE 43)\r\n"
	    "* 3 FETCH (UID 3 RFC822.SIZE 43)\r\n"
	    "A5 OK Fetch completed (0.001 + 0.000 secs).\r\n"
	    "+ idling\r\n"
	    "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"
	    "* 2 EXPUNGE\r\n"
	    "* 2 RECENT\r\n"
	    AWAIT_0
	    "A6 OK Idle completed (2.008 + 2.005 + 2.007 secs).\r\n"
	    "+ idling\r\n"
	    "* 3 EXISTS\r\n"
	    "* 3 RECENT\r\n"
	    "A7 OK Idle completed (10.857 + 10.826 + 10.856 secs).\r\n"
	    LOGOUT("A8");
	static const char want[] =
	    "C: A4 IDLE\n"
	    "C: DONE\n"
	    "C: A5 UID FETCH 1:* (UID RFC822.SIZE)\n"
	    "C: A6 IDLE\n"
	    "AWAIT -> 0\n"
	    "C: DONE\n"
	    "C: A7 IDLE\n"
	    "C: DONE\n"
	    "C: A8 LOGOUT\n"
	    "DISCONNECT\n";
	int have, news;
	char *err = NULL;

	t_ready(script);
	ck_assert_uint_eq(nents, 2);
	ck_assert_int_eq(pullmail_plugin.can_wait(conn), 1);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(news, 1);
	ck_assert_int_eq(pullmail_plugin.list(conn, &ents, &nents, &have,
	    &err), PM_OK);
	ck_assert_uint_eq(nents, 3);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 0);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 1);
	/* Every wait was ended within the time it was given. */
	ck_assert_int_gt(M.await_ms, 50000);
	ck_assert_int_le(M.await_ms, 60000);
	t_close();
	ck_assert_str_eq(mock_log() + at("C: A4 IDLE"), want);
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* hoodiecrow's dialogue, as captured (the IDLE while another session
 * appended a message, then flagged one \Deleted and expunged it): after
 * the EXPUNGE it repeats the count that EXPUNGE left, which is no news. */
START_TEST(test_idle_hoodiecrow)
{
	static const char script[] =
	    "* OK Hoodiecrow ready for rumble\r\n"
	    "* CAPABILITY IMAP4rev1 IDLE UIDPLUS SASL-IR AUTH=XOAUTH2\r\n"
	    "A1 OK Completed\r\n"
	    "A2 OK User logged in\r\n"
	    "* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n"
	    "A3 OK Completed\r\n"
	    "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n"
	    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted "
	    "\\Seen \\*)]\r\n"
	    "* 3 EXISTS\r\n"
	    "* 0 RECENT\r\n"
	    "* OK [UIDVALIDITY 1]\r\n"
	    "* OK [UIDNEXT 4]\r\n"
	    "A4 OK [READ-WRITE] Completed\r\n"
	    "* 1 FETCH (UID 1 RFC822.SIZE 43)\r\n"
	    "* 2 FETCH (UID 2 RFC822.SIZE 43)\r\n"
	    "* 3 FETCH (UID 3 RFC822.SIZE 43)\r\n"
	    "A5 OK UID FETCH Completed\r\n"
	    "+ idling\r\n"
	    "* 4 EXISTS\r\n"
	    "A6 OK IDLE terminated\r\n"
	    "* 1 FETCH (UID 1 RFC822.SIZE 43)\r\n"
	    "* 2 FETCH (UID 2 RFC822.SIZE 43)\r\n"
	    "* 3 FETCH (UID 3 RFC822.SIZE 43)\r\n"
	    "* 4 FETCH (UID 4 RFC822.SIZE 37)\r\n"
	    "A7 OK UID FETCH Completed\r\n"
	    "+ idling\r\n"
	    "* 2 EXPUNGE\r\n"
	    "* 3 EXISTS\r\n"
	    AWAIT_0
	    "A8 OK IDLE terminated\r\n"
	    "* BYE LOGOUT received\r\n"
	    "A9 OK Completed\r\n";
	int have, news;
	char *err = NULL;

	t_ready(script);
	ck_assert_uint_eq(nents, 3);
	ck_assert_int_eq(pullmail_plugin.can_wait(conn), 1);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 1);
	ck_assert_int_eq(pullmail_plugin.list(conn, &ents, &nents, &have,
	    &err), PM_OK);
	ck_assert_uint_eq(nents, 4);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 0);
	t_close();
	ck_assert_uint_lt(at("C: A6 IDLE\nC: DONE\nC: A7 UID FETCH"),
	    at("C: A8 IDLE\nAWAIT -> 0\nC: DONE\nC: A9 LOGOUT"));
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* can_wait() follows the capabilities after login, which replace those of
 * the greeting. */
START_TEST(test_idle_can_wait)
{
	static const struct {
		const char *script;
		int can;
	} cases[] = {
		{ "* OK [CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN] hi\r\n"
		  "A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n"
		  "A2 OK bye\r\n", 0 },
		{ "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
		  "A1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"
		  "A2 OK bye\r\n", 1 },
		{ "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE] hi\r\n"
		  "A1 OK Logged in\r\n"
		  "* CAPABILITY IMAP4rev1 UIDPLUS\r\nA2 OK done\r\n"
		  "A3 OK bye\r\n", 0 },
		{ "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
		  "A1 OK Logged in\r\n"
		  "* CAPABILITY IMAP4rev1 idle\r\nA2 OK done\r\n"
		  "A3 OK bye\r\n", 1 },
	};
	size_t i;
	char *err = NULL;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(t_open(cases[i].script, &err), PM_OK);
		ck_assert_int_eq(pullmail_plugin.can_wait(conn),
		    cases[i].can);
		t_close();
		ck_assert_uint_eq(M.pos, M.inlen);
	}
}
END_TEST

/* Capabilities that change in the middle of a session are followed;
 * a wait started anyway is the server's to refuse. */
START_TEST(test_idle_caps_change)
{
	static const char script[] =
	    IDLE_READY
	    "+ idling\r\n* CAPABILITY IMAP4rev1 UIDPLUS\r\n" AWAIT_0
	    "A4 OK done\r\n"
	    "A5 BAD Unknown command\r\n"
	    LOGOUT("A6");
	char *err = NULL;
	int news;

	t_ready(script);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(pullmail_plugin.can_wait(conn), 0);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_EPROTO);
	ck_assert_str_eq(err, "INBOX: IDLE failed: BAD Unknown command");
	free(err);
	t_close();
	at("C: A6 LOGOUT");
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* What ends a wait with news, what ends it without, and what the server
 * may send meanwhile. */
static const struct idle_case {
	const char *name;
	const char *idle;	/* the server after "A4 IDLE" */
	int news;
	int done;		/* DONE is sent */
	int awaits;		/* await_input() calls */
} idle_cases[] = {
	{ "news by EXISTS", "+ idling\r\n* 4 EXISTS\r\nA4 OK done\r\n",
	  1, 1, 1 },
	{ "news by RECENT alone",
	  "+ idling\r\n* 1 RECENT\r\nA4 OK done\r\n", 1, 1, 1 },
	{ "a count that did not grow is no news",
	  "+ idling\r\n* 3 EXISTS\r\n* 0 RECENT\r\n" AWAIT_0
	  "A4 OK done\r\n", 0, 1, 3 },
	{ "expunge only",
	  "+ idling\r\n* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n" AWAIT_0
	  "A4 OK done\r\n", 0, 1, 3 },
	{ "expunged, then a new one at the same number",
	  "+ idling\r\n* 3 EXPUNGE\r\n* 3 EXISTS\r\nA4 OK done\r\n",
	  1, 1, 2 },
	{ "flags only", "+ idling\r\n* 2 FETCH (FLAGS (\\Seen))\r\n"
	  "* 2 FETCH (UID 7 FLAGS ())\r\n" AWAIT_0 "A4 OK done\r\n",
	  0, 1, 3 },
	{ "Exchange's keepalive",
	  "+ IDLE accepted, awaiting DONE command.\r\n* OK Still here\r\n"
	  "* OK Still here\r\n" AWAIT_0 "A4 OK IDLE completed.\r\n",
	  0, 1, 3 },
	{ "timeout", "+ idling\r\n" AWAIT_0 "A4 OK done\r\n", 0, 1, 1 },
	{ "news in the answer to DONE",
	  "+ idling\r\n" AWAIT_0 "* 5 EXISTS\r\n* 1 RECENT\r\nA4 OK done\r\n",
	  1, 1, 1 },
	{ "news before the continuation request (Exchange)",
	  "* 1 RECENT\r\n* 4 EXISTS\r\n"
	  "+ IDLE accepted, awaiting DONE command.\r\n"
	  "A4 OK IDLE completed.\r\n", 1, 1, 0 },
	{ "the server ends the IDLE",
	  "+ idling\r\n* OK Still here\r\nA4 OK IDLE terminated\r\n",
	  0, 0, 2 },
	{ "the server ends the IDLE before it began",
	  "A4 OK [ALERT] no IDLE today\r\n", 0, 0, 0 },
	{ "a second continuation request is ignored",
	  "+ idling\r\n+ still\r\n" AWAIT_0 "A4 OK done\r\n", 0, 1, 2 },
	{ "a FETCH with a literal is read whole",
	  "+ idling\r\n* 1 FETCH (UID 5 X-GM-LABELS ({12}\r\n* 9 EXISTS\r\n"
	  " \"x\") FLAGS (\\Seen))\r\n* LIST () \"/\" {10}\r\n* 8 EXISTS\r\n"
	  AWAIT_0
	  "A4 OK done\r\n", 0, 1, 3 },
	{ "huge numbers that are still numbers",
	  "+ idling\r\n* 4294967295 FETCH (FLAGS ())\r\n"
	  "* 4294967295 EXPUNGE\r\n* 0 EXPUNGE\r\n"
	  "* 4294967295 EXISTS\r\nA4 OK done\r\n", 1, 1, 4 },
};

START_TEST(test_idle_cases)
{
	const struct idle_case *c = &idle_cases[_i];
	size_t done;
	char *err = NULL;
	int news;

	free(S);
	S = NULL;
	SL = 0;
	sp(IDLE_READY "%s" LOGOUT("A5"), c->idle);
	t_ready(S);
	ck_assert_int_eq(pullmail_plugin.can_wait(conn), 1);
	ck_assert_msg(t_wait(60000, &news, &err) == PM_OK, "%s: %s",
	    c->name, err);
	ck_assert_msg(news == c->news, "%s: news %d", c->name, news);
	ck_assert_msg(M.awaits == (unsigned)c->awaits, "%s: %u awaits",
	    c->name, M.awaits);
	ck_assert_msg(absent("C: DONE") == !c->done, "%s: %s", c->name,
	    mock_log());
	t_close();
	/* Nothing left unread, nothing taken for a line that was not one:
	 * the session ended in step with LOGOUT. */
	ck_assert_uint_eq(M.pos, M.inlen);
	done = c->done ? at("C: DONE") : at("C: A4 IDLE");
	ck_assert_uint_lt(done, at("C: A5 LOGOUT"));
	ck_assert(absent("HINT"));
}
END_TEST

/* Mail announced outside IDLE (an EXISTS in the middle of a fetch) is
 * news at once: the listing may lack it.  A new listing clears it. */
START_TEST(test_idle_news_before)
{
	static const char script[] =
	    IDLE_READY
	    BODY_7
	    "* 4 EXISTS\r\n"
	    "A4 OK Fetch completed.\r\n"
	    "* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n"
	    "* 4 FETCH (UID 10 RFC822.SIZE 3)\r\n"
	    "A5 OK done\r\n"
	    "+ idling\r\n" AWAIT_0 "A6 OK done\r\n"
	    LOGOUT("A7");
	static const size_t idx[] = { 1 };
	char *err = NULL;
	int news, have;

	t_ready(script);
	ck_assert_int_eq(t_fetch(idx, 1, &err), PM_OK);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 1);
	ck_assert(absent("IDLE"));
	ck_assert_uint_eq(M.awaits, 0);
	ck_assert_int_eq(pullmail_plugin.list(conn, &ents, &nents, &have,
	    &err), PM_OK);
	ck_assert_int_eq(t_wait(60000, &news, &err), PM_OK);
	ck_assert_int_eq(news, 0);
	at("C: A6 IDLE");
	t_close();
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* The time given is the time waited, never beyond 29 minutes (RFC 2177);
 * no time at all is a quick look: IDLE and DONE at once. */
START_TEST(test_idle_time)
{
	char *err = NULL;
	int news;

	free(S);
	S = NULL;
	SL = 0;
	sp(IDLE_READY "+ idling\r\n" AWAIT_0 "A4 OK done\r\n"
	    "+ idling\r\nA5 OK done\r\n" LOGOUT("A6"));
	t_ready(S);
	ck_assert_int_eq(t_wait(0x7fffffff, &news, &err), PM_OK);
	ck_assert_int_le(M.await_ms, 29 * 60 * 1000);
	ck_assert_int_gt(M.await_ms, 29 * 60 * 1000 - 60000);
	ck_assert_uint_eq(M.awaits, 1);
	ck_assert_int_eq(t_wait(0, &news, &err), PM_OK);
	ck_assert_int_eq(news, 0);
	ck_assert_uint_eq(M.awaits, 1);
	t_close();
	ck_assert_uint_lt(at("C: A5 IDLE"), at("C: DONE\nC: A6 LOGOUT"));
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* A wait that fails: BYE (with the core told why), a refused IDLE, a
 * broken connection or response. */
static const struct idle_fail {
	const char *name;
	const char *idle;	/* the server after "A4 IDLE" */
	int rc;
	const char *err;	/* NULL: not checked */
	int hint;		/* retry_hint(), 0: none */
	int logout;		/* still in step: close() logs out */
} idle_fails[] = {
	{ "token expired (Exchange)",
	  "+ IDLE accepted, awaiting DONE command.\r\n* OK Still here\r\n"
	  "* BYE Session invalidated - AccessTokenExpired\r\n", PM_ETEMP,
	  "server closed the session: Session invalidated - "
	  "AccessTokenExpired", PM_RETRY_TOKEN_EXPIRED, 0 },
	{ "BYE from Dovecot (doveadm kick)",
	  "+ idling\r\n* BYE Server shutting down.\r\n", PM_ETEMP,
	  "server closed the session: Server shutting down.",
	  PM_RETRY_RECONNECT, 0 },
	{ "BYE in the answer to DONE",
	  "+ idling\r\n" AWAIT_0 "* BYE [UNAVAILABLE] going down\r\n",
	  PM_ETEMP, NULL, PM_RETRY_RECONNECT, 0 },
	{ "BYE instead of the continuation request",
	  "* BYE Connection is closed. 13\r\n", PM_ETEMP, NULL,
	  PM_RETRY_RECONNECT, 0 },
	{ "connection closed while idling", "+ idling\r\n", PM_ETEMP,
	  "connection closed by server", PM_RETRY_RECONNECT, 0 },
	{ "no answer to DONE", "+ idling\r\n" AWAIT_0, PM_ETEMP,
	  "connection closed by server", PM_RETRY_RECONNECT, 0 },
	{ "IDLE throttled (Exchange)", "A4 NO Request is throttled. "
	  "Suggested Backoff Time: 1500 milliseconds\r\n", PM_ETEMP, NULL,
	  PM_RETRY_THROTTLED, 0 },
	{ "IDLE refused", "A4 NO IDLE not allowed now\r\n", PM_EPROTO,
	  "INBOX: IDLE failed: NO IDLE not allowed now", 0, 1 },
	{ "IDLE unknown", "A4 BAD [CLIENTBUG] Unknown command\r\n",
	  PM_EPROTO, "INBOX: IDLE failed: BAD [CLIENTBUG] Unknown command",
	  0, 1 },
	{ "IDLE failed after DONE",
	  "+ idling\r\n" AWAIT_0 "A4 NO mailbox gone\r\n", PM_EPROTO,
	  "INBOX: IDLE failed: NO mailbox gone", 0, 1 },
	{ "garbage", "+ idling\r\nHTTP/1.1 200 OK\r\n", PM_EPROTO, NULL, 0,
	  0 },
	{ "a number too large", "+ idling\r\n* 99999999999 EXISTS\r\n",
	  PM_EPROTO, NULL, 0, 0 },
	{ "a literal too large",
	  "+ idling\r\n* 1 FETCH (X {99999999999}\r\n", PM_EPROTO, NULL, 0,
	  0 },
	{ "a literal cut", "+ idling\r\n* 1 FETCH (X {100}\r\nabc", PM_ETEMP,
	  NULL, PM_RETRY_RECONNECT, 0 },
	{ "another tag", "+ idling\r\nA3 OK done\r\n", PM_EPROTO,
	  "IDLE: response with unexpected tag \"A3\"", 0, 0 },
};

START_TEST(test_idle_fail)
{
	const struct idle_fail *c = &idle_fails[_i];
	char *err = NULL;
	int news;

	free(S);
	S = NULL;
	SL = 0;
	sp(IDLE_READY "%s%s", c->idle, c->logout ? LOGOUT("A5") : "");
	t_ready(S);
	ck_assert_msg(t_wait(60000, &news, &err) == c->rc, "%s: %s",
	    c->name, err);
	ck_assert_ptr_nonnull(err);
	if (c->err != NULL)
		ck_assert_msg(strcmp(err, c->err) == 0, "%s: %s", c->name,
		    err);
	ck_assert_msg(M.hint == c->hint, "%s: hint %d", c->name, M.hint);
	ck_assert_int_eq(M.hint_ms, c->hint == PM_RETRY_THROTTLED ? 1500 :
	    0);
	free(err);
	t_close();
	ck_assert_msg(absent("LOGOUT") == !c->logout, "%s: %s", c->name,
	    mock_log());
	if (c->logout)
		ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

/* A server that never stops talking: a wait lasts its time and no more,
 * and a server that never answers DONE, or never accepts IDLE, while it
 * talks on is broken. */
START_TEST(test_idle_flood)
{
	static const char *floods[] = {
	    "* OK Still here",
	    "* 2 FETCH (FLAGS (\\Seen))",
	    "* 3 EXISTS",
	};
	long long t0, t1;
	char *err = NULL;
	size_t i;
	int news;

	for (i = 0; i < sizeof floods / sizeof floods[0]; i++) {
		free(S);
		S = NULL;
		SL = 0;
		sp(IDLE_READY "+ idling\r\n");
		t_ready(S);
		M.flood = floods[i];
		t0 = pmp_mono_ms();
		ck_assert_int_eq(t_wait(300, &news, &err), PM_EPROTO);
		t1 = pmp_mono_ms();
		ck_assert_int_ge(t1 - t0, 300);
		ck_assert_int_lt(t1 - t0, 30000);
		ck_assert_uint_gt(M.awaits, 1);
		ck_assert_str_eq(err, "INBOX: the server sent more than "
		    "100006 responses after DONE without ending IDLE");
		free(err);
		at("C: DONE");
		t_close();
		ck_assert(absent("LOGOUT"));
	}

	/* Never a continuation request. */
	free(S);
	S = NULL;
	SL = 0;
	sp(IDLE_READY);
	t_ready(S);
	M.flood = "* OK Still here";
	ck_assert_int_eq(t_wait(300, &news, &err), PM_EPROTO);
	ck_assert_str_eq(err, "INBOX: the server sent more than 100006 "
	    "responses after IDLE without accepting it");
	free(err);
	ck_assert(absent("DONE"));
	t_close();
}
END_TEST

static Suite *
suite_imap(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("imap");
	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_resp, 0,
	    sizeof resp_cases / sizeof resp_cases[0]);
	tcase_add_test(tc, test_resp_nul);
	tcase_add_loop_test(tc, test_caps, 0,
	    sizeof caps_cases / sizeof caps_cases[0]);
	tcase_add_loop_test(tc, test_literal, 0,
	    sizeof lit_cases / sizeof lit_cases[0]);
	tcase_add_test(tc, test_literal_limit_message);
	tcase_add_loop_test(tc, test_fetch, 0,
	    sizeof fetch_cases / sizeof fetch_cases[0]);
	tcase_add_test(tc, test_fetch_quoted_body);
	tcase_add_test(tc, test_fetch_continued);
	tcase_add_test(tc, test_fetch_broken_continuation);
	tcase_add_loop_test(tc, test_search, 0,
	    sizeof search_cases / sizeof search_cases[0]);
	tcase_add_test(tc, test_uidset);
	tcase_add_test(tc, test_quote);
	tcase_add_loop_test(tc, test_mutf7, 0,
	    sizeof mutf7_cases / sizeof mutf7_cases[0]);
	tcase_add_loop_test(tc, test_mutf7_bad, 0,
	    sizeof mutf7_bad / sizeof mutf7_bad[0]);
	tcase_add_test(tc, test_mutf7_wire);
	tcase_add_test(tc, test_clean_text);
	tcase_add_test(tc, test_list_limit);
	tcase_add_loop_test(tc, test_transient, 0, 17);
	suite_add_tcase(s, tc);

	tc = tcase_create("plugin");
	tcase_add_test(tc, test_plugin_session);
	tcase_add_test(tc, test_plugin_chunks);
	tcase_add_test(tc, test_plugin_seen_no_uidplus);
	tcase_add_test(tc, test_plugin_plain_expunge);
	tcase_add_test(tc, test_plugin_no_expunge);
	tcase_add_test(tc, test_plugin_store_refused);
	tcase_add_test(tc, test_plugin_store_pipelined);
	tcase_add_test(tc, test_plugin_no_uidvalidity);
	tcase_add_test(tc, test_plugin_select_no);
	tcase_add_test(tc, test_plugin_bye_mid_fetch);
	tcase_add_loop_test(tc, test_plugin_throttled_login, 0, 3);
	tcase_add_test(tc, test_plugin_not_connected);
	tcase_add_test(tc, test_plugin_token_expired);
	tcase_add_test(tc, test_plugin_bye_in_literal);
	tcase_add_test(tc, test_plugin_session_lost);
	tcase_add_test(tc, test_plugin_cut_mid_literal);
	tcase_add_test(tc, test_plugin_broken_literal);
	tcase_add_test(tc, test_plugin_vanished);
	tcase_add_test(tc, test_plugin_list_sorted);
	tcase_add_test(tc, test_plugin_listing_bound);
	tcase_add_test(tc, test_plugin_starttls);
	tcase_add_test(tc, test_plugin_starttls_missing);
	tcase_add_test(tc, test_plugin_login);
	tcase_add_test(tc, test_plugin_login_disabled);
	tcase_add_test(tc, test_plugin_greeting);
	tcase_add_test(tc, test_plugin_sasl_challenge);
	tcase_add_test(tc, test_plugin_foreign_literals);
	suite_add_tcase(s, tc);

	tc = tcase_create("pipeline");
	tcase_add_test(tc, test_plugin_pipeline_window);
	tcase_add_test(tc, test_plugin_pipeline_sets);
	tcase_add_test(tc, test_plugin_out_of_order);
	tcase_add_test(tc, test_plugin_exchange_mismatch);
	tcase_add_test(tc, test_plugin_no_uid);
	tcase_add_test(tc, test_plugin_expunged_mid_window);
	tcase_add_test(tc, test_plugin_fetch_no);
	tcase_add_test(tc, test_plugin_cut_mid_window);
	tcase_add_test(tc, test_plugin_fetch_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("idle");
	tcase_add_test(tc, test_idle_dovecot);
	tcase_add_test(tc, test_idle_hoodiecrow);
	tcase_add_test(tc, test_idle_can_wait);
	tcase_add_test(tc, test_idle_caps_change);
	tcase_add_loop_test(tc, test_idle_cases, 0,
	    sizeof idle_cases / sizeof idle_cases[0]);
	tcase_add_test(tc, test_idle_news_before);
	tcase_add_test(tc, test_idle_time);
	tcase_add_loop_test(tc, test_idle_fail, 0,
	    sizeof idle_fails / sizeof idle_fails[0]);
	tcase_add_test(tc, test_idle_flood);
	suite_add_tcase(s, tc);
	return s;
}

/* The IMAP plugin's test runner; CK_RUN_CASE selects parse, plugin,
 * pipeline or idle. */
int
main(void)
{
	SRunner *sr;
	int failed;

	setenv("CK_DEFAULT_TIMEOUT", "60", 0);
	sr = srunner_create(suite_imap());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
