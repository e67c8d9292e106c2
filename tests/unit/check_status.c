/* The status file: its format and escapes, atomic 0600 writes, coalesced
 * flushes, other runs' records kept, carried-over fields, redaction,
 * threads, and `pullmail status` with its exit statuses. */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secret.h"
#include "status.h"
#include "suites.h"
#include "util.h"

static char *dir, *path;

static void
setup(void)
{
	dir = test_tmpdir();
	path = xasprintf("%s/sub/status-x", dir);
}

static void
teardown(void)
{
	status_close();
	test_rm_rf(dir);
	free(dir);
	free(path);
}

static char *
slurp(const char *p)
{
	char *data;
	size_t len;

	ck_assert_int_eq(read_small_file(p, 1 << 20, &data, &len), 0);
	return data;
}

/* The report on names as of now: its text (malloc'd) and exit status. */
static char *
report(char *const *names, size_t n, time_t now, int *code_r)
{
	char *cap = xasprintf("%s/report", dir), *text;
	FILE *f = fopen(cap, "w+");

	ck_assert_ptr_nonnull(f);
	*code_r = status_report(path, names, n, now, f);
	fclose(f);
	text = slurp(cap);
	unlink(cap);
	free(cap);
	return text;
}

/* A pid that ran and is gone. */
static long
dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_gt(pid, 0);
	waitpid(pid, NULL, 0);
	return (long)pid;
}

START_TEST(test_write_format)
{
	char *err = NULL, *text, *want, *tmp;
	struct stat sb;

	status_open(path);
	status_account("work");
	status_set_state("work", ST_POLLING);
	status_add_delivered("work", 3);
	status_add_delivered("work", 2);
	status_set_success("work");
	status_set_error("work", "tab\there\nnew line \\ and \x01");
	status_set_token_expiry("work", 2000000000);
	status_set_backoff("work", 1900000000);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	tmp = xasprintf("%s.tmp", path);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	text = slurp(path);
	want = xasprintf("pullmail-status 1\naccount=work\tpid=%ld\t",
	    (long)getpid());
	ck_assert_msg(strncmp(text, want, strlen(want)) == 0, "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "\tstate=backing-off\t"
	    "until=1900000000\t"));
	ck_assert_ptr_nonnull(strstr(text, "\tdelivered=5\t"
	    "token_expires=2000000000\t"));
	ck_assert_ptr_nonnull(strstr(text,
	    "\terror=tab\\there\\nnew line \\\\ and \\x01\n"));
	/* One line per record: the escapes leave no raw newline. */
	ck_assert_ptr_eq(strchr(strchr(text, '\n') + 1, '\n'),
	    text + strlen(text) - 1);
	free(text);
	free(want);
	free(tmp);
}
END_TEST

/* Nothing changed: the file is not rewritten (same inode). */
START_TEST(test_coalesced)
{
	char *err = NULL;
	struct stat a, b;

	status_open(path);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	ck_assert_int_ne(access(path, F_OK), 0);	/* nothing to say */
	status_set_state("a", ST_IDLING);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	ck_assert_int_eq(stat(path, &a), 0);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	status_set_state("a", ST_IDLING);	/* no change */
	ck_assert_int_eq(status_flush(&err), PM_OK);
	ck_assert_int_eq(stat(path, &b), 0);
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	status_set_state("a", ST_POLLING);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	ck_assert_int_eq(stat(path, &b), 0);
	ck_assert_uint_ne(a.st_ino, b.st_ino);
}
END_TEST

/* Another run's record stays byte for byte; ours replaces its old one and
 * takes over its last success, error and token expiry; forget drops. */
START_TEST(test_merge)
{
	const char *other = "account=other\tpid=1\tstarted=5\tupdated=6\t"
	    "state=idle\tuntil=0\tsuccess=7\tdelivered=8\ttoken_expires=9\t"
	    "error_at=0\tfuture_key=kept?\n";
	char *err = NULL, *text, *old, *sub = xasprintf("%s/sub", dir);

	ck_assert_int_eq(mkdir(sub, 0700), 0);
	old = xasprintf("pullmail-status 1\n%saccount=mine\tpid=1\t"
	    "started=1\tstate=needs-human\tsuccess=1234\terror_at=1300\t"
	    "error=old\\tone\ttoken_expires=4321\tdelivered=99\n", other);
	free(test_write_file(sub, "status-x", old, 0600));
	status_open(path);
	status_account("mine");
	status_account("gone");
	ck_assert_int_eq(status_flush(&err), PM_OK);
	text = slurp(path);
	/* Unknown keys of others' records are not kept, known ones are. */
	ck_assert_ptr_nonnull(strstr(text, "account=other\tpid=1\tstarted=5\t"
	    "updated=6\tstate=idle\tuntil=0\tsuccess=7\tdelivered=8\t"
	    "token_expires=9\terror_at=0\n"));
	ck_assert_ptr_nonnull(strstr(text, "account=mine\t"));
	ck_assert_ptr_nonnull(strstr(text, "\tstate=idle\tuntil=0\t"
	    "success=1234\tdelivered=0\ttoken_expires=4321\terror_at=1300\t"
	    "error=old\\tone\n"));
	ck_assert_ptr_nonnull(strstr(text, "account=gone\t"));
	ck_assert_ptr_null(strstr(text, "needs-human"));
	free(text);
	status_forget("gone");
	ck_assert_int_eq(status_flush(&err), PM_OK);
	text = slurp(path);
	ck_assert_ptr_null(strstr(text, "account=gone"));
	ck_assert_ptr_nonnull(strstr(text, "account=other"));
	ck_assert_ptr_nonnull(strstr(text, "account=mine"));
	free(text);
	free(old);
	free(sub);
}
END_TEST

START_TEST(test_redacted)
{
	struct pm_secret *s = secret_from_str("Zm9vYmFyc2VjcmV0dG9rZW4x");
	char *err = NULL, *text;

	secret_register(s);
	status_open(path);
	status_set_error("a", "AUTHENTICATE failed for "
	    "Zm9vYmFyc2VjcmV0dG9rZW4x");
	ck_assert_int_eq(status_flush(&err), PM_OK);
	text = slurp(path);
	ck_assert_ptr_null(strstr(text, "Zm9vYmFyc2VjcmV0dG9rZW4x"));
	ck_assert_ptr_nonnull(strstr(text, "error=AUTHENTICATE failed for "
	    "<redacted>"));
	free(text);
	secret_free(s);
}
END_TEST

/* An unwritable place: an error naming the file, and the change is
 * written once it can be. */
START_TEST(test_write_error)
{
	char *err = NULL, *text, *sub = xasprintf("%s/sub", dir);

	ck_assert_int_eq(mkdir(sub, 0500), 0);
	status_open(path);
	status_set_state("a", ST_HUMAN);
	if (geteuid() != 0) {
		ck_assert_int_eq(status_flush(&err), PM_ETEMP);
		ck_assert_ptr_nonnull(strstr(err, path));
		free(err);
		err = NULL;
	}
	chmod(sub, 0700);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	text = slurp(path);
	ck_assert_ptr_nonnull(strstr(text, "state=needs-human"));
	free(text);
	free(sub);
}
END_TEST

static void *
hammer(void *arg)
{
	char name[16], *err = NULL;
	int i;

	snprintf(name, sizeof name, "acct%ld", (long)(intptr_t)arg);
	for (i = 0; i < 200; i++) {
		status_set_state(name, i % 2 ? ST_IDLING : ST_POLLING);
		status_add_delivered(name, 1);
		if (i % 20 == 0 && status_flush(&err) != PM_OK)
			abort();
	}
	return NULL;
}

/* Eight threads changing and flushing at once: every record there, with
 * its count. */
START_TEST(test_threads)
{
	pthread_t t[8];
	char *err = NULL, *text, want[64];
	long i;

	status_open(path);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer,
		    (void *)(intptr_t)i), 0);
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(status_flush(&err), PM_OK);
	text = slurp(path);
	for (i = 0; i < 8; i++) {
		snprintf(want, sizeof want, "account=acct%ld\t", i);
		ck_assert_ptr_nonnull(strstr(text, want));
	}
	ck_assert_ptr_nonnull(strstr(text, "state=idling\tuntil=0\t"));
	ck_assert_ptr_null(strstr(text, "state=polling"));
	free(text);
}
END_TEST

/* The line for systemctl status. */
START_TEST(test_summary)
{
	char *text;

	status_open(path);
	text = status_summary();
	ck_assert_str_eq(text, "0 accounts");
	free(text);
	status_account("a");
	text = status_summary();
	ck_assert_str_eq(text, "1 account: 1 idle");
	free(text);
	status_set_state("b", ST_IDLING);
	status_set_state("c", ST_IDLING);
	status_set_backoff("d", 0);
	status_set_state("e", ST_HUMAN);
	status_forget("a");
	text = status_summary();
	ck_assert_str_eq(text, "4 accounts: 2 idling, 1 backing off, "
	    "1 needing a human");
	free(text);
}
END_TEST

/* The report: what it says and its exit status, case by case. */
static const struct {
	const char *record;	/* %ld: a pid; NULL: no file */
	int live;		/* the pid runs (ours) or is gone */
	int code;
	const char *says[3];
} report_cases[] = {
	{ NULL, 1, 3, { "no status yet:", "does not exist" } },
	{ "account=a\tpid=%ld\tstate=idle\tsuccess=%ld\tstarted=%ld", 1, 0,
	  { "  state:         idle, waiting for the next poll\n",
	    "  last success:  ", " (2 min ago)\n" } },
	{ "account=a\tpid=%ld\tstate=idle\tsuccess=%ld\tstarted=%ld", 0, 0,
	  { "  state:         idle since ", "no longer running",
	    "  last error:    none\n" } },
	{ "account=a\tpid=%ld\tstate=needs-human\tsuccess=%ld\tstarted=%ld\t"
	  "error_at=%ld\terror=refresh token revoked: run pullmail authorize"
	  " a", 0, 2, { "NEEDS A HUMAN", "refresh token revoked",
	  "  last success:  " } },
	{ "account=a\tpid=%ld\tstate=backing-off\tuntil=0\tsuccess=%ld\t"
	  "started=%ld\terror_at=%ld\terror=connection refused", 0, 1,
	  { "backing off: the next run tries again",
	    " (1 min ago): connection refused\n" } },
	{ "account=a\tpid=%ld\tstate=polling\tsuccess=%ld\tstarted=%ld", 0, 1,
	  { "polling, but its process is gone" } },
	{ "account=a\tpid=%ld\tstate=idling\tsuccess=%ld\tstarted=%ld", 1, 0,
	  { "idling (IMAP IDLE)\n", "pid ", ", running, at " } },
	/* A failure after the last success is a warning even when idle. */
	{ "account=a\tpid=%ld\tstate=idle\tsuccess=%ld\tstarted=%ld\t"
	  "error_at=%ld\terror=x", 0, 1, { "last error:" } },
	{ "account=b\tpid=%ld\tstate=idle\tsuccess=%ld\tstarted=%ld", 0, 3,
	  { "a\n  state:         no status yet" } },
	{ "account=a\tpid=%ld\tstate=idle\tsuccess=0\tstarted=%ld\t"
	  "token_expires=%ld\tdelivered=%ld", 1, 0,
	  { "last success:  never\n", "  delivered:     ",
	    "  token expires: " } },
};

START_TEST(test_report)
{
	time_t now = 1800000000;
	char *const names[] = { "a" };
	/* Forked before anything is allocated: the child leaks nothing. */
	long pid = report_cases[_i].live ? (long)getpid() : dead_pid();
	char *rec, *file, *text, *sub = xasprintf("%s/sub", dir);
	int code;
	size_t k;

	ck_assert_int_eq(mkdir(sub, 0700), 0);
	if (report_cases[_i].record != NULL) {
		/* The records are the table's formats, checked by hand. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		rec = xasprintf(report_cases[_i].record, pid,
		    (long)(now - 120), (long)(now - 3600), (long)(now - 60));
#pragma GCC diagnostic pop
		file = xasprintf("pullmail-status 1\n%s\n", rec);
		free(test_write_file(sub, "status-x", file, 0600));
		free(rec);
		free(file);
	}
	text = report(names, 1, now, &code);
	ck_assert_int_eq(code, report_cases[_i].code);
	for (k = 0; k < 3 && report_cases[_i].says[k] != NULL; k++)
		ck_assert_msg(strstr(text, report_cases[_i].says[k]) != NULL,
		    "\"%s\" not in:\n%s", report_cases[_i].says[k], text);
	free(text);
	free(sub);
}
END_TEST

/* Token expiry said in both directions; several accounts, worst wins. */
START_TEST(test_report_several)
{
	time_t now = 1800000000;
	char *const names[] = { "a", "b", "c" };
	char *file, *text, *sub = xasprintf("%s/sub", dir);
	int code;

	ck_assert_int_eq(mkdir(sub, 0700), 0);
	file = xasprintf("pullmail-status 1\n"
	    "account=a\tpid=%ld\tstate=idle\ttoken_expires=%ld\n"
	    "account=b\tpid=%ld\tstate=needs-human\ttoken_expires=%ld\n",
	    (long)getpid(), (long)(now + 3540), (long)getpid(),
	    (long)(now - 90000));
	free(test_write_file(sub, "status-x", file, 0600));
	text = report(names, 3, now, &code);
	ck_assert_int_eq(code, 2);
	ck_assert_ptr_nonnull(strstr(text, " (in 59 min)\n"));
	ck_assert_ptr_nonnull(strstr(text, " (1 d 1 h ago), expired"));
	ck_assert_ptr_nonnull(strstr(text, "\nc\n  state:         no status"));
	free(text);
	free(file);
	free(sub);
}
END_TEST

/* Not a status file: a warning and 3, no crash. */
START_TEST(test_report_garbage)
{
	char *const names[] = { "a" };
	char *text, *sub = xasprintf("%s/sub", dir);
	int code;

	ck_assert_int_eq(mkdir(sub, 0700), 0);
	free(test_write_file(sub, "status-x", "{\"json\": 1}\n", 0600));
	text = report(names, 1, 0, &code);
	ck_assert_int_eq(code, 3);
	ck_assert_str_eq(text, "");
	free(text);
	free(sub);
}
END_TEST

Suite *
suite_status(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_write_format);
	tcase_add_test(tc, test_coalesced);
	tcase_add_test(tc, test_merge);
	tcase_add_test(tc, test_redacted);
	tcase_add_test(tc, test_write_error);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_summary);
	tcase_add_loop_test(tc, test_report, 0,
	    sizeof report_cases / sizeof report_cases[0]);
	tcase_add_test(tc, test_report_several);
	tcase_add_test(tc, test_report_garbage);
	suite_add_tcase(s, tc);
	return s;
}
