/*
 * The delivery stage beyond Maildir: envelope addresses and header
 * scanning (with hostile and broken input), MDA command splitting,
 * HOST[:PORT] parsing, the optional header lines, mbox quoting across
 * write chunks and mbox rollback.
 */
#include "autoconf.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "envelope.h"
#include "suites.h"
#include "util.h"

static const struct {
	const char *addr;
	int need_domain;
	int valid;
} addr_cases[] = {
	{ "alice@example.org", 1, 1 },
	{ "a.b+tag@sub.example.org", 1, 1 },
	{ "\"; rm -rf ~\"@x", 1, 1 },		/* legal, quoted */
	{ "\"a\\\"b\"@x.y", 1, 1 },
	{ "alice@[192.0.2.1]", 1, 1 },
	{ "alice@[IPv6:2001:db8::1]", 1, 1 },
	{ "alice", 0, 1 },
	{ "alice", 1, 0 },
	{ "", 0, 0 },
	{ "-oQ/tmp/x@example.org", 1, 0 },	/* option injection */
	{ "-alice", 0, 0 },
	{ "a b@example.org", 1, 0 },
	{ "a\n@example.org", 1, 0 },
	{ "\"a\nb\"@example.org", 1, 0 },
	{ "\"a\rb\"@example.org", 1, 0 },
	{ "a@example.org\r\nRCPT TO:<x@y>", 1, 0 },	/* SMTP injection */
	{ "<a@example.org>", 1, 0 },
	{ "a@b@c", 1, 0 },
	{ "a@", 1, 0 },
	{ "@b", 1, 0 },
	{ ".a@b", 1, 0 },
	{ "a.@b", 1, 0 },
	{ "a..b@c", 1, 0 },
	{ "a@b..c", 1, 0 },
	{ "a@-b.c", 1, 0 },
	{ "a@b-.c", 1, 0 },
	{ "a@b_c", 1, 0 },
	{ "a@[1.2.3.4", 1, 0 },
	{ "a@[1 2]", 1, 0 },
	{ "\"unterminated@b", 1, 0 },
	{ "a;b@c", 1, 0 },
	{ "a`id`@c", 1, 1 },	/* atext: harmless without a shell */
	{ "\xc3\xa4@example.org", 1, 0 },	/* 8-bit */
	{ "a@b\x7f", 1, 0 },
};

START_TEST(test_addr_valid)
{
	ck_assert_msg(envelope_addr_valid(addr_cases[_i].addr,
	    addr_cases[_i].need_domain) == addr_cases[_i].valid,
	    "case %d: \"%s\"", _i, addr_cases[_i].addr);
}
END_TEST

START_TEST(test_addr_too_long)
{
	char buf[400];

	memset(buf, 'a', sizeof buf);
	memcpy(buf + 250, "@b.c", 5);
	ck_assert(envelope_addr_valid(buf, 1));
	buf[250] = 'a';
	memcpy(buf + 260, "@b.c", 5);
	ck_assert(!envelope_addr_valid(buf, 1));
	ck_assert(!envelope_addr_valid(NULL, 0));
}
END_TEST

static const struct {
	const char *hdr;
	const char *sender;
} sender_cases[] = {
	{ "Return-Path: <rp@example.org>\nFrom: f@example.org\n\n",
	    "rp@example.org" },
	{ "From: F <f@example.org>\nSender: s@example.org\n\n",
	    "s@example.org" },
	{ "From: \"Last, First\" <f@example.org>\n\n", "f@example.org" },
	{ "From: f@example.org (The F)\n\n", "f@example.org" },
	{ "FROM:   <f@example.org>  \n\n", "f@example.org" },
	{ "From: F\n <f@example.org>\n\n", "f@example.org" },	/* folded */
	{ "Return-Path: <>\nFrom: f@example.org\n\n", "" },	/* bounce */
	{ "Return-Path: <-oQ/x@example.org>\nFrom: f@example.org\n\n",
	    "f@example.org" },
	{ "From: a@example.org, b@example.org\n\n", "" },	/* a list */
	{ "From: <a@example.org\n\n", "" },
	{ "From: (unclosed <a@example.org>\n\n", "" },
	{ "From: \"; rm -rf ~\"@x\n\n", "\"; rm -rf ~\"@x" },
	{ "From: \"<x@y>\" <f@example.org>\n\n", "f@example.org" },
	{ "From: `touch /tmp/x` <$(touch /tmp/y)>\n\n", "" },
	{ "Subject: no sender\n\n", "" },
	{ "Return-Path:<rp@example.org>\n\n", "rp@example.org" },
	/* A body line looking like a header does not count: the stage only
	 * hands the header section, but the scan must stop at the end of
	 * its field anyway. */
	{ "X-From: x@example.org\nFrom-Not: y@example.org\n\n", "" },
	{ "", "" },
};

START_TEST(test_sender)
{
	const char *h = sender_cases[_i].hdr;
	char *s = envelope_sender(h, strlen(h));

	ck_assert_msg(strcmp(s, sender_cases[_i].sender) == 0,
	    "case %d: got \"%s\"", _i, s);
	free(s);
}
END_TEST

START_TEST(test_header_unfold)
{
	static const char h[] = "Received: a\r\n\tb\r\nSubject: one\n two\n"
	    "subject: second\n\n";
	char *v;

	v = envelope_header(h, sizeof h - 1, "subject");
	ck_assert_str_eq(v, " one two");
	free(v);
	v = envelope_header(h, sizeof h - 1, "Received");
	ck_assert_str_eq(v, " a\tb");
	free(v);
	ck_assert_ptr_null(envelope_header(h, sizeof h - 1, "From"));
	/* Cut short in the middle of a field. */
	v = envelope_header(h, 12, "Received");
	ck_assert_str_eq(v, " a");
	free(v);
}
END_TEST

static const struct {
	const char *cmd;
	const char *argv;	/* words joined by '|', NULL: an error */
} split_cases[] = {
	{ "/usr/bin/procmail -d %T", "/usr/bin/procmail|-d|%T" },
	{ "  a\t b  ", "a|b" },
	{ "a \"b c\" 'd e'", "a|b c|d e" },
	{ "a \"x\\\"y\\\\z\" 'p\\q'", "a|x\"y\\z|p\\q" },
	{ "a b\"c d\"e", "a|bc de" },
	{ "a '' \"\"", "a||" },
	{ "a %F %T", "a|%F|%T" },
	{ "a '%F'", "a|%F" },
	{ "a -f%F", NULL },
	{ "a <%T>", NULL },
	{ "a \"%F x\"", NULL },
	{ "a \"b", NULL },
	{ "a 'b", NULL },
	{ "", NULL },
	{ "   ", NULL },
};

START_TEST(test_mda_split)
{
	char **argv, *err = NULL, *joined;
	size_t i;

	argv = deliver_mda_split(split_cases[_i].cmd, &err);
	if (split_cases[_i].argv == NULL) {
		ck_assert_msg(argv == NULL, "case %d", _i);
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_msg(argv != NULL, "case %d: %s", _i, err);
	joined = xstrdup(argv[0]);
	for (i = 1; argv[i] != NULL; i++) {
		char *t = xasprintf("%s|%s", joined, argv[i]);

		free(joined);
		joined = t;
	}
	ck_assert_str_eq(joined, split_cases[_i].argv);
	free(joined);
	deliver_argv_free(argv);
}
END_TEST

START_TEST(test_hostport)
{
	static const struct {
		const char *s;
		const char *host;
		unsigned port;
	} cases[] = {
		{ "localhost", "localhost", 25 },
		{ "localhost:2525", "localhost", 2525 },
		{ "[::1]:24", "::1", 24 },
		{ "[::1]", "::1", 25 },
		{ "127.0.0.1:65535", "127.0.0.1", 65535 },
		{ "", NULL, 0 },
		{ ":25", NULL, 0 },
		{ "h:", NULL, 0 },
		{ "h:0", NULL, 0 },
		{ "h:65536", NULL, 0 },
		{ "h:-1", NULL, 0 },
		{ "h:+1", NULL, 0 },
		{ "h:1x", NULL, 0 },
		{ "::1", NULL, 0 },
		{ "[::1", NULL, 0 },
		{ "[]:1", NULL, 0 },
		{ "[::1]x", NULL, 0 },
		{ "h h", NULL, 0 },
		{ "/sock", NULL, 0 },
	};
	size_t i;
	char *host;
	unsigned port;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = deliver_hostport(cases[i].s, 25, &host, &port);

		if (cases[i].host == NULL) {
			ck_assert_msg(r < 0, "%s", cases[i].s);
			continue;
		}
		ck_assert_msg(r == 0, "%s", cases[i].s);
		ck_assert_str_eq(host, cases[i].host);
		ck_assert_uint_eq(port, cases[i].port);
		free(host);
	}
}
END_TEST

/* --- through the stage -------------------------------------------------- */

static char *dir;
static struct account tacct;

static void
setup(void)
{
	dir = test_tmpdir();
	memset(&tacct, 0, sizeof tacct);
	tacct.name = "test";
	tacct.protocol = "imap";
	tacct.recipient = "alice";
	tacct.lock_timeout = 1;
}

static void
teardown(void)
{
	test_rm_rf(dir);
	free(dir);
	free(tacct.deliver_path);
	tacct.deliver_path = NULL;
}

/* The whole of a small file, NUL-terminated. */
static char *
slurp(const char *path)
{
	char *data;
	size_t len;

	ck_assert_int_eq(read_small_file(path, 16 << 20, &data, &len), 0);
	return data;
}

/* Deliver the chunks (NULL-terminated) as one message; the status. */
static int
deliver_chunks(const char *const *chunks, char **err)
{
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	int r;

	memset(&info, 0, sizeof info);
	info.account = "test";
	info.server = "imap.example.org";
	info.mailbox = "INBOX";
	info.uid = "42";
	info.protocol = "imap";
	ck_assert_int_eq(deliver_open(&tacct, &d, err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, err), PM_OK);
	for (r = PM_OK; *chunks != NULL && r == PM_OK; chunks++)
		r = deliver_write(m, *chunks, strlen(*chunks), err);
	if (r == PM_OK)
		r = deliver_finish(m, err);
	else
		deliver_abort(m);
	if (r == PM_OK)
		r = deliver_sync(d, err);
	deliver_close(d);
	return r;
}

/* mboxrd quoting of ^>*From  lines, also when a line is split across
 * writes, and the From_ line, the blank line between messages. */
START_TEST(test_mbox_quoting)
{
	static const char *const msg1[] = {
	    "Return-Path: <rp@example.org>\r\nSubject: q\r\n\r\n",
	    "From the start\r\n>Fr", "om once\r\n>>>>From deep\r\n",
	    "From\r\n>From\r\nFro", "m split\r\n>", ">From split too\r\n",
	    "x From not at start\r\nFrom: header-like\r\n",
	    "F", "r", "o", "m", " ", "byte by byte\r\n", "From ", NULL
	};
	static const char *const msg2[] = {
	    "From: \"; rm -rf ~\"@x\r\n\r\nno newline at the end", NULL
	};
	char *err = NULL, *data, *p;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	ck_assert_int_eq(deliver_chunks(msg1, &err), PM_OK);
	ck_assert_int_eq(deliver_chunks(msg2, &err), PM_OK);
	data = slurp(tacct.deliver_path);
	ck_assert_msg(strncmp(data, "From rp@example.org ", 20) == 0, "%s",
	    data);
	p = strchr(data, '\n') + 1;
	ck_assert_str_eq(p - 0, strstr(data, "Return-Path:"));
	p = strstr(data, "Subject: q\n\n");
	ck_assert_ptr_nonnull(p);
	p += strlen("Subject: q\n\n");
	ck_assert_msg(strncmp(p,
	    ">From the start\n>>From once\n>>>>>From deep\n"
	    "From\n>From\n>From split\n>>>From split too\n"
	    "x From not at start\nFrom: header-like\n"
	    ">From byte by byte\n>From \n\n"
	    "From MAILER-DAEMON ", strlen(">From the start\n>>From once\n"
	    ">>>>>From deep\nFrom\n>From\n>From split\n>>>From split too\n"
	    "x From not at start\nFrom: header-like\n>From byte by byte\n"
	    ">From \n\nFrom MAILER-DAEMON ")) == 0, "%s", p);
	/* A sender with white space cannot go on the From_ line. */
	p = strstr(p, "\nFrom: \"; rm -rf ~\"@x\n\nno newline at the end\n\n");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p + 1, "From: \"; rm -rf ~\"@x\n\n"
	    "no newline at the end\n\n");
	free(data);
	/* No lock left behind. */
	p = xasprintf("%s.lock", tacct.deliver_path);
	ck_assert_int_ne(access(p, F_OK), 0);
	free(p);
}
END_TEST

/* An aborted message leaves the mbox exactly as it was, and a message
 * appended to an mbox that lacks the final blank line gets one first. */
START_TEST(test_mbox_abort_and_separator)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL, *data;
	FILE *f;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	f = fopen(tacct.deliver_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("From a@b Thu Jan  1 00:00:00 1970\nSubject: old\n\nold", f);
	fclose(f);

	memset(&info, 0, sizeof info);
	info.uid = "1";
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, "Subject: half\n\nhalf a", 21, &err),
	    PM_OK);
	deliver_abort(m);
	deliver_close(d);
	data = slurp(tacct.deliver_path);
	ck_assert_str_eq(data,
	    "From a@b Thu Jan  1 00:00:00 1970\nSubject: old\n\nold");
	free(data);

	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	data = slurp(tacct.deliver_path);
	ck_assert_msg(strncmp(data, "From a@b Thu Jan  1 00:00:00 1970\n"
	    "Subject: old\n\nold\n\nFrom MAILER-DAEMON ", 71) == 0, "%s",
	    data);
	ck_assert_ptr_nonnull(strstr(data, "\nSubject: x\n\nbody\n\n"));
	free(data);
}
END_TEST

/* A held dotlock: PM_ETEMP after lock_timeout, and fast after that. */
START_TEST(test_mbox_locked)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	char *err = NULL, *lock;
	FILE *f;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	f = fopen(lock, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "cannot lock"));
	ck_assert_ptr_nonnull(strstr(err, "within 1 seconds"));
	free(err);
	ck_assert_int_eq(access(lock, F_OK), 0);	/* not ours to remove */
	free(lock);
}
END_TEST

/* The only file in DIR/new. */
static char *
only_new(void)
{
	char *d = xasprintf("%s/Maildir/new", dir), *found = NULL;
	struct dirent *de;
	DIR *dp = opendir(d);
	int n = 0;

	ck_assert_ptr_nonnull(dp);
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		free(found);
		found = xasprintf("%s/%s", d, de->d_name);
	}
	closedir(dp);
	free(d);
	ck_assert_int_eq(n, 1);
	return found;
}

/* The optional header lines, in front of the message untouched; the
 * Received line carries no secret and no raw control characters. */
START_TEST(test_extra_headers)
{
	static const char *const msg[] = {
	    "Return-Path: <rp@example.org>\r\nFrom: f@example.org\r\n",
	    "Subject: s\r\n\r\nbody\r\n", NULL
	};
	char *err = NULL, *path, *data, *p;

	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
	tacct.add_return_path = 1;
	tacct.add_delivered_to = 1;
	tacct.add_received = 1;
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	path = only_new();
	data = slurp(path);
	ck_assert_msg(strncmp(data, "Return-Path: <rp@example.org>\n"
	    "Delivered-To: alice\n"
	    "Received: from imap.example.org (account test, folder INBOX, "
	    "uid 42)\n\tby ", 109) == 0, "%s", data);
	p = strstr(data, " (pullmail) with IMAP\n\tfor <alice>; ");
	ck_assert_ptr_nonnull(p);
	p = strstr(p, "\nReturn-Path: <rp@example.org>\nFrom: f@example.org\n"
	    "Subject: s\n\nbody\n");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p + 1, "Return-Path: <rp@example.org>\n"
	    "From: f@example.org\nSubject: s\n\nbody\n");
	free(data);
	unlink(path);
	free(path);

	/* The setting wins over the header; <> is the empty sender. */
	tacct.envelope_sender = "";
	tacct.add_delivered_to = 0;
	tacct.add_received = 0;
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	path = only_new();
	data = slurp(path);
	ck_assert_str_eq(data, "Return-Path: <>\nReturn-Path: "
	    "<rp@example.org>\nFrom: f@example.org\nSubject: s\n\nbody\n");
	free(data);
	unlink(path);
	free(path);
	tacct.envelope_sender = NULL;
	tacct.add_return_path = 0;
}
END_TEST

/* A header section beyond DELIVER_HEADER_MAX is streamed on: the message
 * arrives whole (nothing held), with the sender from what was seen. */
START_TEST(test_huge_header)
{
	const char *chunks[4];
	char *line, *err = NULL, *path, *data;
	size_t n = DELIVER_HEADER_MAX + 1000, i;
	struct stat st;

	line = xmalloc(n + 1);
	for (i = 0; i < n; i++)
		line[i] = (i % 70 == 69) ? '\n' : 'x';
	line[0] = 'X';
	line[1] = ':';
	for (i = 70; i < n; i += 70)
		line[i] = ' ';	/* continuation lines */
	line[n] = '\0';
	chunks[0] = "From: f@example.org\n";
	chunks[1] = line;
	chunks[2] = "\n\nbody\n";
	chunks[3] = NULL;
	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
	tacct.add_return_path = 1;
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_OK);
	path = only_new();
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq((size_t)st.st_size, strlen("Return-Path: "
	    "<f@example.org>\n") + strlen(chunks[0]) + n + strlen(chunks[2]));
	data = slurp(path);
	ck_assert(strncmp(data, "Return-Path: <f@example.org>\nFrom: ", 35)
	    == 0);
	free(data);
	free(path);
	free(line);
	tacct.add_return_path = 0;
}
END_TEST

/* An MDA that cannot be split or started. */
START_TEST(test_mda_errors)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	char *err = NULL;
	struct deliver *d;

	tacct.deliver_kind = DELIVER_MDA;
	tacct.deliver_path = xstrdup("/bin/x 'unbalanced");
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "mda: unbalanced ' quote"));
	free(err);
	err = NULL;
	free(tacct.deliver_path);
	tacct.deliver_path = xasprintf("%s/nothing-here %%T", dir);
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "cannot run"));
	free(err);
	err = NULL;
	/* Exit 75 is temporary, the rest final; stderr becomes the reason. */
	free(tacct.deliver_path);
	tacct.deliver_path = xstrdup("/bin/sh -c 'cat >/dev/null; "
	    "echo busy >&2; exit 75'");
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "status 75 (temporary failure: "
	    "busy)"));
	free(err);
	err = NULL;
	/* Exiting 0 without reading a large message is not a delivery. */
	free(tacct.deliver_path);
	tacct.deliver_path = xstrdup("/bin/true");
	{
		char *big = xmalloc(1 << 20);
		const char *chunks[3] = { "Subject: x\n\n", big, NULL };

		memset(big, 'y', (1 << 20) - 1);
		big[(1 << 20) - 1] = '\0';
		ck_assert_int_eq(deliver_chunks(chunks, &err), PM_EDELIVER);
		ck_assert_ptr_nonnull(strstr(err, "before reading the whole"));
		free(err);
		free(big);
	}
}
END_TEST

/* A recipient that cannot be used is refused before anything starts. */
START_TEST(test_bad_recipient)
{
	char *err = NULL;
	struct deliver *d;

	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
	tacct.recipient = "-oQ/tmp";
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "recipient"));
	free(err);
	tacct.recipient = "alice";
}
END_TEST

Suite *
suite_deliver(void)
{
	Suite *s = suite_create("deliver");
	TCase *tc = tcase_create("envelope");

	tcase_add_loop_test(tc, test_addr_valid, 0,
	    (int)(sizeof addr_cases / sizeof addr_cases[0]));
	tcase_add_test(tc, test_addr_too_long);
	tcase_add_loop_test(tc, test_sender, 0,
	    (int)(sizeof sender_cases / sizeof sender_cases[0]));
	tcase_add_test(tc, test_header_unfold);
	tcase_add_loop_test(tc, test_mda_split, 0,
	    (int)(sizeof split_cases / sizeof split_cases[0]));
	tcase_add_test(tc, test_hostport);
	suite_add_tcase(s, tc);

	tc = tcase_create("targets");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_mbox_quoting);
	tcase_add_test(tc, test_mbox_abort_and_separator);
	tcase_add_test(tc, test_mbox_locked);
	tcase_add_test(tc, test_extra_headers);
	tcase_add_test(tc, test_huge_header);
	tcase_add_test(tc, test_mda_errors);
	tcase_add_test(tc, test_bad_recipient);
	suite_add_tcase(s, tc);
	return s;
}
