/* Maildir delivery through the delivery stage: CRLF to LF across chunk
 * boundaries, tmp/ -> new/, modes, aborts, unusable targets and symbolic
 * links where the Maildir or its directories should be. */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "suites.h"
#include "util.h"

static char *dir;
static struct account tacct;

static void
setup(void)
{
	dir = test_tmpdir();
	memset(&tacct, 0, sizeof tacct);
	tacct.name = "test";
	tacct.deliver_kind = DELIVER_MAILDIR;
	tacct.deliver_path = xasprintf("%s/Maildir", dir);
}

static void
teardown(void)
{
	test_rm_rf(dir);
	free(dir);
	free(tacct.deliver_path);
}

/* The single file in SUB of the Maildir (NULL if there is not exactly
 * one); *count_r gets the number of entries. */
static char *
only_file(const char *sub, int *count_r)
{
	char *d = xasprintf("%s/%s", tacct.deliver_path, sub), *found = NULL;
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
	*count_r = n;
	if (n != 1) {
		free(found);
		return NULL;
	}
	return found;
}

/* Deliver the chunks (NULL-terminated) as one message. */
static void
deliver_chunks(const char *const *chunks)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	for (; *chunks != NULL; chunks++)
		ck_assert_int_eq(deliver_write(m, *chunks, strlen(*chunks),
		    &err), PM_OK);
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
}

static const struct {
	const char *chunks[6];
	const char *expect;
} crlf_cases[] = {
	{ { "a\r\nb\r\n", NULL }, "a\nb\n" },
	{ { "a\r", "\nb\r", "\n", NULL }, "a\nb\n" },
	{ { "lone\rcr\r\n", NULL }, "lone\rcr\n" },
	{ { "end with cr\r", NULL }, "end with cr\r" },
	{ { "x\r", "y", NULL }, "x\ry" },
	{ { "\r", "\r", "\n", NULL }, "\r\n" },
	{ { "lf only\nstays\n", NULL }, "lf only\nstays\n" },
	{ { "", NULL }, "" },
};

START_TEST(test_crlf)
{
	char *path, *data;
	size_t len;
	int n;
	struct stat sb;

	deliver_chunks(crlf_cases[_i].chunks);
	path = only_file("new", &n);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(read_small_file(path, 1 << 20, &data, &len), 0);
	ck_assert_uint_eq(len, strlen(crlf_cases[_i].expect));
	ck_assert_mem_eq(data, crlf_cases[_i].expect, len);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(data);
	free(path);
	free(only_file("tmp", &n));
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_large_multichunk)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL, *path, *data, line[80];
	size_t len, i, expect = 0;
	int n;

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	for (i = 0; i < 20000; i++) {
		int l = snprintf(line, sizeof line, "line %zu of the body\r\n",
		    i);

		ck_assert_int_eq(deliver_write(m, line, (size_t)l, &err),
		    PM_OK);
		expect += (size_t)l - 1;
	}
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	path = only_file("new", &n);
	ck_assert_int_eq(read_small_file(path, 1 << 24, &data, &len), 0);
	ck_assert_uint_eq(len, expect);
	ck_assert_ptr_null(memchr(data, '\r', len));
	ck_assert_int_eq(memcmp(data + len - 23, "line 19999 of the body\n",
	    23), 0);
	free(data);
	free(path);
}
END_TEST

/* Random bytes, CR and LF dense, in random chunk sizes past the stage's
 * 64 KiB buffer: the Maildir file is the input with the CR of every CRLF
 * removed, byte for byte (the body moves a run between CRs at a time; the
 * header section, up to its first empty line, byte by byte). */
START_TEST(test_crlf_random)
{
	static const char alpha[] = "ab\r\n\r\n.\0";
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	size_t len = 300000 + (size_t)_i * 7919, i, k, n, olen;
	char *in = xmalloc(len), *want = xmalloc(len), *path, *data, *err =
	    NULL;
	struct deliver *d;
	struct deliver_msg *m;
	unsigned seed = 12345u + (unsigned)_i;
	int files;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		in[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
	}
	/* A header section first, so that the body path carries most. */
	memcpy(in, "Subject: r\r\n\r\n", sizeof "Subject: r\r\n\r\n" - 1);
	for (i = 0, olen = 0; i < len; i++)
		if (!(in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
			want[olen++] = in[i];
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	for (i = 0; i < len; i += n) {
		seed = seed * 1103515245u + 12345u;
		k = (seed >> 8) % 5;
		n = k == 0 ? 1 : k == 1 ? (seed >> 12) % 16 :
		    (seed >> 12) % (k == 4 ? 140000 : 9000);
		if (n > len - i)
			n = len - i;
		ck_assert_int_eq(deliver_write(m, in + i, n, &err), PM_OK);
	}
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	path = only_file("new", &files);
	ck_assert_int_eq(files, 1);
	ck_assert_int_eq(read_small_file(path, 1 << 24, &data, &k), 0);
	ck_assert_uint_eq(k, olen);
	for (i = 0; i < olen && data[i] == want[i]; i++)
		;
	ck_assert_msg(i == olen, "first difference at byte %zu of %zu", i,
	    olen);
	free(data);
	free(path);
	free(in);
	free(want);
}
END_TEST

/* Three messages of 9 MiB in one batch: each crosses the early
 * write-back hint (every 8 MiB written, a background syncfs()) once or
 * twice, with the hint thread busy or idle; every file arrives whole
 * in new/ after the batch's sync, nothing stays in tmp/. */
START_TEST(test_large_batch_early_writeback)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	size_t chunk = 1 << 16, total = (size_t)9 << 20, i, len;
	char *buf = xmalloc(chunk), *err = NULL, *d_path, *path, *data;
	struct deliver_msg *m[3];
	struct deliver *d;
	struct dirent *de;
	DIR *dp;
	int k, n = 0, tmpn, files = 0;

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (k = 0; k < 3; k++) {
		memset(buf, 'a' + k, chunk);
		for (i = 63; i < chunk; i += 64)
			buf[i] = '\n';
		ck_assert_int_eq(deliver_begin(d, &info, &m[k], &err), PM_OK);
		for (i = 0; i < total; i += chunk)
			ck_assert_int_eq(deliver_write(m[k], buf, chunk, &err),
			    PM_OK);
		ck_assert_int_eq(deliver_finish(m[k], &err), PM_OK);
	}
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	d_path = xasprintf("%s/new", tacct.deliver_path);
	ck_assert_ptr_nonnull(dp = opendir(d_path));
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", d_path, de->d_name);
		ck_assert_int_eq(read_small_file(path, 16 << 20, &data, &len),
		    0);
		ck_assert_uint_eq(len, total);
		ck_assert(data[0] >= 'a' && data[0] <= 'c');
		for (i = 0; i < len; i++)
			if (data[i] != (i % 64 == 63 ? '\n' : data[0]))
				break;
		ck_assert_uint_eq(i, len);
		n |= 1 << (data[0] - 'a');
		files++;
		free(data);
		free(path);
	}
	closedir(dp);
	ck_assert_int_eq(n, 7);
	ck_assert_int_eq(files, 3);
	free(only_file("tmp", &tmpn));
	ck_assert_int_eq(tmpn, 0);
	free(d_path);
	free(buf);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;
	int n;

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, "half a mess", 11, &err), PM_OK);
	deliver_abort(m);
	deliver_close(d);
	free(only_file("new", &n));
	ck_assert_int_eq(n, 0);
	free(only_file("tmp", &n));
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_unique_names)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;
	int i, n;

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (i = 0; i < 50; i++) {
		ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
		ck_assert_int_eq(deliver_write(m, "x\r\n", 3, &err), PM_OK);
		ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	}
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	free(only_file("new", &n));
	ck_assert_int_eq(n, 50);
}
END_TEST

/* A finished message waits in tmp/ until a sync covers it, then moves to
 * new/; one that no sync covered is gone at close.  Batches of one, two
 * (an fsync each) and many (syncfs) all arrive. */
START_TEST(test_visible_only_after_sync)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;
	int i, k, n, total = 0;
	static const int batch[] = { 1, 2, 7 };

	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < batch[k]; i++) {
			ck_assert_int_eq(deliver_begin(d, &info, &m, &err),
			    PM_OK);
			ck_assert_int_eq(deliver_write(m, "x\r\n", 3, &err),
			    PM_OK);
			ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
		}
		free(only_file("new", &n));
		ck_assert_int_eq(n, total);
		free(only_file("tmp", &n));
		ck_assert_int_eq(n, batch[k]);
		ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
		total += batch[k];
		free(only_file("new", &n));
		ck_assert_int_eq(n, total);
		free(only_file("tmp", &n));
		ck_assert_int_eq(n, 0);
	}
	/* Finished but never synced: removed at close. */
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	deliver_close(d);
	free(only_file("tmp", &n));
	ck_assert_int_eq(n, 0);
	free(only_file("new", &n));
	ck_assert_int_eq(n, total);
}
END_TEST

START_TEST(test_unusable_target)
{
	struct deliver *d;
	char *err = NULL, *file;

	file = test_write_file(dir, "plainfile", "x", 0600);
	free(tacct.deliver_path);
	tacct.deliver_path = xasprintf("%s/sub", file);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "maildir: cannot create"));
	ck_assert_ptr_nonnull(strstr(err, file));
	free(err);
	free(file);
}
END_TEST

/* Entries in directory d that do not start with a dot; -1 if d cannot
 * be read. */
static int
entries(const char *d)
{
	struct dirent *de;
	DIR *dp = opendir(d);
	int n = 0;

	if (dp == NULL)
		return -1;
	while ((de = readdir(dp)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dp);
	return n;
}

/*
 * A symbolic link as the Maildir itself (to a Maildir or to nothing), or
 * as its tmp/, new/ or cur/: refused when the target opens, and nothing
 * is written where the link points.
 */
static const char *const link_cases[] = { "", "dangling", "tmp", "new",
    "cur" };

START_TEST(test_symlink_refused)
{
	const char *which = link_cases[_i];
	char *err = NULL, *elsewhere, *p, *want;
	struct deliver *d;

	elsewhere = xasprintf("%s/elsewhere", dir);
	if (strcmp(which, "dangling") != 0)
		ck_assert_int_eq(mkdir(elsewhere, 0700), 0);
	if (*which == '\0' || strcmp(which, "dangling") == 0) {
		if (*which == '\0') {
			/* A whole Maildir behind the link. */
			p = xasprintf("%s/tmp", elsewhere);
			ck_assert_int_eq(mkdir(p, 0700), 0);
			free(p);
			p = xasprintf("%s/new", elsewhere);
			ck_assert_int_eq(mkdir(p, 0700), 0);
			free(p);
		}
		ck_assert_int_eq(symlink(elsewhere, tacct.deliver_path), 0);
		want = xasprintf("maildir: %s is a symbolic link; refusing",
		    tacct.deliver_path);
	} else {
		ck_assert_int_eq(mkdir(tacct.deliver_path, 0700), 0);
		p = xasprintf("%s/%s", tacct.deliver_path, which);
		ck_assert_int_eq(symlink(elsewhere, p), 0);
		want = xasprintf("maildir: %s is a symbolic link; refusing", p);
		free(p);
	}
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_EDELIVER);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	if (strcmp(which, "dangling") == 0)
		ck_assert_int_ne(access(elsewhere, F_OK), 0);
	else if (*which == '\0') {
		p = xasprintf("%s/tmp", elsewhere);
		ck_assert_int_eq(entries(p), 0);
		free(p);
		p = xasprintf("%s/new", elsewhere);
		ck_assert_int_eq(entries(p), 0);
		free(p);
		ck_assert_int_eq(entries(elsewhere), 2);	/* no cur/ */
	} else
		ck_assert_int_eq(entries(elsewhere), 0);
	free(want);
	free(err);
	free(elsewhere);
}
END_TEST

/* tmp/ and new/ swapped for links to another directory after the target
 * opened: the message still goes through the directories opened, and
 * nothing lands where the links point. */
START_TEST(test_swapped_after_open)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	static const char *const sub[] = { "tmp", "new" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL, *elsewhere, *p, *old;
	size_t i;

	elsewhere = xasprintf("%s/elsewhere", dir);
	ck_assert_int_eq(mkdir(elsewhere, 0700), 0);
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	for (i = 0; i < 2; i++) {
		p = xasprintf("%s/%s", tacct.deliver_path, sub[i]);
		old = xasprintf("%s/%s.old", tacct.deliver_path, sub[i]);
		ck_assert_int_eq(rename(p, old), 0);
		ck_assert_int_eq(symlink(elsewhere, p), 0);
		free(p);
		free(old);
	}
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_write(m, "Subject: x\r\n\r\nbody\r\n", 20,
	    &err), PM_OK);
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	deliver_close(d);
	ck_assert_int_eq(entries(elsewhere), 0);
	p = xasprintf("%s/new.old", tacct.deliver_path);
	ck_assert_int_eq(entries(p), 1);
	free(p);
	p = xasprintf("%s/tmp.old", tacct.deliver_path);
	ck_assert_int_eq(entries(p), 0);
	free(p);
	free(elsewhere);
}
END_TEST

/* What the visible callback saw: for each call, nth and how many files
 * new/ held then. */
static size_t seen_nth[8];
static int seen_new[8];
static size_t nseen;

static void
note_visible(void *arg, size_t nth)
{
	char *f;

	ck_assert_ptr_eq(arg, &nseen);
	ck_assert_uint_lt(nseen, 8);
	f = only_file("new", &seen_new[nseen]);
	free(f);
	seen_nth[nseen++] = nth;
}

/* sync() reports each message right after its rename into new/, in the
 * order the messages were finished, and no more once told to stop. */
START_TEST(test_reports_visible)
{
	struct deliver_info info = { .account = "test", .server = "server",
	    .mailbox = "INBOX", .uid = "1" };
	struct deliver *d;
	struct deliver_msg *m;
	char *err = NULL;
	size_t i;
	int n;

	nseen = 0;
	ck_assert_int_eq(deliver_open(&tacct, &d, &err), PM_OK);
	ck_assert_int_eq(deliver_on_visible(d, note_visible, &nseen), 1);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
		ck_assert_int_eq(deliver_write(m, "a\r\n\r\nb\r\n", 8, &err),
		    PM_OK);
		ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	}
	ck_assert_uint_eq(nseen, 0);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(nseen, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(seen_nth[i], i);
		ck_assert_int_eq(seen_new[i], (int)i + 1);
	}

	ck_assert_int_eq(deliver_on_visible(d, NULL, NULL), 1);
	ck_assert_int_eq(deliver_begin(d, &info, &m, &err), PM_OK);
	ck_assert_int_eq(deliver_finish(m, &err), PM_OK);
	ck_assert_int_eq(deliver_sync(d, &err), PM_OK);
	ck_assert_uint_eq(nseen, 3);
	free(only_file("new", &n));
	ck_assert_int_eq(n, 4);
	deliver_close(d);
}
END_TEST

Suite *
suite_maildir(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc = tcase_create("maildir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_crlf, 0,
	    (int)(sizeof crlf_cases / sizeof crlf_cases[0]));
	tcase_add_test(tc, test_large_multichunk);
	tcase_add_loop_test(tc, test_crlf_random, 0, 8);
	tcase_add_test(tc, test_large_batch_early_writeback);
	tcase_add_test(tc, test_abort_leaves_nothing);
	tcase_add_test(tc, test_unique_names);
	tcase_add_test(tc, test_visible_only_after_sync);
	tcase_add_test(tc, test_reports_visible);
	tcase_add_test(tc, test_unusable_target);
	tcase_add_loop_test(tc, test_symlink_refused, 0,
	    (int)(sizeof link_cases / sizeof link_cases[0]));
	tcase_add_test(tc, test_swapped_after_open);
	suite_add_tcase(s, tc);
	return s;
}
