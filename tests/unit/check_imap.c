/*
 * The IMAP plugin: its response parser (table-driven, with broken input)
 * and its fetch logic, run against a mock host table that plays a scripted
 * server dialogue (no dlopen, no network).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pullmail/plugin.h>

#include "imap-parse.h"
#include "secret.h"
#include "suites.h"

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
} caps_cases[] = {
	{ "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	  "STARTTLS AUTH=PLAIN AUTH=xoauth2 AUTH=OAUTHBEARER", PM_OK,
	  1, 1, 0, 1, 0, "PLAIN XOAUTH2 OAUTHBEARER" },
	{ "IMAP4 IMAP4rev1 LOGINDISABLED UIDPLUS", PM_OK, 1, 0, 1, 0, 1, "" },
	{ "  imap4rev1   uidplus ", PM_OK, 1, 0, 0, 0, 1, "" },
	{ "IMAP4rev2 AUTH=", PM_OK, 0, 0, 0, 0, 0, "" },
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

/* --- the plugin against a mock host -------------------------------------- */

struct pm_msg {
	char uid[16];
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
	char delivered[4096];	/* "UID:bytes|" per finished message */
	const char *known[8];	/* UIDs the state knows */
	int commit_rc;		/* what commit() returns */
	const char *fail_uid;	/* msg_write fails for this UID */
	int open_msgs;		/* begun and not finished or aborted */
	struct pm_account_info acct;
	const char *folders[2];
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

/*
 * The mock host's slots: each records what it was asked in the event log
 * and serves the script.
 */

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
	return PM_OK;
}

static int
m_starttls(struct pm_session *s, char **err)
{
	ev("TLS");
	return PM_OK;
}

static int
m_tls_active(struct pm_session *s)
{
	return 1;
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

static void
m_disconnect(struct pm_session *s)
{
	ev("DISCONNECT");
}

/* A small SASL engine: XOAUTH2 when offered, else PLAIN. */
static int
m_sasl_auth(struct pm_session *s, const struct pm_sasl_proto *p, void *ctx,
    const char *mechs, int ir, char **err)
{
	struct pm_secret *resp, *empty;
	const char *mech;
	char *text;
	int rc, kind;

	ev("SASL [%s] ir=%d", mechs, ir);
	if (strstr(mechs, "XOAUTH2") != NULL)
		mech = "XOAUTH2";
	else if (strstr(mechs, "PLAIN") != NULL)
		mech = "PLAIN";
	else
		return merr(err, PM_ECONFIG, "no usable mechanism");
	resp = secret_from_str("dG9rZW4=");
	empty = secret_from_str("");
	rc = p->start(ctx, mech, ir ? resp : NULL, err);
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
m_state_validity(struct pm_session *s, const char *mailbox,
    const char *validity, char **err)
{
	ev("VALIDITY %s %s", mailbox, validity);
	return PM_OK;
}

static int
m_state_known(struct pm_session *s, const char *mailbox, const char *uid)
{
	size_t i;

	for (i = 0; i < sizeof M.known / sizeof M.known[0]; i++) {
		if (M.known[i] != NULL && strcmp(M.known[i], uid) == 0)
			return 1;
	}
	return 0;
}

static int
m_state_prune(struct pm_session *s, const char *mailbox,
    const char *const *present, size_t n, char **err)
{
	char buf[1024] = "";
	size_t i;

	for (i = 0; i < n && strlen(buf) < sizeof buf - 20; i++) {
		strcat(buf, " ");
		strcat(buf, present[i]);
	}
	ev("PRUNE %s%s", mailbox, n > 10 ? " ..." : buf);
	return PM_OK;
}

static int
m_msg_begin(struct pm_session *s, const char *mailbox, const char *uid,
    uint64_t size, struct pm_msg **msg_r, char **err)
{
	struct pm_msg *m;

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
		return merr(err, PM_ETEMP, "disk full");
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
	ev("COMMIT");
	if (M.commit_rc != PM_OK)
		return merr(err, M.commit_rc, "state file: disk full");
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
	.state_validity = m_state_validity,
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
	M.chunk = 3;
	M.folders[0] = "INBOX";
	M.acct.name = "test";
	M.acct.server = "127.0.0.1";
	M.acct.port = 993;
	M.acct.tls = PM_TLS_IMPLICIT;
	M.acct.user = "joe@example.test";
	M.acct.folders = M.folders;
	M.acct.nfolders = 1;
	M.acct.keep = 1;
}

/* Run the plugin; returns its status, *err_r gets its reason. */
static int
mock_run(char **err_r)
{
	*err_r = NULL;
	return pullmail_plugin.fetch(&mock_host, (struct pm_session *)&M,
	    err_r);
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

#define GREETING_AUTH \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] hi\r\n" \
	"A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n"
#define SELECT_3(tag) \
	"* FLAGS (\\Answered \\Seen)\r\n" \
	"* 3 EXISTS\r\n" \
	"* OK [UIDVALIDITY 77] UIDs valid\r\n" \
	tag " OK [READ-WRITE] Select completed.\r\n"
#define LIST_5_7_9(tag) \
	"* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n" \
	"* 2 FETCH (UID 7 RFC822.SIZE 12)\r\n" \
	"* 3 FETCH (RFC822.SIZE 5 UID 9)\r\n" \
	"* 1 FETCH (FLAGS (\\Seen))\r\n" \
	tag " OK Fetch completed.\r\n"
#define BODY_7(tag) \
	"* 2 FETCH (UID 7 BODY[] {12}\r\nHello\r\nWorld)\r\n" \
	tag " OK Fetch completed.\r\n"
#define BODY_9(tag) \
	"* 3 FETCH (BODY[] {5}\r\nab\r\nc UID 9 FLAGS (\\Seen))\r\n" \
	"* 4 EXISTS\r\n" \
	"* 1 FETCH (FLAGS ())\r\n" \
	tag " OK Fetch completed.\r\n"

START_TEST(test_plugin_delete)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7("A4")
	    BODY_9("A5")
	    "A6 OK Store completed.\r\n"
	    "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
	    "A7 OK Expunge completed.\r\n"
	    "* BYE Logging out\r\nA8 OK Logout completed.\r\n";
	static const char want[] =
	    "CONNECT\n"
	    "SASL [PLAIN XOAUTH2] ir=1\n"
	    "C: A1 AUTHENTICATE XOAUTH2 <dG9rZW4=>\n"
	    "SASL reply 1 [Logged in]\n"
	    "C: A2 SELECT \"INBOX\"\n"
	    "VALIDITY INBOX 77\n"
	    "C: A3 UID FETCH 1:* (UID RFC822.SIZE)\n"
	    "PRUNE INBOX 5 7 9\n"
	    "LOG INBOX: 2 new of 3 messages\n"
	    "C: A4 UID FETCH 7 (BODY.PEEK[])\n"
	    "BEGIN 7 12\n"
	    "FINISH 7\n"
	    "C: A5 UID FETCH 9 (BODY.PEEK[])\n"
	    "BEGIN 9 5\n"
	    "FINISH 9\n"
	    "COMMIT\n"
	    "C: A6 UID STORE 5,7,9 +FLAGS.SILENT (\\Deleted)\n"
	    "C: A7 UID EXPUNGE 5,7,9\n"
	    "C: A8 LOGOUT\n"
	    "DISCONNECT\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(M.log, want);
	ck_assert_str_eq(M.delivered, "7:Hello\r\nWorld|9:ab\r\nc|");
	ck_assert_uint_eq(M.pos, M.inlen);
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

START_TEST(test_plugin_keep_and_chunks)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7("A4")
	    BODY_9("A5")
	    "A6 OK Logout completed.\r\n";
	static const size_t chunks[] = { 1, 2, 5, 7, 64 * 1024 };
	size_t i;
	char *err;

	/* keep = yes, mark_seen = no: nothing is told to the server, and
	 * the literal arrives intact however it is cut. */
	for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		mock_reset(script);
		M.known[0] = "5";
		M.chunk = chunks[i];
		ck_assert_int_eq(mock_run(&err), PM_OK);
		ck_assert_str_eq(M.delivered, "7:Hello\r\nWorld|9:ab\r\nc|");
		ck_assert(absent("STORE"));
		ck_assert(absent("EXPUNGE"));
		ck_assert_uint_lt(at("FINISH 9"), at("COMMIT"));
		ck_assert_uint_lt(at("COMMIT"), at("C: A6 LOGOUT"));
	}
}
END_TEST

START_TEST(test_plugin_mark_seen_no_uidplus)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "+ \r\n"
	    "* CAPABILITY IMAP4rev1\r\n"
	    "A1 OK Logged in\r\n"
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7("A4")
	    BODY_9("A5")
	    "A6 OK Store completed.\r\n"
	    "A7 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.mark_seen = 1;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	/* No SASL-IR: the response goes after "+". */
	ck_assert_uint_lt(at("C: A1 AUTHENTICATE PLAIN\n"), at("C: <dG9"));
	/* The untagged CAPABILITY during the login replaces the old list:
	 * no CAPABILITY command follows. */
	ck_assert(absent("CAPABILITY"));
	ck_assert_uint_lt(at("COMMIT"),
	    at("C: A6 UID STORE 7,9 +FLAGS.SILENT (\\Seen)"));
	ck_assert(absent("EXPUNGE"));
}
END_TEST

START_TEST(test_plugin_plain_expunge)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n"
	    "A1 OK Logged in\r\n"
	    "* CAPABILITY IMAP4rev1 IDLE\r\n"
	    "A2 OK Capability completed.\r\n"
	    SELECT_3("A3")
	    LIST_5_7_9("A4")
	    BODY_7("A5")
	    BODY_9("A6")
	    "A7 OK Store completed.\r\n"
	    "A8 OK Expunge completed.\r\n"
	    "A9 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	/* No capabilities with the OK: they are asked for again. */
	at("C: A2 CAPABILITY\n");
	ck_assert_uint_lt(at("COMMIT"),
	    at("C: A7 UID STORE 5,7,9 +FLAGS.SILENT (\\Deleted)"));
	ck_assert_uint_lt(at("C: A7 UID STORE"), at("C: A8 EXPUNGE\n"));
	ck_assert(absent("UID EXPUNGE"));
}
END_TEST

START_TEST(test_plugin_commit_fails)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7("A4")
	    BODY_9("A5")
	    "A6 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	M.commit_rc = PM_EDELIVER;
	ck_assert_int_eq(mock_run(&err), PM_EDELIVER);
	ck_assert_str_eq(err, "state file: disk full");
	free(err);
	at("COMMIT");
	ck_assert(absent("STORE"));
	ck_assert(absent("EXPUNGE"));
	at("C: A6 LOGOUT");
}
END_TEST

START_TEST(test_plugin_no_uidvalidity)
{
	static const char script[] =
	    GREETING_AUTH
	    "* 3 EXISTS\r\n"
	    "A2 OK [READ-WRITE] Select completed.\r\n"
	    "A3 OK bye\r\n";
	char *err;

	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "UIDVALIDITY"));
	ck_assert_ptr_nonnull(strstr(err, "INBOX"));
	free(err);
	ck_assert(absent("VALIDITY INBOX"));
	ck_assert(absent("PRUNE"));
	ck_assert(absent("UID FETCH"));
}
END_TEST

START_TEST(test_plugin_select_no)
{
	static const char script[] =
	    GREETING_AUTH
	    "A2 NO Mailbox doesn't exist: Archive\r\n"
	    "A3 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.folders[0] = "Archive";
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "SELECT \"Archive\" failed: NO Mailbox "
	    "doesn't exist: Archive");
	free(err);
}
END_TEST

START_TEST(test_plugin_bye_mid_fetch)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    BODY_7("A4")
	    "* BYE Server shutting down.\r\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "server closed the session: Server shutting "
	    "down.");
	free(err);
	/* The finished message is recorded, nothing is disposed of, and a
	 * broken session gets no LOGOUT. */
	at("FINISH 7");
	at("COMMIT");
	ck_assert(absent("STORE"));
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
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	free(err);
	ck_assert_uint_lt(at("BEGIN 7"), at("ABORT 7"));
	ck_assert(absent("FINISH"));
	ck_assert(absent("STORE"));
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
	size_t i;
	char *err;

	for (i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		mock_reset(scripts[i]);
		M.known[0] = "5";
		M.acct.keep = 0;
		ck_assert_int_eq(mock_run(&err), PM_EPROTO);
		ck_assert_ptr_nonnull(err);
		free(err);
		ck_assert(absent("FINISH"));
		ck_assert(absent("STORE"));
		ck_assert(absent("LOGOUT"));
		ck_assert_int_eq(M.open_msgs, 0);
	}
}
END_TEST

START_TEST(test_plugin_vanished_and_delivery_failure)
{
	static const char script[] =
	    GREETING_AUTH
	    "* 4 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\nA2 OK done\r\n"
	    "* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n"
	    "* 2 FETCH (UID 6 RFC822.SIZE 10)\r\n"
	    "* 3 FETCH (UID 7 RFC822.SIZE 12)\r\n"
	    "* 4 FETCH (UID 9 RFC822.SIZE 5)\r\n"
	    "A3 OK done\r\n"
	    "* 2 FETCH (UID 6 BODY[] NIL)\r\nA4 OK done\r\n"
	    BODY_7("A5")
	    BODY_9("A6")
	    "A7 OK Store completed.\r\n"
	    "A8 OK Expunge completed.\r\n"
	    "A9 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.known[0] = "5";
	M.acct.keep = 0;
	M.fail_uid = "9";
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "disk full");
	free(err);
	/* 6 vanished: nothing delivered, nothing disposed of. */
	ck_assert(absent("BEGIN 6"));
	/* 9 failed: aborted, the rest of its literal drained; 7 (and the
	 * known 5) committed and then deleted; the session still works. */
	ck_assert_uint_lt(at("BEGIN 9"), at("ABORT 9"));
	ck_assert_uint_lt(at("ABORT 9"), at("COMMIT"));
	ck_assert_uint_lt(at("COMMIT"),
	    at("C: A7 UID STORE 5,7 +FLAGS.SILENT (\\Deleted)\n"));
	at("C: A8 UID EXPUNGE 5,7\n");
	at("C: A9 LOGOUT");
	ck_assert_str_eq(M.delivered, "7:Hello\r\nWorld|");
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

/* A message whose delivery fails in the middle of a run stays on the
 * server (even with keep = no); the messages after it are still delivered
 * and disposed of, and the run reports the failure. */
START_TEST(test_plugin_delivery_failure_continues)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 1 FETCH (UID 5 BODY[] {3}\r\nab\n)\r\nA4 OK done\r\n"
	    BODY_7("A5")
	    BODY_9("A6")
	    "A7 OK Store completed.\r\n"
	    "A8 OK Expunge completed.\r\n"
	    "A9 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.acct.keep = 0;
	M.fail_uid = "7";
	ck_assert_int_eq(mock_run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "disk full");
	free(err);
	ck_assert_uint_lt(at("BEGIN 7"), at("ABORT 7"));
	ck_assert_uint_lt(at("ABORT 7"), at("BEGIN 9"));
	ck_assert(absent("FINISH 7"));
	ck_assert_uint_lt(at("FINISH 9"), at("COMMIT"));
	ck_assert_uint_lt(at("COMMIT"),
	    at("C: A7 UID STORE 5,9 +FLAGS.SILENT (\\Deleted)\n"));
	at("C: A8 UID EXPUNGE 5,9\n");
	at("C: A9 LOGOUT");
	ck_assert_str_eq(M.delivered, "5:ab\n|9:ab\r\nc|");
	ck_assert_int_eq(M.open_msgs, 0);
}
END_TEST

START_TEST(test_plugin_batches)
{
	char *script, *p, *err;
	size_t cap = 64 * 1024, i, tag = 3;

	/* 55 new messages: a commit and a STORE after the 50th, then the
	 * rest at the end. */
	script = p = malloc(cap);
	p += sprintf(p, GREETING_AUTH
	    "* 55 EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\nA2 OK done\r\n");
	for (i = 1; i <= 55; i++)
		p += sprintf(p, "* %zu FETCH (UID %zu RFC822.SIZE 1)\r\n", i,
		    100 + i);
	p += sprintf(p, "A3 OK done\r\n");
	for (i = 1; i <= 55; i++) {
		p += sprintf(p, "* %zu FETCH (UID %zu BODY[] {1}\r\nx)\r\n"
		    "A%zu OK done\r\n", i, 100 + i, ++tag);
		if (i == 50)
			p += sprintf(p, "A%zu OK stored\r\n", ++tag);
	}
	p += sprintf(p, "A%zu OK stored\r\nA%zu OK bye\r\n", tag + 1,
	    tag + 2);
	mock_reset(script);
	M.acct.mark_seen = 1;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_uint_lt(at("FINISH 150"), at("COMMIT"));
	ck_assert_uint_lt(at("COMMIT"),
	    at("UID STORE 101:150 +FLAGS.SILENT (\\Seen)"));
	ck_assert_uint_lt(at("UID STORE 101:150"), at("BEGIN 151"));
	ck_assert_uint_lt(at("FINISH 155"),
	    at("UID STORE 151:155 +FLAGS.SILENT (\\Seen)"));
	ck_assert_uint_eq(M.pos, M.inlen);
	free(script);
}
END_TEST

START_TEST(test_plugin_size_limit)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 1 FETCH (UID 5 BODY[] {10}\r\n0123456789)\r\nA4 OK done\r\n"
	    BODY_9("A5")
	    "A6 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.acct.size_limit = 11;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("SKIPPED 7 12");
	ck_assert(absent("UID FETCH 7"));
	ck_assert_uint_lt(at("BEGIN 5 10"), at("BEGIN 9 5"));
	at("LOG INBOX: 2 new of 3 messages");
}
END_TEST

/* A listing far longer than the folder the server reported is refused
 * (a hostile server could otherwise exhaust memory); an EXISTS during the
 * listing (new mail) raises the bound. */
START_TEST(test_plugin_listing_bound)
{
	char *script, *p, *err;
	size_t i, cap = 128 * 1024, n = 3 + IMAP_LIST_MARGIN;

	/* One entry more than allowed: a protocol error, nothing fetched,
	 * nothing pruned, the dialogue abandoned. */
	script = p = malloc(cap);
	p += sprintf(p, GREETING_AUTH SELECT_3("A2"));
	for (i = 1; i <= n + 1; i++)
		p += sprintf(p, "* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i,
		    i);
	p += sprintf(p, "A3 OK done\r\nA4 OK bye\r\n");
	ck_assert_uint_lt((size_t)(p - script), cap);
	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "UID FETCH 1:*: the server sent more than 1003 "
	    "messages for a folder of 3 (EXISTS)");
	free(err);
	ck_assert(absent("PRUNE"));
	ck_assert(absent("BEGIN"));
	ck_assert(absent("LOGOUT"));

	/* Exactly the bound is fine (all skipped for their size here). */
	p = script;
	p += sprintf(p, GREETING_AUTH SELECT_3("A2"));
	for (i = 1; i <= n; i++)
		p += sprintf(p, "* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i,
		    i);
	p += sprintf(p, "A3 OK done\r\nA4 OK bye\r\n");
	mock_reset(script);
	M.acct.size_limit = 5;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("LOG INBOX: 0 new of 1003 messages");
	at("C: A4 LOGOUT");
	ck_assert_uint_eq(M.pos, M.inlen);

	/* New mail announced while listing: the bound follows EXISTS. */
	p = script;
	p += sprintf(p, GREETING_AUTH SELECT_3("A2") "* 4 EXISTS\r\n");
	for (i = 1; i <= n + 1; i++)
		p += sprintf(p, "* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i,
		    i);
	p += sprintf(p, "A3 OK done\r\nA4 OK bye\r\n");
	mock_reset(script);
	M.acct.size_limit = 5;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("LOG INBOX: 0 new of 1004 messages");

	/* Without EXISTS at all only IMAP_LIST_MAX applies. */
	p = script;
	p += sprintf(p, GREETING_AUTH
	    "* OK [UIDVALIDITY 77] ok\r\nA2 OK done\r\n");
	for (i = 1; i <= n + 1; i++)
		p += sprintf(p, "* %zu FETCH (UID %zu RFC822.SIZE 10)\r\n", i,
		    i);
	p += sprintf(p, "A3 OK done\r\nA4 OK bye\r\n");
	mock_reset(script);
	M.acct.size_limit = 5;
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("LOG INBOX: 0 new of 1004 messages");
	free(script);
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
	char *err;

	mock_reset(script);
	M.acct.tls = PM_TLS_STARTTLS;
	ck_assert_int_eq(mock_run(&err), PM_EAUTH);
	ck_assert_ptr_nonnull(strstr(err, "NO [AUTHENTICATIONFAILED] "
	    "Authentication failed."));
	free(err);
	ck_assert_uint_lt(at("C: A1 STARTTLS"), at("TLS\n"));
	/* The capabilities are asked for again over TLS. */
	ck_assert_uint_lt(at("TLS\n"), at("C: A2 CAPABILITY"));
	at("SASL [PLAIN] ir=0");
}
END_TEST

START_TEST(test_plugin_starttls_missing)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "A1 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.acct.tls = PM_TLS_STARTTLS;
	ck_assert_int_eq(mock_run(&err), PM_ETLS);
	ck_assert_str_eq(err, "server does not offer STARTTLS");
	free(err);
	ck_assert(absent("SASL"));
	ck_assert(absent("AUTHENTICATE"));
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
	char *err;

	mock_reset(script);
	M.pw = secret_from_str("hun ter\"2\\(x)");
	M.acct.user = "joe \"the\" user";
	ck_assert_int_eq(mock_run(&err), PM_OK);
	at("C: A1 CAPABILITY\n");
	at("C: A2 LOGIN \"joe \\\"the\\\" user\" "
	    "<\"hun ter\\\"2\\\\(x)\">\n");
	ck_assert(absent("SASL"));
	/* An empty folder is not listed, and its state is pruned. */
	ck_assert(absent("UID FETCH"));
	at("PRUNE INBOX\n");
	at("LOG INBOX: 0 new of 0 messages");
}
END_TEST

START_TEST(test_plugin_login_disabled)
{
	static const char script[] =
	    "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n"
	    "A1 OK bye\r\n";
	char *err;

	mock_reset(script);
	M.pw = secret_from_str("hunter2");
	ck_assert_int_eq(mock_run(&err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "LOGIN"));
	free(err);
	ck_assert(absent("hunter2"));
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
	char *err;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mock_reset(cases[i].script);
		ck_assert_int_eq(mock_run(&err), cases[i].rc);
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
	char *err;

	mock_reset(script);
	ck_assert_int_eq(mock_run(&err), PM_EAUTH);
	free(err);
	at("SASL reply 0 [eyJzdGF0dXMiOiI0MDEifQ==]");
	/* The error challenge is answered with an empty line. */
	at("C: <>\n");
	at("SASL reply 2 [NO [AUTHENTICATIONFAILED] Authentication "
	    "failed.]");
	at("C: A2 LOGOUT");
}
END_TEST

START_TEST(test_plugin_foreign_literals)
{
	static const char script[] =
	    GREETING_AUTH
	    SELECT_3("A2")
	    LIST_5_7_9("A3")
	    "* 1 FETCH (FLAGS (\\Seen) X-GM-LABELS ({3}\r\nabc \"x\"))\r\n"
	    "* 3 FETCH (UID 9 BODY[] {3}\r\nxyz)\r\n"
	    "* 9 RECENT\r\n"
	    "* LIST () \"/\" {4}\r\nJunk\r\n"
	    BODY_7("A4")
	    BODY_9("A5")
	    "A6 OK bye\r\n";
	char *err;

	/* Literals that are not the body asked for are read and dropped. */
	mock_reset(script);
	M.known[0] = "5";
	ck_assert_int_eq(mock_run(&err), PM_OK);
	ck_assert_str_eq(M.delivered, "7:Hello\r\nWorld|9:ab\r\nc|");
	ck_assert_uint_eq(M.pos, M.inlen);
}
END_TEST

Suite *
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
	tcase_add_test(tc, test_list_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("plugin");
	tcase_add_test(tc, test_plugin_delete);
	tcase_add_test(tc, test_plugin_keep_and_chunks);
	tcase_add_test(tc, test_plugin_mark_seen_no_uidplus);
	tcase_add_test(tc, test_plugin_plain_expunge);
	tcase_add_test(tc, test_plugin_commit_fails);
	tcase_add_test(tc, test_plugin_no_uidvalidity);
	tcase_add_test(tc, test_plugin_select_no);
	tcase_add_test(tc, test_plugin_bye_mid_fetch);
	tcase_add_test(tc, test_plugin_cut_mid_literal);
	tcase_add_test(tc, test_plugin_broken_literal);
	tcase_add_test(tc, test_plugin_vanished_and_delivery_failure);
	tcase_add_test(tc, test_plugin_delivery_failure_continues);
	tcase_add_test(tc, test_plugin_batches);
	tcase_add_test(tc, test_plugin_size_limit);
	tcase_add_test(tc, test_plugin_listing_bound);
	tcase_add_test(tc, test_plugin_starttls);
	tcase_add_test(tc, test_plugin_starttls_missing);
	tcase_add_test(tc, test_plugin_login);
	tcase_add_test(tc, test_plugin_login_disabled);
	tcase_add_test(tc, test_plugin_greeting);
	tcase_add_test(tc, test_plugin_sasl_challenge);
	tcase_add_test(tc, test_plugin_foreign_literals);
	suite_add_tcase(s, tc);
	return s;
}
