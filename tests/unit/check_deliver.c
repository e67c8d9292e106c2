/*
 * The delivery stage beyond Maildir: envelope addresses and header
 * scanning (with hostile and broken input), MDA command splitting,
 * HOST[:PORT] parsing, the optional header lines, mbox quoting across
 * write chunks and mbox rollback, mda_timeout as the MDA's own inactivity,
 * the MDA's spool (never started for a message cut short, a spool that
 * cannot be written),
 * LMTP over a unix socket against a fault injector that stalls, and
 * grouped durability: fsync() and syncfs() calls counted for mbox and
 * Maildir batches, a failing fsync, one LMTP session for a batch with
 * refusals, 421s and hang-ups in it; the SMTP/LMTP DATA encoding of bare
 * CR, bare LF and NUL, however the message is cut into chunks; threads
 * of one process appending to one mbox.
 */
#include "autoconf.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver-int.h"
#include "envelope.h"
#include "process.h"
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

	argv = deliver_mda_split(split_cases[_i].cmd, &err);
	if (split_cases[_i].argv == NULL) {
		ck_assert_msg(argv == NULL, "case %d", _i);
		ck_assert_ptr_nonnull(err);
		free(err);
		return;
	}
	ck_assert_msg(argv != NULL, "case %d: %s", _i, err);
	joined = test_join(argv);
	ck_assert_str_eq(joined, split_cases[_i].argv);
	free(joined);
	proc_argv_free(argv);
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

/* --- counting fsync() ---------------------------------------------------- */

/*
 * The test program's own fsync() (and syncfs(), below): the core is linked
 * into it, so every fsync() the delivery code makes lands here.  Calls are counted per file
 * (device and inode, so a renamed file keeps its count), and a call on the
 * file set with fsync_fail_on() fails with EIO.
 */
#define FSYNC_FILES 32

static struct {
	dev_t dev;
	ino_t ino;
	unsigned n;
} fsyncs[FSYNC_FILES];
static size_t nfsyncs;
static dev_t fail_dev;
static ino_t fail_ino;
static int fail_on;
static pthread_mutex_t fsyncs_lock = PTHREAD_MUTEX_INITIALIZER;

int
fsync(int fd)
{
	struct stat st;
	size_t i;
	int fail = 0;

	/* The threads tests call it from several threads at once. */
	pthread_mutex_lock(&fsyncs_lock);
	if (fstat(fd, &st) == 0) {
		for (i = 0; i < nfsyncs; i++)
			if (fsyncs[i].dev == st.st_dev &&
			    fsyncs[i].ino == st.st_ino)
				break;
		if (i == nfsyncs && nfsyncs < FSYNC_FILES) {
			fsyncs[i].dev = st.st_dev;
			fsyncs[i].ino = st.st_ino;
			fsyncs[i].n = 0;
			nfsyncs++;
		}
		if (i < nfsyncs)
			fsyncs[i].n++;
		fail = fail_on && st.st_dev == fail_dev &&
		    st.st_ino == fail_ino;
	}
	pthread_mutex_unlock(&fsyncs_lock);
	if (fail) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

#ifdef HAVE_SYNCFS
static unsigned nsyncfs;	/* syncfs() calls */

/* The test program's own syncfs(): counted, then done. */
int
syncfs(int fd)
{
	pthread_mutex_lock(&fsyncs_lock);
	nsyncfs++;
	pthread_mutex_unlock(&fsyncs_lock);
	return (int)syscall(SYS_syncfs, fd);
}
#else
#define nsyncfs 0u
#endif

/* The fsync() calls made on the file at path so far. */
static unsigned
fsync_count(const char *path)
{
	struct stat st;
	size_t i;

	ck_assert_int_eq(stat(path, &st), 0);
	for (i = 0; i < nfsyncs; i++)
		if (fsyncs[i].dev == st.st_dev && fsyncs[i].ino == st.st_ino)
			return fsyncs[i].n;
	return 0;
}

/* Make fsync() fail with EIO on the file at path (NULL: on none). */
static void
fsync_fail_on(const char *path)
{
	struct stat st;

	fail_on = path != NULL;
	if (path == NULL)
		return;
	ck_assert_int_eq(stat(path, &st), 0);
	fail_dev = st.st_dev;
	fail_ino = st.st_ino;
}

/* --- through the stage -------------------------------------------------- */

static char *dir;
static struct account tacct;

static void
setup(void)
{
	dir = test_tmpdir();
	nfsyncs = 0;
	fail_on = 0;
#ifdef HAVE_SYNCFS
	nsyncfs = 0;
#endif
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

/* The facts of a message from imap.example.org's INBOX with this UID. */
static void
test_info(struct deliver_info *info, const char *uid)
{
	memset(info, 0, sizeof *info);
	info->account = "test";
	info->server = "imap.example.org";
	info->mailbox = "INBOX";
	info->uid = uid;
	info->protocol = "imap";
}

/* Deliver the chunks (NULL-terminated) as one message; the status. */
static int
deliver_chunks(const char *const *chunks, char **err)
{
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	int r;

	test_info(&info, "42");
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

/*
 * An mbox path that is a symbolic link (to a file or to nothing), a file
 * with a second hard link, a file owned by another user: each is refused
 * before anything is written, and the file behind it is left as it was.
 */
enum { MB_SYMLINK, MB_DANGLING, MB_HARDLINK, MB_OTHER_OWNER, MB_NCASES };

START_TEST(test_mbox_refused)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	static const char *const want[MB_NCASES] = {
	    "is a symbolic link; refusing to deliver through it",
	    "is a symbolic link; refusing to deliver through it",
	    "has 2 hard links; refusing",
	    "is owned by uid 65534, not by root (uid 0;",
	};
	char *err = NULL, *victim, *data, *lock;
	FILE *f;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	victim = xasprintf("%s/victim", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	if (_i != MB_DANGLING) {
		f = fopen(victim, "w");
		ck_assert_ptr_nonnull(f);
		fputs("original\n", f);
		fclose(f);
	}
	switch (_i) {
	case MB_SYMLINK:
	case MB_DANGLING:
		ck_assert_int_eq(symlink(victim, tacct.deliver_path), 0);
		break;
	case MB_HARDLINK:
		ck_assert_int_eq(link(victim, tacct.deliver_path), 0);
		break;
	case MB_OTHER_OWNER:
		if (geteuid() != 0) {
			/* Only root can make a file another user's. */
			free(victim);
			free(lock);
			return;
		}
		ck_assert_int_eq(rename(victim, tacct.deliver_path), 0);
		ck_assert_int_eq(chown(tacct.deliver_path, 65534, 65534), 0);
		free(victim);
		victim = xstrdup(tacct.deliver_path);
		break;
	}
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_EDELIVER);
	ck_assert_msg(strstr(err, want[_i]) != NULL, "case %d: %s", _i, err);
	if (_i == MB_DANGLING)
		ck_assert_int_ne(access(victim, F_OK), 0);
	else {
		data = slurp(victim);
		ck_assert_str_eq(data, "original\n");
		free(data);
	}
	ck_assert_int_ne(access(lock, F_OK), 0);
	free(err);
	free(victim);
	free(lock);
}
END_TEST

/* Run as root, the mbox must belong to the recipient when that names a
 * local user: a new one is created for that user, one of that user's is
 * appended to, a root-owned one is refused. */
START_TEST(test_mbox_owner_as_root)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	struct passwd *pw = getpwnam("nobody");
	struct stat st;
	char *err = NULL, *want;

	if (geteuid() != 0 || pw == NULL || pw->pw_uid == 0)
		return;
	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	tacct.recipient = "nobody";
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	ck_assert_int_eq(stat(tacct.deliver_path, &st), 0);
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	ck_assert_int_eq(chown(tacct.deliver_path, 0, 0), 0);
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_EDELIVER);
	want = xasprintf("is owned by uid 0, not by nobody (uid %lu, the "
	    "recipient); refusing", (unsigned long)pw->pw_uid);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	free(want);
	free(err);
	tacct.recipient = "alice";
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

/* --- grouped durability --------------------------------------------------- */

/* Begin, write and finish one message (no sync); the status. */
static int
deliver_one(struct deliver *d, const char *msg, char **err)
{
	struct deliver_info info;
	struct deliver_msg *m;
	int r;

	memset(&info, 0, sizeof info);
	info.account = "test";
	info.uid = "7";
	if ((r = deliver_begin(d, &info, &m, err)) != PM_OK)
		return r;
	if ((r = deliver_write(m, msg, strlen(msg), err)) != PM_OK) {
		deliver_abort(m);
		return r;
	}
	return deliver_finish(m, err);
}

/* The mbox at path with the date of each From_ line replaced by DATE. */
static char *
mbox_undated(const char *path)
{
	char *data = slurp(path), *out, *o;
	const char *p, *sp, *nl;

	out = o = xmalloc(strlen(data) + 1);
	for (p = data; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		if (strncmp(p, "From ", 5) == 0 &&
		    (sp = memchr(p + 5, ' ', (size_t)(nl - p - 5))) != NULL) {
			/* "%a %b %e %H:%M:%S %Y" is 24 bytes. */
			ck_assert_int_eq((int)(nl - sp - 1), 24);
			memcpy(o, p, (size_t)(sp - p));
			o += sp - p;
			memcpy(o, " DATE\n", 6);
			o += 6;
		} else {
			memcpy(o, p, (size_t)(nl - p + 1));
			o += nl - p + 1;
		}
	}
	*o = '\0';
	free(data);
	return out;
}

/* Whether another process could take the fcntl write lock on path now. */
static int
lockable_by_others(const char *path)
{
	struct flock fl;
	pid_t pid;
	int st, fd;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if ((fd = open(path, O_RDWR)) < 0)
			_exit(2);
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		_exit(fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 2);
	return WEXITSTATUS(st) == 0;
}

static const char *const batch_in[] = {
	"Return-Path: <a@example.org>\r\nSubject: one\r\n\r\nFrom here\r\n"
	    ">From there\r\nbody one\r\n",
	"Subject: two\r\n\r\nno line end",
	"Return-Path: <c@example.org>\r\nSubject: three\r\n\r\n\r\n",
	"Return-Path: <d@example.org>\r\nSubject: four\r\n\r\n>>From deep\r\n",
	"Subject: five\r\n\r\n.\r\n",
};
static const char *const batch_out[] = {
	"From a@example.org DATE\nReturn-Path: <a@example.org>\n"
	    "Subject: one\n\n>From here\n>>From there\nbody one\n\n",
	"From MAILER-DAEMON DATE\nSubject: two\n\nno line end\n\n",
	"From c@example.org DATE\nReturn-Path: <c@example.org>\n"
	    "Subject: three\n\n\n\n",
	"From d@example.org DATE\nReturn-Path: <d@example.org>\n"
	    "Subject: four\n\n>>>From deep\n\n",
	"From MAILER-DAEMON DATE\nSubject: five\n\n.\n\n",
};

/* batch_out[from] to batch_out[to - 1], joined. */
static char *
batch_text(size_t from, size_t to)
{
	char *s = xstrdup(""), *t;

	for (; from < to; from++) {
		t = xasprintf("%s%s", s, batch_out[from]);
		free(s);
		s = t;
	}
	return s;
}

/* Assert that the mbox holds exactly batch_out[from..to). */
static void
assert_mbox_batch(size_t from, size_t to)
{
	char *got = mbox_undated(tacct.deliver_path), *want;

	want = batch_text(from, to);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
}

/* --- a lock left by a pullmail that died --------------------------------- */

/* The names in directory d, sorted, joined by blanks (static storage). */
static const char *
dir_names(const char *d)
{
	static char out[1024];
	struct dirent **ents;
	int n, i;

	n = scandir(d, &ents, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 &&
		    strcmp(ents[i]->d_name, "..") != 0) {
			if (out[0] != '\0')
				strncat(out, " ", sizeof out - strlen(out) - 1);
			strncat(out, ents[i]->d_name,
			    sizeof out - strlen(out) - 1);
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

#define FROM_A "From a@example.org Mon Nov 30 00:00:00 2026\n"
#define FROM_B "From b@example.org Mon Nov 30 00:00:01 2026\n"

/* This host's name (static storage). */
static const char *
this_host(void)
{
	static char name[256];

	ck_assert_int_eq(gethostname(name, sizeof name), 0);
	name[sizeof name - 1] = '\0';
	return name;
}

/* The text of a dotlock of ours for pid on host (this host when NULL). */
static char *
lock_text(long pid, const char *host)
{
	return xasprintf("pullmail %ld %s\n", pid,
	    host != NULL ? host : this_host());
}

/* The PID of a process that has exited and been reaped. */
static long
dead_pid(void)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return (long)pid;
}

/* Write text to path, replacing it. */
static void
put_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, text, len), 0);
	close(fd);
}

/* Start sending what is logged (stderr) to a file; the saved stderr. */
static int
log_capture(const char *path)
{
	int saved, fd;

	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	return saved;
}

/* Stop capturing; what was logged. */
static char *
log_captured(const char *path, int saved)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	return slurp(path);
}

enum { HOLDER_DEAD, HOLDER_LIVE, HOLDER_DEAD_ELSEWHERE, HOLDER_OLD_FORMAT,
    HOLDER_DEAD_FCNTL, HOLDER_OLD_STALE, HOLDER_SYMLINK_STALE,
    HOLDER_NCASES };

/* A child holding the fcntl write lock on path until killed. */
static pid_t
fcntl_holder(const char *path)
{
	struct flock fl;
	pid_t pid;
	int p[2], fd;
	char c;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fd = open(path, O_RDWR);
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(1);
		(void)write(p[1], "x", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

/*
 * A dotlock of ours whose holder is a process of this host that no longer
 * exists is taken at once, and the run says so; one whose holder lives,
 * or is on another host, or in the format of before (the PID alone) is
 * respected until lock_timeout (then five minutes make it stale).  So is
 * one whose holder looks dead but that names an append while a process
 * holds the mbox's fcntl lock (a pullmail in another PID namespace): its
 * message is not cut.  Another program's lock, a regular file or a
 * symbolic link, is stale after five minutes.
 */
START_TEST(test_mbox_lock_holder)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	static const char half[] = FROM_A "Subject: a\n\nhalf";
	char *err = NULL, *lock, *text, *logf, *logged, *data;
	long long t0;
	struct stat mst;
	pid_t live = -1;
	long other;
	int saved, r, st;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	logf = xasprintf("%s/log", dir);
	switch (_i) {
	case HOLDER_DEAD:
		/* Also the link source another killed run left on its way
		 * to the lock. */
		other = dead_pid();
		text = lock_text(dead_pid(), NULL);
		data = xasprintf("%s.%s.%ld", lock, this_host(), other);
		put_file(data, text, strlen(text));
		free(data);
		break;
	case HOLDER_LIVE:
		live = fork();
		ck_assert_int_ge(live, 0);
		if (live == 0) {
			pause();
			_exit(0);
		}
		text = lock_text((long)live, NULL);
		break;
	case HOLDER_DEAD_ELSEWHERE:
		text = lock_text(dead_pid(), "elsewhere.example.org");
		break;
	case HOLDER_DEAD_FCNTL:
		put_file(tacct.deliver_path, half, strlen(half));
		ck_assert_int_eq(stat(tacct.deliver_path, &mst), 0);
		live = fcntl_holder(tacct.deliver_path);
		data = lock_text(dead_pid(), NULL);
		text = xasprintf("%sappend %llu %llu 0\n", data,
		    (unsigned long long)mst.st_dev,
		    (unsigned long long)mst.st_ino);
		free(data);
		break;
	case HOLDER_SYMLINK_STALE:
		text = xstrdup("");
		break;
	default:
		text = xasprintf("%ld\n", dead_pid());
		break;
	}
	if (_i == HOLDER_SYMLINK_STALE)
		ck_assert_int_eq(symlink("/nonexistent", lock), 0);
	else
		put_file(lock, text, strlen(text));
	if (_i == HOLDER_OLD_STALE || _i == HOLDER_SYMLINK_STALE) {
		struct timespec ts[2];

		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= 301;
		ts[1] = ts[0];
		ck_assert_int_eq(utimensat(AT_FDCWD, lock, ts,
		    AT_SYMLINK_NOFOLLOW), 0);
	}
	saved = log_capture(logf);
	t0 = mono_ms();
	r = deliver_chunks(msg, &err);
	t0 = mono_ms() - t0;
	logged = log_captured(logf, saved);
	if (live > 0) {
		kill(live, SIGKILL);
		ck_assert_int_eq(waitpid(live, &st, 0), live);
	}
	if (_i == HOLDER_DEAD || _i == HOLDER_OLD_STALE ||
	    _i == HOLDER_SYMLINK_STALE) {
		ck_assert_msg(r == PM_OK, "%s", err);
		ck_assert_msg(t0 < 500, "took %lld ms", t0);
		ck_assert_msg(strstr(logged, _i == HOLDER_DEAD ?
		    "which no longer exists" : "more than five minutes old") !=
		    NULL && strstr(logged, lock) != NULL, "%s", logged);
		data = mbox_undated(tacct.deliver_path);
		ck_assert_str_eq(data, "From MAILER-DAEMON DATE\n"
		    "Subject: x\n\nbody\n\n");
		free(data);
		/* Neither the lock nor the file it was linked from is left. */
		ck_assert_str_eq(dir_names(dir), "log mbox");
	} else {
		ck_assert_int_eq(r, PM_ETEMP);
		ck_assert_ptr_nonnull(strstr(err, "cannot lock"));
		ck_assert_msg(t0 >= 1000, "took %lld ms", t0);
		free(err);
		/* Still there, untouched. */
		data = slurp(lock);
		ck_assert_str_eq(data, text);
		free(data);
		ck_assert_ptr_null(strstr(logged, "removed"));
		if (_i != HOLDER_DEAD_FCNTL)
			ck_assert_int_ne(access(tacct.deliver_path, F_OK), 0);
		else {
			data = slurp(tacct.deliver_path);
			ck_assert_str_eq(data, half);
			free(data);
		}
	}
	free(text);
	free(logged);
	free(logf);
	free(lock);
}
END_TEST

/* A dead run's lock and what it left in the mbox after the offset. */
struct partial_case {
	const char *before;	/* the mbox up to the offset */
	const char *after;	/* what the dead run left after it */
	int cut;		/* cut back to the offset? */
};

static const struct partial_case partial_cases[] = {
	/* A message cut short in its body. */
	{ FROM_A "Subject: a\n\nbody a\n\n",
	  FROM_B "Subject: b\n\n>From quoted\nhalf a li", 1 },
	/* Cut short in the From_ line. */
	{ FROM_A "Subject: a\n\nbody a\n\n", "From b@exa", 1 },
	/* Whole, but the lock was not removed yet. */
	{ FROM_A "Subject: a\n\nbody a\n\n", FROM_B "Subject: b\n\nb\n\n", 1 },
	/* After an mbox without the final blank line: the separator. */
	{ FROM_A "Subject: a\n\nno blank line\n", "\n" FROM_B "Subj", 1 },
	/* Into an empty mbox. */
	{ "", FROM_B "Subject: b\n", 1 },
	/* Another writer appended a message after the partial one. */
	{ FROM_A "Subject: a\n\nbody a\n\n",
	  FROM_B "Subject: b\n\nhalf\n\n" FROM_B "Subject: c\n\nwhole\n\n", 0 },
	/* ... also without a blank line before its From_ line. */
	{ FROM_A "Subject: a\n\nbody a\n\n",
	  FROM_B "Subject: b\n\nhalf\n" FROM_B "Subject: c\n\nwhole\n\n", 0 },
	/* Not what we write at the offset: the file was rewritten. */
	{ FROM_A "Subject: a\n\nbody a\n\n", "Subject: b\n\nbody b\n\n", 0 },
	/* The separator is wrong for the bytes before the offset. */
	{ FROM_A "Subject: a\n\nbody a\n\n", "\n" FROM_B "Subject: b\n", 0 },
};

/*
 * A dead pullmail's lock naming the mbox and its size before the message
 * it was appending: the partial message after that offset is cut away
 * before the next message, which is whole; the whole mbox is compared
 * byte for byte.  When anything but that one message of ours follows the
 * offset (another writer's message, a rewritten file), nothing is cut and
 * a warning names the offset.
 */
START_TEST(test_mbox_partial_cut)
{
	static const char *const msg[] = { "Subject: x\n\nbody\n", NULL };
	const struct partial_case *c = &partial_cases[_i];
	char *err = NULL, *lock, *text, *logf, *logged, *data, *want;
	char *dead, *offs;
	struct stat st;
	int saved;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	logf = xasprintf("%s/log", dir);
	data = xasprintf("%s%s", c->before, c->after);
	put_file(tacct.deliver_path, data, strlen(data));
	ck_assert_int_eq(stat(tacct.deliver_path, &st), 0);
	dead = lock_text(dead_pid(), NULL);
	text = xasprintf("%sappend %llu %llu %zu\n", dead,
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	    strlen(c->before));
	put_file(lock, text, strlen(text));
	saved = log_capture(logf);
	ck_assert_int_eq(deliver_chunks(msg, &err), PM_OK);
	logged = log_captured(logf, saved);
	/* What the mbox must hold: what stays, the separator it calls
	 * for, the new message. */
	free(data);
	data = xasprintf("%s%s", c->before, c->cut ? "" : c->after);
	want = xasprintf("%s%sFrom MAILER-DAEMON Mon Nov 30 00:00:02 2026\n"
	    "Subject: x\n\nbody\n\n", data, *data == '\0' ? "" :
	    data[strlen(data) - 1] != '\n' ? "\n\n" :
	    strlen(data) >= 2 && data[strlen(data) - 2] == '\n' ? "" : "\n");
	free(data);
	data = xasprintf("%s/want", dir);
	put_file(data, want, strlen(want));
	free(want);
	want = mbox_undated(data);
	free(data);
	data = mbox_undated(tacct.deliver_path);
	ck_assert_str_eq(data, want);
	offs = xasprintf("%zu", strlen(c->before));
	if (c->cut)
		ck_assert_msg(strstr(logged, "cut ") != NULL &&
		    strstr(logged, offs) != NULL, "%s", logged);
	else
		ck_assert_msg(strstr(logged, "not cutting") != NULL &&
		    strstr(logged, offs) != NULL, "%s", logged);
	ck_assert_int_ne(access(lock, F_OK), 0);
	free(offs);
	free(dead);
	free(data);
	free(want);
	free(text);
	free(logged);
	free(logf);
	free(lock);
}
END_TEST

/*
 * mbox: finish() writes each message out whole and lets go of both locks
 * without an fsync; one sync() fsyncs the file (and, as it was created,
 * its directory) once for the whole batch.  The content is exact, mboxrd
 * quoting and separators included.
 */
START_TEST(test_mbox_group_commit)
{
	struct deliver *d;
	char *err = NULL, *lock;
	size_t i;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(deliver_one(d, batch_in[i], &err), PM_OK);
		/* Finished: complete in the file, and nothing locked. */
		assert_mbox_batch(0, i + 1);
		ck_assert_int_ne(access(lock, F_OK), 0);
		ck_assert(lockable_by_others(tacct.deliver_path));
	}
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 0);
	ck_assert_uint_eq(fsync_count(dir), 0);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 1);
	ck_assert_uint_eq(fsync_count(dir), 1);

	/* A second batch to the file that now exists: no directory fsync. */
	for (i = 3; i < 5; i++)
		ck_assert_int_eq(deliver_one(d, batch_in[i], &err), PM_OK);
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 1);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);	/* nothing new */
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 2);
	ck_assert_uint_eq(fsync_count(dir), 1);
	deliver_close(d);
	assert_mbox_batch(0, 5);
	free(lock);
}
END_TEST

/*
 * mbox: messages finished but never synced, then one aborted half way and
 * the target closed: the file holds the finished ones whole, the aborted
 * one not at all, and the next run appends cleanly after them.
 */
START_TEST(test_mbox_unsynced_close)
{
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL, *lock;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	lock = xasprintf("%s.lock", tacct.deliver_path);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[0], &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[1], &err), PM_OK);
	memset(&info, 0, sizeof info);
	info.uid = "3";
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, batch_in[2], strlen(batch_in[2]),
	    &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, "half a", 6, &err), PM_OK);
	deliver_abort(m);
	deliver_close(d);
	assert_mbox_batch(0, 2);
	ck_assert_int_ne(access(lock, F_OK), 0);
	ck_assert(lockable_by_others(tacct.deliver_path));

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[2], &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	assert_mbox_batch(0, 3);
	free(lock);
}
END_TEST

/*
 * mbox: when the fsync fails, sync() fails, and it keeps failing (a later
 * fsync may succeed without the lost pages), as does every later begin():
 * none of the batch may ever be counted as delivered.
 */
START_TEST(test_mbox_sync_fails)
{
	struct deliver *d;
	char *err = NULL;
	FILE *f;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	f = fopen(tacct.deliver_path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	fsync_fail_on(tacct.deliver_path);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[0], &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[1], &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_EDELIVER);
	ck_assert_msg(strstr(err, "mbox: cannot fsync") != NULL &&
	    strstr(err, "Input/output error") != NULL, "%s", err);
	free(err);
	err = NULL;
	fsync_fail_on(NULL);
	ck_assert_int_eq(deliver_sync(d, &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "cannot fsync"));
	free(err);
	err = NULL;
	ck_assert_int_eq(deliver_one(d, batch_in[2], &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "cannot fsync"));
	free(err);
	deliver_close(d);
	/* What was written stays (a duplicate next run, never a loss). */
	assert_mbox_batch(0, 2);
}
END_TEST

/*
 * mbox: a sync() while a message is in flight fsyncs without dropping
 * that message's fcntl lock (closing another descriptor of the file
 * would), and the file rotated away between two messages of a batch is
 * fsync'd before the path is opened afresh.
 */
START_TEST(test_mbox_sync_in_flight_and_rotated)
{
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL, *old;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	old = xasprintf("%s/mbox.old", dir);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_one(d, batch_in[0], &err), PM_OK);
	memset(&info, 0, sizeof info);
	info.uid = "2";
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, batch_in[1], strlen(batch_in[1]),
	    &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 1);
	ck_assert(!lockable_by_others(tacct.deliver_path));
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert(lockable_by_others(tacct.deliver_path));
	assert_mbox_batch(0, 2);

	/* Rotated away with message 2 not yet synced. */
	ck_assert_int_eq(rename(tacct.deliver_path, old), 0);
	ck_assert_int_eq(deliver_one(d, batch_in[2], &err), PM_OK);
	ck_assert_uint_eq(fsync_count(old), 2);
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 0);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(fsync_count(tacct.deliver_path), 1);
	deliver_close(d);
	assert_mbox_batch(2, 3);
	free(tacct.deliver_path);
	tacct.deliver_path = old;
	assert_mbox_batch(0, 2);
}
END_TEST

/* The messages in the Maildir's new/ that were fsync'd n times (n < 0:
 * all of them). */
static size_t
maildir_new_files(int n)
{
	struct dirent *de;
	DIR *dp;
	char *newdir, *p;
	size_t count = 0;

	newdir = xasprintf("%s/new", tacct.deliver_path);
	dp = opendir(newdir);
	ck_assert_ptr_nonnull(dp);
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", newdir, de->d_name);
		if (n < 0 || fsync_count(p) == (unsigned)n)
			count++;
		free(p);
	}
	closedir(dp);
	free(newdir);
	return count;
}

/*
 * Maildir: finish() flushes nothing; sync() flushes the batch's data (one
 * syncfs() for five files, an fsync() each for two), then moves the files
 * into new/ and fsyncs new/ once.
 */
START_TEST(test_maildir_group_commit)
{
	struct deliver *d;
	char *err = NULL, *newdir;
	size_t i;

	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
	newdir = xasprintf("%s/new", tacct.deliver_path);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(deliver_one(d, batch_in[i], &err), PM_OK);
	ck_assert_uint_eq(maildir_new_files(-1), 0);	/* all in tmp/ */
	ck_assert_uint_eq(nsyncfs, 0);
	ck_assert_uint_eq(fsync_count(newdir), 0);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);	/* nothing new */
	ck_assert_uint_eq(fsync_count(newdir), 1);
#ifdef HAVE_SYNCFS
	ck_assert_uint_eq(nsyncfs, 1);
	ck_assert_uint_eq(maildir_new_files(0), 5);
#else
	ck_assert_uint_eq(maildir_new_files(1), 5);
#endif

	/* Two files: an fsync each rather than a syncfs. */
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(deliver_one(d, batch_in[i], &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(fsync_count(newdir), 2);
	ck_assert_uint_eq(maildir_new_files(-1), 7);
#ifdef HAVE_SYNCFS
	ck_assert_uint_eq(nsyncfs, 1);
	ck_assert_uint_eq(maildir_new_files(1), 2);
#else
	ck_assert_uint_eq(maildir_new_files(1), 7);
#endif
	deliver_close(d);
	free(newdir);
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

/* A message of about size bytes: a header and lines of 'y'. */
static char *
big_message(size_t size)
{
	char *msg = xmalloc(size + 1);
	size_t i;

	memcpy(msg, "Subject: big\n\n", 14);
	for (i = 14; i < size; i++)
		msg[i] = i % 64 == 63 ? '\n' : 'y';
	msg[size] = '\0';
	return msg;
}

/*
 * mda_timeout measures the MDA's inactivity, not the whole delivery: an
 * MDA that stalls twice for 0.6 s each (2 s in all with the slow source)
 * delivers within mda_timeout = 1, an MDA that reads everything but never
 * exits and one that never reads are stopped after it, and a timeout is
 * temporary (the message is tried again).
 */
START_TEST(test_mda_timeout)
{
	char *msg = big_message(256 << 10), *out, *path, *err = NULL;
	const char *head[] = { "Subject: slow\n\n", "one\n", "two\n",
	    NULL };
	const char *chunks[2] = { msg, NULL };
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	long long t0;
	int r;

	tacct.deliver_kind = DELIVER_MDA;
	tacct.mda_timeout = 1;
	path = xasprintf("%s/out", dir);
	tacct.deliver_path = xasprintf("/bin/sh -c '{ sleep 0.6; dd bs=65536 "
	    "count=1 status=none; sleep 0.6; cat; } > %s'", path);
	t0 = mono_ms();
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_OK);
	ck_assert_int_ge(mono_ms() - t0, 1100);
	out = slurp(path);
	ck_assert_str_eq(out, msg);
	free(out);

	/* The source is slow (the mail server): that time does not count. */
	free(tacct.deliver_path);
	tacct.deliver_path = xasprintf("/bin/sh -c 'cat > %s'", path);
	test_info(&info, "7");
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	for (r = 0; head[r] != NULL; r++) {
		ck_assert_int_eq(deliver_write(m, head[r], strlen(head[r]),
		    &err), PM_OK);
		usleep(700 * 1000);
	}
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	deliver_close(d);
	out = slurp(path);
	ck_assert_str_eq(out, "Subject: slow\n\none\ntwo\n");
	free(out);

	/* Reads everything, never exits. */
	free(tacct.deliver_path);
	tacct.deliver_path = xstrdup("/bin/sh -c 'cat >/dev/null; "
	    "exec sleep 30'");
	t0 = mono_ms();
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_ptr_nonnull(strstr(err, "sh did not finish within 1 "
	    "seconds (mda_timeout); stopped it"));
	free(err);
	err = NULL;

	/* Never reads: the pipe stays full. */
	free(tacct.deliver_path);
	tacct.deliver_path = xstrdup("/bin/sleep 30");
	t0 = mono_ms();
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_ptr_nonnull(strstr(err, "sleep did not read its input for "
	    "1 seconds (mda_timeout); stopped it"));
	free(err);
	free(path);
	free(msg);
	tacct.mda_timeout = 0;
}
END_TEST

/* Entries in directory path other than . and .. */
static int
count_entries(const char *path)
{
	DIR *dp = opendir(path);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(dp);
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

/* Point TMPDIR (the MDA's spool) at path, NULL: back to what it was. */
static void
set_spool_dir(const char *path)
{
	static char *saved;
	static int have_saved;
	const char *cur;

	if (path != NULL) {
		if (!have_saved) {
			cur = getenv("TMPDIR");
			saved = cur != NULL ? xstrdup(cur) : NULL;
			have_saved = 1;
		}
		ck_assert_int_eq(setenv("TMPDIR", path, 1), 0);
		return;
	}
	if (saved != NULL)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	saved = NULL;
	have_saved = 0;
}

/*
 * The MDA sees a message only once it is whole: one cut short (the source
 * failed after the header section and 192 KB of body) is aborted before
 * any MDA is started, so it can never file a partial message.  A complete
 * one reaches it as an unlinked 0600 regular file in $TMPDIR, byte for
 * byte, and no spool file is left behind.
 */
START_TEST(test_mda_spool)
{
	char *msg = big_message(384 << 10), *started, *got, *spool, *out;
	const char *chunks[2] = { msg, NULL };
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;

	started = xasprintf("%s/started", dir);
	got = xasprintf("%s/got", dir);
	spool = xasprintf("%s/spool", dir);
	ck_assert_int_eq(mkdir(spool, 0700), 0);
	set_spool_dir(spool);
	tacct.deliver_kind = DELIVER_MDA;
	tacct.deliver_path = xasprintf("/bin/sh -c 'echo >%s; "
	    "stat -L -c \"%%a %%h\" /dev/stdin >%s.stat; "
	    "test -f /dev/stdin && echo regular >>%s.stat; "
	    "readlink /proc/self/fd/0 >%s.link; cat >%s'", started, got,
	    got, got, got);
	test_info(&info, "9");
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, msg, 192 << 10, &err), PM_OK);
	usleep(300 * 1000);
	deliver_abort(m);
	deliver_close(d);
	usleep(300 * 1000);
	ck_assert_msg(access(started, F_OK) < 0, "the MDA was started for a "
	    "message cut short");
	ck_assert_msg(access(got, F_OK) < 0, "the MDA got a partial message");
	ck_assert_int_eq(count_entries(spool), 0);

	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_OK);
	out = slurp(got);
	ck_assert_msg(strcmp(out, msg) == 0, "the MDA got %zu bytes of %zu",
	    strlen(out), strlen(msg));
	free(out);
	out = xasprintf("%s.stat", got);
	free(got);
	got = slurp(out);
	ck_assert_str_eq(got, "600 0\nregular\n");
	free(got);
	free(out);
	out = xasprintf("%s/got.link", dir);
	got = slurp(out);
	ck_assert_msg(strncmp(got, spool, strlen(spool)) == 0 &&
	    got[strlen(spool)] == '/' && strstr(got, "(deleted)") != NULL,
	    "stdin was %s", got);
	ck_assert_int_eq(count_entries(spool), 0);
	set_spool_dir(NULL);
	free(out);
	free(got);
	free(spool);
	free(started);
	free(msg);
}
END_TEST

/*
 * A spool that cannot be written is a temporary failure that names the
 * directory and TMPDIR, and the MDA is never started: a directory that is
 * missing or not writable, and one that runs out of room (a file size
 * limit stands in for a full disk).
 */
START_TEST(test_mda_spool_fails)
{
	char *msg = big_message(64 << 10), *started, *spool, *err = NULL;
	const char *chunks[2] = { msg, NULL };
	struct rlimit old, lim;

	started = xasprintf("%s/started", dir);
	tacct.deliver_kind = DELIVER_MDA;
	tacct.deliver_path = xasprintf("/bin/sh -c 'echo >%s; cat >/dev/null'",
	    started);

	spool = xasprintf("%s/missing", dir);
	set_spool_dir(spool);
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_msg(strstr(err, "mda: cannot spool the message in ") != NULL &&
	    strstr(err, "/missing: No such file or directory (it must be a "
	    "writable directory; set TMPDIR to choose another)") != NULL,
	    "%s", err);
	free(err);
	err = NULL;
	free(spool);

	if (geteuid() != 0) {
		/* root writes anyway; the e2e test covers a read-only mount */
		spool = xasprintf("%s/ro", dir);
		ck_assert_int_eq(mkdir(spool, 0500), 0);
		set_spool_dir(spool);
		ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
		ck_assert_msg(strstr(err, "Permission denied") != NULL, "%s",
		    err);
		free(err);
		err = NULL;
		free(spool);
	}

	spool = xasprintf("%s/spool", dir);
	ck_assert_int_eq(mkdir(spool, 0700), 0);
	set_spool_dir(spool);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 16 << 10;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	ck_assert_msg(strstr(err, "File too large (it needs room for the "
	    "largest message; set TMPDIR to choose another)") != NULL, "%s",
	    err);
	free(err);
	ck_assert_int_eq(count_entries(spool), 0);
	ck_assert_msg(access(started, F_OK) < 0, "the MDA was started");
	set_spool_dir(NULL);
	free(spool);
	free(started);
	free(msg);
}
END_TEST

/*
 * A fault injector for LMTP over a unix socket: no real LMTP server stops
 * reading in the middle of DATA or leaves its listen queue full on
 * purpose.  With answer set it greets, accepts LHLO, MAIL, RCPT and DATA
 * and then never reads again; otherwise it never accepts a connection.
 * Returns the child's pid; the socket is dir/lmtp.sock.
 */
static pid_t
lmtp_fault_injector(int answer, char **path_r)
{
	static const char *const replies[] = { "250 fault-injector\r\n",
	    "250 ok\r\n", "250 ok\r\n", "354 go on\r\n" };
	struct sockaddr_un sun;
	char c;
	size_t i;
	pid_t pid;
	int fd, cfd;

	*path_r = xasprintf("%s/lmtp.sock", dir);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(*path_r), sizeof sun.sun_path);
	memcpy(sun.sun_path, *path_r, strlen(*path_r));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 0), 0);
	if (!answer) {
		/* Fill the listen queue with connections of our own. */
		for (i = 0; i < 64; i++) {
			cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
			ck_assert_int_ge(cfd, 0);
			if (connect(cfd, (struct sockaddr *)&sun,
			    sizeof sun) < 0) {
				ck_assert_int_eq(errno, EAGAIN);
				close(cfd);
				break;
			}
		}
		ck_assert_uint_lt(i, 64);
		return -1;	/* the queued sockets stay open until exit */
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		close(fd);
		return pid;
	}
	if ((cfd = accept(fd, NULL, NULL)) < 0)
		_exit(1);
	(void)write(cfd, "220 fault-injector LMTP\r\n", 25);
	for (i = 0; i < sizeof replies / sizeof replies[0]; i++) {
		do {
			if (read(cfd, &c, 1) != 1)
				_exit(1);
		} while (c != '\n');
		(void)write(cfd, replies[i], strlen(replies[i]));
	}
	for (;;)
		pause();
}

/* LMTP to a unix socket never blocks past the account timeout: not in
 * connect() when the listener accepts nothing, not in send() when the
 * server stops reading; both are temporary failures. */
START_TEST(test_lmtp_unix_stall)
{
	char *msg = big_message(4 << 20), *path, *err = NULL;
	const char *chunks[2] = { msg, NULL };
	long long t0;
	pid_t pid;
	int st;

	tacct.deliver_kind = DELIVER_LMTP;
	tacct.timeout = 1;
	pid = lmtp_fault_injector(1, &path);
	tacct.deliver_path = path;
	t0 = mono_ms();
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_ptr_nonnull(strstr(err, "timed out after 1 seconds"));
	free(err);
	err = NULL;
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(unlink(path), 0);
	free(path);

	ck_assert_int_eq(lmtp_fault_injector(0, &path), -1);
	tacct.deliver_path = path;
	t0 = mono_ms();
	ck_assert_int_eq(deliver_chunks(chunks, &err), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_ptr_nonnull(strstr(err, "no connection accepted within 1 "
	    "seconds"));
	free(err);
	free(msg);
	tacct.timeout = 0;
}
END_TEST

/*
 * A fault injector for the SMTP/LMTP reply parser: a scripted LMTP peer
 * on dir/reply.sock.  No real MTA sends garbage status codes, over-long
 * or mixed-code reply lines on purpose, so this stands in for one.  It
 * answers one connection: the greeting, then per command the scripted
 * reply (RSET and QUIT always succeed), reads DATA up to the lone dot and
 * answers with the end-of-data reply.  Every line it reads goes to
 * dir/transcript.
 */
struct reply_script {
	const char *greeting, *hello, *rcpt, *data, *eod;
	int want;		/* expected status */
	const char *err;	/* expected in the error, or NULL */
	const char *sent;	/* expected in the transcript, or NULL */
	int hangup;		/* close right after the end-of-data reply */
};

static const struct reply_script reply_cases[] = {
	/* Multi-line greeting and LHLO; PIPELINING and 8BITMIME used. */
	{ "220-fault-injector\r\n220 LMTP\r\n",
	  "250-fault-injector\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
	  "250 ENHANCEDSTATUSCODES\r\n", NULL, NULL,
	  "250 2.0.0 <alice> Saved\r\n", PM_OK, NULL,
	  "MAIL FROM:<carol@example.org> BODY=8BITMIME\r\n", 0 },
	/* The recipient's reply after DATA: multi-line 452 is temporary. */
	{ NULL, NULL, NULL, NULL,
	  "452-4.2.2 <alice> over quota\r\n452 4.2.2 try later\r\n",
	  PM_ETEMP, "message refused after DATA: 452 4.2.2 try later",
	  "RSET\r\n", 0 },
	/* A 552 from the recipient after DATA: failed for good. */
	{ NULL, NULL, NULL, NULL, "552 5.2.2 <alice> Quota exceeded\r\n",
	  PM_EDELIVER, "after DATA: 552 5.2.2 <alice> Quota exceeded",
	  "RSET\r\n", 0 },
	/* Control bytes in the text never reach the error as they are. */
	{ NULL, NULL, NULL, NULL, "550 5.0.0 bad\001\177\377 text\r\n",
	  PM_EDELIVER, "550 5.0.0 bad??? text", NULL, 0 },
	/* RCPT refused (pipelined): DATA is refused too, nothing sent. */
	{ NULL, NULL, "550 5.1.1 <alice> User doesn't exist\r\n",
	  "503 5.5.1 No valid recipients\r\n", NULL, PM_EDELIVER,
	  "RCPT TO:<alice> refused: 550 5.1.1", NULL, 0 },
	/* Garbage where a status should be. */
	{ NULL, NULL, NULL, NULL, "hello there\r\n", PM_ETEMP,
	  "malformed reply \"hello there\"", NULL, 0 },
	{ NULL, NULL, NULL, NULL, "600 no such class\r\n", PM_ETEMP,
	  "malformed reply", NULL, 0 },
	{ NULL, NULL, NULL, NULL, "25\r\n", PM_ETEMP,
	  "malformed reply", NULL, 0 },
	{ NULL, NULL, NULL, NULL, "250x ok\r\n", PM_ETEMP,
	  "malformed reply", NULL, 0 },
	{ "2a0 hi\r\n", NULL, NULL, NULL, NULL, PM_ETEMP,
	  "malformed reply", NULL, 0 },
	/* A bare code is a reply; an empty line is not. */
	{ NULL, NULL, NULL, NULL, "250\r\n", PM_OK, NULL, NULL, 0 },
	{ NULL, NULL, NULL, NULL, "\r\n", PM_ETEMP, "malformed reply", NULL,
	  0 },
	/* Continuation lines with another code. */
	{ NULL, "250-fault-injector\r\n251 PIPELINING\r\n", NULL, NULL, NULL,
	  PM_ETEMP, "reply lines with different codes", NULL, 0 },
	/* The server closes the connection half way through a reply. */
	{ NULL, NULL, NULL, NULL, "250-first line only\r\n", PM_ETEMP,
	  "connection closed by the server", NULL, 1 },
	/* LHLO refused. */
	{ NULL, "500 5.5.1 what?\r\n", NULL, NULL, NULL, PM_EDELIVER,
	  "LHLO: 500 5.5.1 what?", NULL, 0 },
	/* A 421 greeting: temporary. */
	{ "421 4.3.2 shutting down\r\n", NULL, NULL, NULL, NULL, PM_ETEMP,
	  "greeting: 421 4.3.2 shutting down", NULL, 0 },
	/* An over-long line (see below). */
	{ NULL, NULL, NULL, NULL, "LONG", PM_ETEMP,
	  "reply line longer than 2048 bytes", NULL, 0 },
};

/* Write all of s to fd (the injector's side). */
static void
inj_put(int fd, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, s, len)) <= 0)
			return;	/* the client hung up: fine */
		s += n;
		len -= (size_t)n;
	}
}

/* Read one line (with its LF) into buf; 0 at EOF. */
static size_t
inj_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char c;

	while (n + 1 < size && read(fd, &c, 1) == 1) {
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	buf[n] = '\0';
	return n;
}

/* Start the reply fault injector for script sc; its pid. */
static pid_t
reply_injector(const struct reply_script *sc, char **path_r)
{
	struct sockaddr_un sun;
	char line[8192], *p;
	FILE *tr;
	pid_t pid;
	int fd, cfd;

	*path_r = xasprintf("%s/reply.sock", dir);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(*path_r), sizeof sun.sun_path);
	memcpy(sun.sun_path, *path_r, strlen(*path_r));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		close(fd);
		return pid;
	}
	p = xasprintf("%s/transcript", dir);
	if ((tr = fopen(p, "w")) == NULL || (cfd = accept(fd, NULL, NULL)) < 0)
		_exit(1);
	setvbuf(tr, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	inj_put(cfd, sc->greeting != NULL ? sc->greeting : "220 LMTP\r\n");
	while (inj_line(cfd, line, sizeof line) > 0) {
		fputs(line, tr);
		if (strncmp(line, "LHLO ", 5) == 0)
			inj_put(cfd, sc->hello != NULL ? sc->hello :
			    "250-fault-injector\r\n250 PIPELINING\r\n");
		else if (strncmp(line, "RCPT ", 5) == 0)
			inj_put(cfd, sc->rcpt != NULL ? sc->rcpt :
			    "250 2.1.5 ok\r\n");
		else if (strcmp(line, "DATA\r\n") == 0) {
			inj_put(cfd, sc->data != NULL ? sc->data :
			    "354 go on\r\n");
			if (sc->data != NULL && sc->data[0] != '3')
				continue;
			while (inj_line(cfd, line, sizeof line) > 0 &&
			    strcmp(line, ".\r\n") != 0)
				fputs(line, tr);
			fputs(".\r\n", tr);
			if (sc->eod == NULL)
				inj_put(cfd, "250 2.0.0 ok\r\n");
			else if (strcmp(sc->eod, "LONG") == 0) {
				inj_put(cfd, "250 ");
				memset(line, 'x', 4000);
				line[4000] = '\0';
				inj_put(cfd, line);
				inj_put(cfd, "\r\n");
			} else
				inj_put(cfd, sc->eod);
			if (sc->hangup)
				_exit(0);	/* half a reply, then EOF */
		} else if (strcmp(line, "QUIT\r\n") == 0) {
			inj_put(cfd, "221 bye\r\n");
			break;
		} else
			inj_put(cfd, "250 ok\r\n");	/* MAIL, RSET */
	}
	_exit(0);
}

/* The SMTP/LMTP reply parser against each scripted fault: multi-line
 * replies, LMTP's per-recipient reply to the end of DATA, garbage status
 * codes, over-long and mixed-code lines; RSET after a refused message. */
START_TEST(test_reply_parser)
{
	const struct reply_script *sc = &reply_cases[_i];
	const char *chunks[] = { "Return-Path: <carol@example.org>\n"
	    "Subject: x\n\n.dot\n", NULL };
	char *path, *err = NULL, *tp, *tr;
	pid_t pid;
	int st, r;

	tacct.deliver_kind = DELIVER_LMTP;
	tacct.timeout = 5;
	pid = reply_injector(sc, &path);
	tacct.deliver_path = path;
	r = deliver_chunks(chunks, &err);
	if (r != sc->want)
		ck_abort_msg("case %d: status %d, want %d (%s)", _i, r,
		    sc->want, err != NULL ? err : "no error");
	if (sc->err != NULL && strstr(err, sc->err) == NULL)
		ck_abort_msg("case %d: \"%s\" not in \"%s\"", _i, sc->err,
		    err);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	tp = xasprintf("%s/transcript", dir);
	tr = slurp(tp);
	if (sc->sent != NULL && strstr(tr, sc->sent) == NULL)
		ck_abort_msg("case %d: \"%s\" not sent: %s", _i, sc->sent, tr);
	if (r == PM_OK) {
		/* CRLF and dot-stuffing on the wire. */
		ck_assert_ptr_nonnull(strstr(tr, "\r\n\r\n..dot\r\n.\r\n"));
	}
	if (sc->rcpt != NULL)
		ck_assert_ptr_null(strstr(tr, "Subject"));
	free(tr);
	free(tp);
	free(err);
	tacct.timeout = 0;
}
END_TEST

/*
 * A fault injector for one LMTP session carrying several messages: a
 * scripted peer on dir/batch.sock (no real MTA answers 421 or hangs up
 * between two given messages on demand).  It answers up to three
 * connections in turn; per message (counted over all connections) it
 * gives the scripted reply to the end of DATA, then does what "after"
 * says: nothing, send an unsolicited 421 and hang up (an idle timeout),
 * answer the next command with 421 and hang up (the same, as seen through
 * TCP, where the next command is sent before the hang-up is noticed), or
 * hang up silently.  Every line it reads goes to dir/transcript, each
 * connection starting with a "CONNECT" line.
 */
#define BATCH_N 4

enum { KEEP, IDLE_421, LATE_421, HANG_UP };

struct batch_script {
	int pipelining;
	const char *eod[BATCH_N];	/* NULL: 250 */
	int after[BATCH_N];
	int want[BATCH_N];		/* each message's status */
	int connections;
	const char *sent;		/* expected in the transcript, or NULL */
	const char *not_sent;		/* must not be in it, or NULL */
};

static const struct batch_script batch_cases[] = {
	/* All go over one connection, then one QUIT. */
	{ 1, { NULL, NULL, NULL, NULL }, { KEEP, KEEP, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 1, "QUIT\r\n", "RSET" },
	/* A refusal in the middle: RSET, and the session goes on. */
	{ 1, { NULL, "452 4.2.2 <alice> over quota\r\n", NULL, NULL },
	  { KEEP, KEEP, KEEP, KEEP },
	  { PM_OK, PM_ETEMP, PM_OK, PM_OK }, 1, "RSET\r\n", NULL },
	{ 0, { NULL, NULL, "550 5.6.0 <alice> refused\r\n", NULL },
	  { KEEP, KEEP, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_EDELIVER, PM_OK }, 1, "RSET\r\n", NULL },
	/* 421 as the reply to the end of DATA: that one is temporary, the
	 * next message connects again. */
	{ 1, { NULL, "421 4.3.2 shutting down\r\n", NULL, NULL },
	  { KEEP, HANG_UP, KEEP, KEEP },
	  { PM_OK, PM_ETEMP, PM_OK, PM_OK }, 2, NULL, NULL },
	/* Hung up in the middle of the reply to the end of DATA. */
	{ 1, { NULL, NULL, "250-2.0.0 <alice>\r\n", NULL },
	  { KEEP, KEEP, HANG_UP, KEEP },
	  { PM_OK, PM_OK, PM_ETEMP, PM_OK }, 2, NULL, NULL },
	/* Closed while idle between two messages, with a 421 or without:
	 * nothing of the next message was sent, it goes over a new
	 * connection and nothing fails. */
	{ 1, { NULL, NULL, NULL, NULL }, { KEEP, IDLE_421, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 2, NULL, NULL },
	{ 0, { NULL, NULL, NULL, NULL }, { IDLE_421, KEEP, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 2, NULL, NULL },
	{ 1, { NULL, NULL, NULL, NULL }, { KEEP, LATE_421, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 2, NULL, NULL },
	{ 0, { NULL, NULL, NULL, NULL }, { LATE_421, KEEP, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 2, NULL, NULL },
	{ 1, { NULL, NULL, NULL, NULL }, { KEEP, KEEP, HANG_UP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 2, NULL, NULL },
	/* Closed while idle twice: a new connection each time. */
	{ 1, { NULL, NULL, NULL, NULL }, { IDLE_421, IDLE_421, KEEP, KEEP },
	  { PM_OK, PM_OK, PM_OK, PM_OK }, 3, NULL, NULL },
};

/* Serve connections on fd as sc says; the child's body. */
static void
batch_serve(const struct batch_script *sc, int fd, FILE *tr)
{
	char line[8192];
	int cfd, conn, msg = 0, quit = 0, after;

	for (conn = 0; conn < 3 && !quit; conn++) {
		if ((cfd = accept(fd, NULL, NULL)) < 0)
			_exit(1);
		fputs("CONNECT\n", tr);
		inj_put(cfd, "220 batch LMTP\r\n");
		after = KEEP;
		while ((after == KEEP || after == LATE_421) &&
		    inj_line(cfd, line, sizeof line) > 0) {
			if (after == LATE_421) {
				/* Not logged: the MTA never took it.  Read
				 * what was pipelined with it first (unread
				 * bytes at close make the reader's side
				 * fail with ECONNRESET on a unix socket). */
				while (sc->pipelining &&
				    strcmp(line, "DATA\r\n") != 0 &&
				    inj_line(cfd, line, sizeof line) > 0)
					;
				inj_put(cfd, "421 4.4.2 idle too long\r\n");
				break;
			}
			fputs(line, tr);
			if (strncmp(line, "LHLO ", 5) == 0)
				inj_put(cfd, sc->pipelining ?
				    "250-batch\r\n250 PIPELINING\r\n" :
				    "250 batch\r\n");
			else if (strcmp(line, "DATA\r\n") == 0) {
				inj_put(cfd, "354 go on\r\n");
				while (inj_line(cfd, line, sizeof line) > 0 &&
				    strcmp(line, ".\r\n") != 0)
					fputs(line, tr);
				fputs(".\r\n", tr);
				if (msg >= BATCH_N)
					_exit(1);
				inj_put(cfd, sc->eod[msg] != NULL ?
				    sc->eod[msg] : "250 2.0.0 ok\r\n");
				after = sc->after[msg++];
				if (after == IDLE_421)
					inj_put(cfd, "421 4.4.2 idle too "
					    "long\r\n");
			} else if (strcmp(line, "QUIT\r\n") == 0) {
				inj_put(cfd, "221 bye\r\n");
				quit = 1;
				break;
			} else
				inj_put(cfd, "250 ok\r\n");	/* MAIL, RCPT, RSET */
		}
		close(cfd);
	}
	_exit(quit ? 0 : 1);
}

/* Start the batch injector for script sc; its pid. */
static pid_t
batch_injector(const struct batch_script *sc, char **path_r)
{
	struct sockaddr_un sun;
	char *p;
	FILE *tr;
	pid_t pid;
	int fd;

	*path_r = xasprintf("%s/batch.sock", dir);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(*path_r), sizeof sun.sun_path);
	memcpy(sun.sun_path, *path_r, strlen(*path_r));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid > 0) {
		close(fd);
		return pid;
	}
	p = xasprintf("%s/transcript", dir);
	if ((tr = fopen(p, "w")) == NULL)
		_exit(1);
	setvbuf(tr, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	batch_serve(sc, fd, tr);
	_exit(1);
}

/* Occurrences of s in text. */
static int
count_str(const char *text, const char *s)
{
	int n = 0;

	while ((text = strstr(text, s)) != NULL) {
		n++;
		text += strlen(s);
	}
	return n;
}

/*
 * SMTP/LMTP keeps one session for a batch: each message is answered
 * where the script says, a refused one is followed by RSET and the next
 * goes over the same connection; a 421 or a hang-up fails only the
 * message in flight, and a connection the MTA closed while idle is
 * replaced without failing the next message.
 */
START_TEST(test_lmtp_batch)
{
	const struct batch_script *sc = &batch_cases[_i];
	struct deliver *d;
	char *path, *err = NULL, *tp, *tr, *msg, *subj;
	pid_t pid;
	int i, r, st;

	tacct.deliver_kind = DELIVER_LMTP;
	tacct.timeout = 5;
	pid = batch_injector(sc, &path);
	tacct.deliver_path = path;
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (i = 0; i < BATCH_N; i++) {
		msg = xasprintf("Return-Path: <carol@example.org>\n"
		    "Subject: m%d\n\n.dot %d\n", i, i);
		r = deliver_one(d, msg, &err);
		free(msg);
		if (r != sc->want[i])
			ck_abort_msg("case %d, message %d: status %d, want %d "
			    "(%s)", _i, i, r, sc->want[i],
			    err != NULL ? err : "no error");
		free(err);
		err = NULL;
	}
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "case %d: the injector saw no QUIT", _i);
	tp = xasprintf("%s/transcript", dir);
	tr = slurp(tp);
	if (count_str(tr, "CONNECT\n") != sc->connections)
		ck_abort_msg("case %d: %d connections, want %d:\n%s", _i,
		    count_str(tr, "CONNECT\n"), sc->connections, tr);
	/* Every message was sent whole exactly once, dot-stuffed. */
	for (i = 0; i < BATCH_N; i++) {
		subj = xasprintf("Subject: m%d\r\n\r\n..dot %d\r\n.\r\n", i, i);
		ck_assert_msg(count_str(tr, subj) == 1, "case %d: message %d "
		    "sent %d times:\n%s", _i, i, count_str(tr, subj), tr);
		free(subj);
	}
	/* And MAIL once per message: none went to a connection that the
	 * injector had closed. */
	ck_assert_int_eq(count_str(tr, "MAIL FROM:"), BATCH_N);
	if (sc->sent != NULL && strstr(tr, sc->sent) == NULL)
		ck_abort_msg("case %d: \"%s\" not sent:\n%s", _i, sc->sent, tr);
	if (sc->not_sent != NULL && strstr(tr, sc->not_sent) != NULL)
		ck_abort_msg("case %d: \"%s\" sent:\n%s", _i, sc->not_sent,
		    tr);
	free(tr);
	free(tp);
	tacct.timeout = 0;
}
END_TEST

/* --- DATA encoding: no bare CR, no NUL, dots stuffed ----------------------- */

/* bytes[0..len) with control bytes escaped, for a failure message. */
static char *
escaped(const char *bytes, size_t len)
{
	char *out = xmalloc(len * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)bytes[i];

		if (c == '\r')
			o += sprintf(o, "\\r");
		else if (c == '\n')
			o += sprintf(o, "\\n");
		else if (c < 0x20 || c > 0x7e || c == '\\')
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/*
 * What the stage hands a target (LF line ends; a CR here is a bare CR of
 * the message) and what DATA must carry for it.  Lengths are explicit:
 * the inputs hold NUL bytes.
 */
static const struct {
	const char *in;
	size_t inlen;
	const char *out;
} encode_cases[] = {
#define ENC(i, o) { i, sizeof i - 1, o }
	ENC("a\rb", "a\r\nb"),
	ENC("\r.\r", "\r\n..\r\n"),		/* <CR>.<CR> */
	ENC("x\r\n.\r", "x\r\n\r\n..\r\n"),	/* CR before a line end */
	ENC("\n.\n", "\r\n..\r\n"),
	ENC(".\n.\r.", "..\r\n..\r\n.."),
	ENC("a\0b\n\0.x", "ab\r\n..x"),	/* NUL dropped, then stuffed */
	ENC("\r\0.\r", "\r\n..\r\n"),
	ENC("\0\0\0", ""),
	ENC("x\r", "x\r\n"),			/* CR at the very end */
	ENC("a.b\n..\n", "a.b\r\n...\r\n"),
	ENC("\r\r\n\n", "\r\n\r\n\r\n\r\n"),
#undef ENC
};

/* Encode in[0..len) cut at the positions cuts[0..ncuts) (ascending). */
static size_t
encode_split(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    char *out)
{
	size_t from = 0, o = 0, k;
	int bol = 1;

	for (k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : len;

		o += deliver_smtp_encode(&bol, in + from, to - from, out + o);
		from = to;
	}
	return o;
}

/* The DATA encoder gives the same exact bytes for each hostile form
 * however the input is cut: once, twice (at every pair of positions) or
 * byte by byte. */
START_TEST(test_smtp_encode)
{
	const char *in = encode_cases[_i].in, *want = encode_cases[_i].out;
	size_t len = encode_cases[_i].inlen, cuts[16], i, j, n;
	char out[64], *e1, *e2;

	ck_assert_uint_le(len, 16);
	for (i = 0; i <= len; i++)
		for (j = i; j <= len; j++) {
			cuts[0] = i;
			cuts[1] = j;
			n = encode_split(in, len, cuts, 2, out);
			if (n == strlen(want) && memcmp(out, want, n) == 0)
				continue;
			e1 = escaped(in, len);
			e2 = escaped(out, n);
			ck_abort_msg("\"%s\" cut at %zu and %zu: \"%s\"", e1,
			    i, j, e2);
		}
	for (i = 0; i < len; i++)
		cuts[i] = i + 1;
	n = encode_split(in, len, cuts, len, out);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert_mem_eq(out, want, n);
}
END_TEST

/*
 * Whole messages as the server sends them (CRLF, bare CR, bare LF, NUL)
 * and the DATA the MTA must get for each, through the stage (its CRLF to
 * LF filter holds a CR at the end of a chunk) and the LMTP target: every
 * line ends in CRLF, no NUL, dots stuffed, and the end of DATA only where
 * the message ends.
 */
static const struct {
	const char *in;
	size_t inlen;
	const char *data;
} data_cases[] = {
#define DAT(i, o) { "Subject: s\r\n\r\n" i, sizeof "Subject: s\r\n\r\n" i - 1, \
	"Subject: s\r\n\r\n" o ".\r\n" }
	DAT("a\rb\r\n", "a\r\nb\r\n"),
	DAT("x\r.\rMAIL FROM:<e@x>\r\n", "x\r\n..\r\nMAIL FROM:<e@x>\r\n"),
	DAT("x\r\n.\r", "x\r\n..\r\n"),
	DAT("x\n.\ny\n", "x\r\n..\r\ny\r\n"),
	DAT("n\0ul\0\r\n\0.\r\n", "nul\r\n..\r\n"),
	DAT("cr\r", "cr\r\n"),
	DAT("x\r\r\n.\r\n", "x\r\n\r\n..\r\n"),
	DAT(".\r\n.", "..\r\n..\r\n"),
	DAT("no end", "no end\r\n"),
#undef DAT
};

/* The reply injector with every reply a plain success. */
static const struct reply_script plain_script;

/* The DATA of one message in the transcript at *pos (after "DATA\r\n"),
 * compared with want; *pos moves past it.  A failure shows both from a
 * little before the first difference. */
static void
assert_data(const char **pos, const char *want, const char *what)
{
	const char *p = strstr(*pos, "DATA\r\n");
	size_t at = 0, from, n;
	char *e1, *e2;

	ck_assert_msg(p != NULL, "%s: not sent", what);
	p += 6;
	while (want[at] != '\0' && p[at] == want[at])
		at++;
	if (want[at] != '\0') {
		from = at > 20 ? at - 20 : 0;
		n = strlen(want + from) < 60 ? strlen(want + from) : 60;
		e1 = escaped(want + from, n);
		n = strlen(p + from) < 60 ? strlen(p + from) : 60;
		e2 = escaped(p + from, n);
		ck_abort_msg("%s: DATA from byte %zu is \"%s\", want \"%s\"",
		    what, from, e2, e1);
	}
	*pos = p + at;
}

/* Open an LMTP target on the reply injector (plain replies); its pid. */
static pid_t
data_session(struct deliver **d_r, struct deliver_info *info)
{
	char *path, *err = NULL;
	pid_t pid;

	tacct.deliver_kind = DELIVER_LMTP;
	tacct.timeout = 5;
	pid = reply_injector(&plain_script, &path);
	tacct.deliver_path = path;
	memset(info, 0, sizeof *info);
	info->account = "test";
	info->uid = "9";
	ck_assert_int_eq(deliver_open(&tacct, d_r, &err), PM_OK);
	return pid;
}

/* Close the session, wait for the injector: its transcript (malloc'd). */
static char *
data_transcript(struct deliver *d, pid_t pid)
{
	char *tp, *tr;
	int st;

	deliver_close(d);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	tp = xasprintf("%s/transcript", dir);
	tr = slurp(tp);
	free(tp);
	tacct.timeout = 0;
	return tr;
}

/* Deliver msg[0..len) cut at i and j, then at every byte, as messages of
 * one LMTP session; each arrives as data_cases says, whole. */
START_TEST(test_smtp_data_normalised)
{
	const char *msg = data_cases[_i].in, *want = data_cases[_i].data;
	size_t len = data_cases[_i].inlen, i, j, k;
	struct deliver_info info;
	struct deliver_msg *m;
	struct deliver *d;
	char *err = NULL, *tr, what[64];
	const char *pos;
	pid_t pid;

	pid = data_session(&d, &info);
	for (i = 0; i <= len; i++)
		for (j = i; j <= len; j++) {
			ck_assert_int_eq(deliver_begin(d, &info, &m, &err),
			    PM_OK);
			ck_assert_int_eq(deliver_write(m, msg, i, &err), PM_OK);
			ck_assert_int_eq(deliver_write(m, msg + i, j - i, &err),
			    PM_OK);
			ck_assert_int_eq(deliver_write(m, msg + j, len - j,
			    &err), PM_OK);
			ck_assert_msg(deliver_finish(m, &err) == PM_OK, "%s",
			    err);
		}
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	for (k = 0; k < len; k++)
		ck_assert_int_eq(deliver_write(m, msg + k, 1, &err), PM_OK);
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	tr = data_transcript(d, pid);
	pos = tr;
	for (i = 0; i <= len; i++)
		for (j = i; j <= len; j++) {
			snprintf(what, sizeof what, "cut at %zu and %zu", i, j);
			assert_data(&pos, want, what);
		}
	assert_data(&pos, want, "byte by byte");
	ck_assert_str_eq(pos, "QUIT\r\n");
	free(tr);
}
END_TEST

/* A hostile form where the stage hands its 64 KB buffer to the target:
 * the CR of "<CR>.<CR>" as the last byte of one write() and the dot as the
 * first of the next, and every offset around it. */
START_TEST(test_smtp_data_buffer_edge)
{
	static const char hostile[] = "\r.\r\0x\r\n";
	size_t pad, base = 65536 - 4;
	struct deliver_info info;
	struct deliver_msg *m;
	struct deliver *d;
	char *err = NULL, *tr, *msg, *want, what[64];
	const char *pos;
	size_t len;
	pid_t pid;

	msg = xmalloc(16 + base + 8 + sizeof hostile);
	want = xmalloc(16 + base + 8 + 32);
	pid = data_session(&d, &info);
	for (pad = base; pad <= base + 8; pad++) {
		len = (size_t)sprintf(msg, "Subject: s\r\n\r\n");
		memset(msg + len, 'x', pad);
		len += pad;
		memcpy(msg + len, hostile, sizeof hostile - 1);
		len += sizeof hostile - 1;
		ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
		/* Cut the input at the same place: the stage holds the CR. */
		ck_assert_int_eq(deliver_write(m, msg, len - 6, &err), PM_OK);
		ck_assert_int_eq(deliver_write(m, msg + len - 6, 6, &err),
		    PM_OK);
		ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	}
	tr = data_transcript(d, pid);
	pos = tr;
	for (pad = base; pad <= base + 8; pad++) {
		len = (size_t)sprintf(want, "Subject: s\r\n\r\n");
		memset(want + len, 'x', pad);
		len += pad;
		strcpy(want + len, "\r\n..\r\nx\r\n.\r\n");
		snprintf(what, sizeof what, "%zu bytes before", pad);
		assert_data(&pos, want, what);
	}
	ck_assert_str_eq(pos, "QUIT\r\n");
	free(tr);
	free(msg);
	free(want);
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

/* --- threads of one process, one target ---------------------------------- */

#define DT_THREADS	4

/* The body line i of message n of thread t, as written (CRLF) or as the
 * mbox must hold it (LF). */
static char *
mt_line(int t, int n, int i, int crlf)
{
	return xasprintf("%d-%d line %05d of a message that must stay whole"
	    "%s", t, n, i, crlf ? "\r\n" : "\n");
}

/* One account's thread and what it delivers. */
struct dt_arg {
	int		 t;
	struct account	 a;		/* its own copy of tacct */
	int		 messages;	/* "X-Id: t-n", then lines mt_line()s */
	int		 lines;
	int		 sync_every;	/* messages; 0: once at the end */
	pthread_barrier_t *start;
	int		 rc;
	char		*err;
};

/* A thread: its messages into the shared target, each written a line at
 * a time so that an unguarded append interleaves. */
static void *
dt_deliver(void *arg)
{
	struct dt_arg *x = arg;
	struct deliver_info info;
	struct deliver *d;
	struct deliver_msg *m;
	char *text;
	int n, i, r;

	test_info(&info, "1");
	pthread_barrier_wait(x->start);
	if ((r = deliver_open(&x->a, &d, &x->err)) != PM_OK) {
		x->rc = r;
		return NULL;
	}
	for (n = 0; n < x->messages && r == PM_OK; n++) {
		if ((r = deliver_begin(d, &info, &m, &x->err)) != PM_OK)
			break;
		text = xasprintf("X-Id: %d-%d\r\n\r\n", x->t, n);
		r = deliver_write(m, text, strlen(text), &x->err);
		free(text);
		for (i = 0; i < x->lines && r == PM_OK; i++) {
			text = mt_line(x->t, n, i, 1);
			r = deliver_write(m, text, strlen(text), &x->err);
			free(text);
		}
		if (r == PM_OK)
			r = deliver_finish(m, &x->err);
		else
			deliver_abort(m);
		if (r == PM_OK && x->sync_every > 0 &&
		    n % x->sync_every == x->sync_every - 1)
			r = deliver_sync(d, &x->err);
	}
	if (r == PM_OK)
		r = deliver_sync(d, &x->err);
	deliver_close(d);
	x->rc = r;
	return NULL;
}

/* Run DT_THREADS dt_deliver threads at once into tacct's target, one
 * account each; assert that every one succeeded. */
static void
run_deliver_threads(int messages, int lines, int sync_every)
{
	struct dt_arg args[DT_THREADS];
	pthread_t tid[DT_THREADS];
	pthread_barrier_t start;
	int t;

	pthread_barrier_init(&start, NULL, DT_THREADS);
	for (t = 0; t < DT_THREADS; t++) {
		memset(&args[t], 0, sizeof args[t]);
		args[t].t = t;
		args[t].a = tacct;
		args[t].messages = messages;
		args[t].lines = lines;
		args[t].sync_every = sync_every;
		args[t].start = &start;
		ck_assert_int_eq(pthread_create(&tid[t], NULL, dt_deliver,
		    &args[t]), 0);
	}
	for (t = 0; t < DT_THREADS; t++)
		pthread_join(tid[t], NULL);
	pthread_barrier_destroy(&start);
	for (t = 0; t < DT_THREADS; t++)
		ck_assert_msg(args[t].rc == PM_OK, "thread %d: %s", t,
		    args[t].err != NULL ? args[t].err : "?");
}

#define MT_MESSAGES	30
#define MT_LINES	1500	/* about 90 KB a message, two writes */

/* DT_THREADS threads of one process, one account each, one mbox: every
 * message is in the file once, whole and uninterleaved.  Without the
 * in-process gate the threads share one dotlock file name and break each
 * other's locks. */
START_TEST(test_mbox_threads)
{
	int seen[DT_THREADS][MT_MESSAGES];
	char *data, *p, *want, *line;
	int t, n, i, count = 0;

	tacct.deliver_kind = DELIVER_MBOX;
	tacct.deliver_path = xasprintf("%s/mbox", dir);
	tacct.lock_timeout = 30;
	run_deliver_threads(MT_MESSAGES, MT_LINES, 0);

	memset(seen, 0, sizeof seen);
	data = mbox_undated(tacct.deliver_path);
	for (p = data; *p != '\0'; count++) {
		ck_assert_msg(strncmp(p, "From MAILER-DAEMON DATE\nX-Id: ",
		    30) == 0, "message %d starts with \"%.60s\"", count, p);
		ck_assert_int_eq(sscanf(p + 30, "%d-%d", &t, &n), 2);
		ck_assert(t >= 0 && t < DT_THREADS && n >= 0 &&
		    n < MT_MESSAGES);
		ck_assert_int_eq(seen[t][n]++, 0);
		want = xasprintf("From MAILER-DAEMON DATE\nX-Id: %d-%d\n\n", t,
		    n);
		ck_assert(strncmp(p, want, strlen(want)) == 0);
		p += strlen(want);
		free(want);
		for (i = 0; i < MT_LINES; i++) {
			line = mt_line(t, n, i, 0);
			ck_assert_msg(strncmp(p, line, strlen(line)) == 0,
			    "message %d-%d line %d: \"%.60s\"", t, n, i, p);
			p += strlen(line);
			free(line);
		}
		ck_assert_msg(*p == '\n', "message %d-%d: no blank line "
		    "after it", t, n);
		p++;
	}
	ck_assert_int_eq(count, DT_THREADS * MT_MESSAGES);
	free(data);
	/* No lock left behind. */
	p = xasprintf("%s.lock", tacct.deliver_path);
	ck_assert_int_ne(access(p, F_OK), 0);
	free(p);
}
END_TEST

#define MD_MESSAGES	50

/* DT_THREADS threads of one process, one account each, one Maildir: every
 * message lands in new/ under a name of its own (a repeated name would
 * make one rename replace another's message). */
START_TEST(test_maildir_threads)
{
	int seen[DT_THREADS][MD_MESSAGES];
	struct dirent *de;
	DIR *dp;
	char *newdir, *p, *data;
	int t, n, count = 0;

	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
	run_deliver_threads(MD_MESSAGES, 1, 10);

	memset(seen, 0, sizeof seen);
	newdir = xasprintf("%s/new", tacct.deliver_path);
	dp = opendir(newdir);
	ck_assert_ptr_nonnull(dp);
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", newdir, de->d_name);
		data = slurp(p);
		ck_assert_int_eq(sscanf(data, "X-Id: %d-%d", &t, &n), 2);
		ck_assert(t >= 0 && t < DT_THREADS && n >= 0 &&
		    n < MD_MESSAGES);
		ck_assert_int_eq(seen[t][n]++, 0);
		count++;
		free(data);
		free(p);
	}
	closedir(dp);
	free(newdir);
	ck_assert_int_eq(count, DT_THREADS * MD_MESSAGES);
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
	tcase_add_loop_test(tc, test_smtp_encode, 0,
	    sizeof encode_cases / sizeof encode_cases[0]);
	suite_add_tcase(s, tc);

	tc = tcase_create("targets");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_mbox_quoting);
	tcase_add_test(tc, test_mbox_abort_and_separator);
	tcase_add_test(tc, test_mbox_locked);
	tcase_add_loop_test(tc, test_mbox_lock_holder, 0, HOLDER_NCASES);
	tcase_add_loop_test(tc, test_mbox_partial_cut, 0,
	    sizeof partial_cases / sizeof partial_cases[0]);
	tcase_add_loop_test(tc, test_mbox_refused, 0, MB_NCASES);
	tcase_add_test(tc, test_mbox_owner_as_root);
	tcase_add_test(tc, test_mbox_group_commit);
	tcase_add_test(tc, test_mbox_unsynced_close);
	tcase_add_test(tc, test_mbox_sync_fails);
	tcase_add_test(tc, test_mbox_sync_in_flight_and_rotated);
	tcase_add_test(tc, test_maildir_group_commit);
	tcase_add_test(tc, test_extra_headers);
	tcase_add_test(tc, test_huge_header);
	tcase_add_test(tc, test_mda_errors);
	tcase_add_test(tc, test_mda_timeout);
	tcase_add_test(tc, test_mda_spool);
	tcase_add_test(tc, test_mda_spool_fails);
	tcase_add_test(tc, test_lmtp_unix_stall);
	tcase_add_test(tc, test_bad_recipient);
	tcase_add_loop_test(tc, test_smtp_data_normalised, 0,
	    sizeof data_cases / sizeof data_cases[0]);
	tcase_add_test(tc, test_smtp_data_buffer_edge);
	tcase_add_loop_test(tc, test_reply_parser, 0,
	    (int)(sizeof reply_cases / sizeof reply_cases[0]));
	tcase_add_loop_test(tc, test_lmtp_batch, 0,
	    (int)(sizeof batch_cases / sizeof batch_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mbox_threads);
	tcase_add_test(tc, test_maildir_threads);
	suite_add_tcase(s, tc);
	return s;
}
