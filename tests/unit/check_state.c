/* UID state: records, UIDVALIDITY changes, pruning, atomic saves, locking
 * (also between threads of one process), damaged files, the binding to
 * one mailbox, and links. */
#include "autoconf.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "suites.h"
#include "util.h"

static char *dir;

/* The mailbox the tests' states belong to. */
static const struct state_binding B = {
	"imap", "Mail.Example.ORG", 993, "alice@example.org"
};

static void
setup(void)
{
	dir = test_tmpdir();
}

static void
teardown(void)
{
	test_rm_rf(dir);
	free(dir);
}

START_TEST(test_roundtrip)
{
	struct state *st;
	char *err = NULL, *path;
	struct stat sb;

	ck_assert_int_eq(state_open(dir, "alice", &B, &st, &err), PM_OK);
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 0);
	ck_assert_int_eq(state_validity(st, "INBOX", "42"), 0);
	state_add(st, "INBOX", "1");
	state_add(st, "INBOX", "7");
	state_add(st, "Odd\tname %", "x y");
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 1);
	ck_assert_int_eq(state_known(st, "INBOX", "2"), 0);
	ck_assert_int_eq(state_known(st, "Other", "1"), 0);
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);

	path = xasprintf("%s/alice.state", dir);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(path);

	ck_assert_int_eq(state_open(dir, "alice", &B, &st, &err), PM_OK);
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 1);
	ck_assert_int_eq(state_known(st, "INBOX", "7"), 1);
	ck_assert_int_eq(state_known(st, "INBOX", "8"), 0);
	ck_assert_int_eq(state_known(st, "Odd\tname %", "x y"), 1);
	ck_assert_int_eq(state_validity(st, "INBOX", "42"), 0);
	state_close(st);
}
END_TEST

START_TEST(test_validity_change)
{
	struct state *st;
	char *err = NULL;

	ck_assert_int_eq(state_open(dir, "bob", &B, &st, &err), PM_OK);
	state_validity(st, "INBOX", "100");
	state_add(st, "INBOX", "5");
	ck_assert_int_eq(state_validity(st, "INBOX", "100"), 0);
	ck_assert_int_eq(state_known(st, "INBOX", "5"), 1);
	ck_assert_int_eq(state_validity(st, "INBOX", "200"), 1);
	ck_assert_int_eq(state_known(st, "INBOX", "5"), 0);
	state_close(st);
}
END_TEST

START_TEST(test_prune_and_many)
{
	struct state *st;
	char *err = NULL, uid[32];
	const char *present[3] = { "10", "20", "999999" };
	int i;

	ck_assert_int_eq(state_open(dir, "carol", &B, &st, &err), PM_OK);
	for (i = 1; i <= 5000; i++) {
		snprintf(uid, sizeof uid, "%d", i * 10);
		state_add(st, "", uid);
	}
	ck_assert_int_eq(state_known(st, "", "40000"), 1);
	ck_assert_int_eq(state_prune(st, "", present, 3), 4998);
	ck_assert_int_eq(state_known(st, "", "10"), 1);
	ck_assert_int_eq(state_known(st, "", "20"), 1);
	ck_assert_int_eq(state_known(st, "", "30"), 0);
	ck_assert_int_eq(state_known(st, "", "999999"), 0);
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
}
END_TEST

/* Create file name in dir (empty). */
static void
touch(const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fclose(f);
	free(p);
}

/* Whether dir holds name. */
static int
exists(const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

/* The temp files a killed run's state_save() left are removed when the
 * next run holds the lock; other files that only look alike stay. */
START_TEST(test_stale_tmp_removed)
{
	struct state *st;
	char *err = NULL;

	touch("erin.state.tmp0123456789ab");
	touch("erin.state.tmpdeadbeef0000");
	touch("erin.state.tmp0123");		/* not tmp_create()'s */
	touch("erin.state.tmp0123456789AB");	/* upper case: not ours */
	touch("frank.state.tmp0123456789ab");	/* another account's */
	ck_assert_int_eq(state_open(dir, "erin", &B, &st, &err), PM_OK);
	ck_assert(!exists("erin.state.tmp0123456789ab"));
	ck_assert(!exists("erin.state.tmpdeadbeef0000"));
	ck_assert(exists("erin.state.tmp0123"));
	ck_assert(exists("erin.state.tmp0123456789AB"));
	ck_assert(exists("frank.state.tmp0123456789ab"));
	state_close(st);
}
END_TEST

/* Forgetting deleted UIDs keeps the others and the other mailboxes. */
START_TEST(test_forget)
{
	struct state *st;
	char *err = NULL, uid[32];
	const char *gone[3] = { "u2", "u4", "never" };
	int i;

	ck_assert_int_eq(state_open(dir, "dave", &B, &st, &err), PM_OK);
	for (i = 1; i <= 1000; i++) {
		snprintf(uid, sizeof uid, "u%d", i);
		state_add(st, "", uid);
	}
	state_add(st, "other", "u2");
	ck_assert_int_eq(state_forget(st, "", gone, 3), 2);
	ck_assert_int_eq(state_forget(st, "nobox", gone, 3), 0);
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	ck_assert_int_eq(state_open(dir, "dave", &B, &st, &err), PM_OK);
	ck_assert_int_eq(state_known(st, "", "u2"), 0);
	ck_assert_int_eq(state_known(st, "", "u4"), 0);
	ck_assert_int_eq(state_known(st, "", "u3"), 1);
	ck_assert_int_eq(state_known(st, "", "u1000"), 1);
	ck_assert_int_eq(state_known(st, "other", "u2"), 1);
	state_close(st);
}
END_TEST

START_TEST(test_lock)
{
	struct state *st, *st2;
	char *err = NULL;

	ck_assert_int_eq(state_open(dir, "dave", &B, &st, &err), PM_OK);
	ck_assert_int_eq(state_open(dir, "dave", &B, &st2, &err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "another pullmail"));
	free(err);
	err = NULL;
	state_close(st);
	ck_assert_int_eq(state_open(dir, "dave", &B, &st2, &err), PM_OK);
	state_close(st2);
}
END_TEST

#define LOCK_THREADS	8
#define LOCK_TRIES	100

static atomic_int lock_holders;		/* threads holding dave's lock */
static atomic_int lock_overlaps;	/* times two held it at once */
static atomic_int lock_wins;		/* state_open successes */
static atomic_int lock_busy;		/* state_open: held by another */
static atomic_int lock_uid;

/* A worker thread trying again and again to open dave's state; while it
 * holds it, it records one UID and saves. */
static void *
lock_worker(void *arg)
{
	struct state *st;
	char uid[16], *err = NULL;
	int i;

	for (i = 0; i < LOCK_TRIES; i++) {
		if (state_open(dir, "dave", &B, &st, &err) != PM_OK) {
			if (strstr(err, "another pullmail") != NULL)
				atomic_fetch_add(&lock_busy, 1);
			free(err);
			err = NULL;
			continue;
		}
		if (atomic_fetch_add(&lock_holders, 1) != 0)
			atomic_fetch_add(&lock_overlaps, 1);
		atomic_fetch_add(&lock_wins, 1);
		snprintf(uid, sizeof uid, "%d", atomic_fetch_add(&lock_uid,
		    1));
		state_add(st, "INBOX", uid);
		if (state_save(st, &err) != PM_OK) {
			free(err);
			err = NULL;
			atomic_fetch_add(&lock_overlaps, 1000);
		}
		usleep(200);
		atomic_fetch_sub(&lock_holders, 1);
		state_close(st);
	}
	return arg;
}

/* Threads of one process: never two of them hold one account's state
 * lock (flock on separate open file descriptions conflicts), and every
 * UID saved by a holder is in the file at the end. */
START_TEST(test_lock_threads)
{
	pthread_t tid[LOCK_THREADS];
	struct state *st;
	char uid[16], *err = NULL;
	int i, wins;

	atomic_store(&lock_busy, 0);
	atomic_store(&lock_holders, 0);
	atomic_store(&lock_overlaps, 0);
	atomic_store(&lock_wins, 0);
	atomic_store(&lock_uid, 0);
	for (i = 0; i < LOCK_THREADS; i++)
		ck_assert_int_eq(pthread_create(&tid[i], NULL, lock_worker,
		    NULL), 0);
	for (i = 0; i < LOCK_THREADS; i++)
		pthread_join(tid[i], NULL);
	wins = atomic_load(&lock_wins);
	ck_assert_int_eq(atomic_load(&lock_overlaps), 0);
	ck_assert_int_gt(wins, 0);
	ck_assert_int_gt(atomic_load(&lock_busy), 0);	/* they did meet */
	ck_assert_int_eq(wins + atomic_load(&lock_busy),
	    LOCK_THREADS * LOCK_TRIES);
	ck_assert_int_eq(state_open(dir, "dave", &B, &st, &err), PM_OK);
	for (i = 0; i < wins; i++) {
		snprintf(uid, sizeof uid, "%d", i);
		ck_assert_msg(state_known(st, "INBOX", uid), "UID %s lost",
		    uid);
	}
	state_close(st);
}
END_TEST

static const struct {
	const char *text;
	const char *expect;
} damaged[] = {
	{ "garbage\n", "not a pullmail state file" },
	{ "pullmail-state 1\nU\tINBOX\n", ":2: malformed record" },
	{ "pullmail-state 1\nX\tINBOX\t1\n", ":2: malformed record" },
	{ "pullmail-state 1\nU\tINBOX\t1", ":2: truncated line" },
	{ "pullmail-state 1\nU\tIN%ZZ\t1\n", ":2: malformed field" },
	{ "pullmail-state 1\nU\tINBOX\t1\textra\n", ":2: malformed record" },
	{ "pullmail-state 1\nU\tINBOX\t\n", ":2: malformed field" },
	{ "pullmail-state 1\nU\tIN%00\t1\n", ":2: malformed field" },
	{ "pullmail-state 3\n", "format \"3\" is not one this pullmail reads" },
	{ "pullmail-state 1\nB\tuser\tx\n", ":2: malformed record" },
	{ "pullmail-state 2\nB\tprotocol\timap\nB\tserver\ts\n"
	    "B\tport\t1\nU\tINBOX\t1\n", "no user record" },
	{ "pullmail-state 2\nB\tprotocol\timap\nB\tprotocol\timap\n",
	    ":3: malformed record" },
	{ "pullmail-state 2\nB\thost\tx\n", ":2: malformed record" },
	{ "pullmail-state 2\nB\tuser\t\n", ":2: malformed field" },
};

START_TEST(test_damaged)
{
	struct state *st = NULL;
	char *err = NULL, *path;

	path = test_write_file(dir, "eve.state", damaged[_i].text, 0600);
	ck_assert_int_eq(state_open(dir, "eve", &B, &st, &err), PM_EINTERNAL);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, damaged[_i].expect) != NULL,
	    "case %d: '%s' lacks '%s'", _i, err, damaged[_i].expect);
	ck_assert_ptr_nonnull(strstr(err, path));
	free(err);
	free(path);
}
END_TEST

START_TEST(test_account_name_is_not_a_path)
{
	struct state *st;
	char *err = NULL, *path;
	struct stat sb;

	ck_assert_int_eq(state_open(dir, "../evil/name", &B, &st, &err), PM_OK);
	state_add(st, "INBOX", "1");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	path = xasprintf("%s/%%2E.%%2Fevil%%2Fname.state", dir);
	ck_assert_int_eq(stat(path, &sb), 0);
	free(path);
}
END_TEST

/* Open account's state bound to b with the log (stderr) captured into
 * *log_r (malloc'd). */
static int
open_logged(const char *account, const struct state_binding *b,
    struct state **st_r, char **log_r)
{
	char *logpath, *err = NULL;
	int saved, r;

	logpath = xasprintf("%s/log", dir);
	saved = test_capture_begin(STDERR_FILENO, logpath);
	r = state_open(dir, account, b, st_r, &err);
	*log_r = test_capture_end(STDERR_FILENO, saved, logpath);
	ck_assert_msg(r == PM_OK, "state_open: %s", err);
	free(logpath);
	return r;
}

/* The text of dir/name; malloc'd. */
static char *
slurp(const char *name)
{
	char *path = xasprintf("%s/%s", dir, name), *text;

	ck_assert_msg(read_small_file(path, 1 << 20, &text, NULL) == 0,
	    "cannot read %s", path);
	free(path);
	return text;
}

/* The names in dir starting with prefix, sorted, joined by spaces;
 * *n_r gets how many.  malloc'd. */
static char *
names_with(const char *prefix, int *n_r)
{
	struct dirent **list;
	char *out = xstrdup(""), *t;
	int i, n;

	n = scandir(dir, &list, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	*n_r = 0;
	for (i = 0; i < n; i++) {
		if (strncmp(list[i]->d_name, prefix, strlen(prefix)) == 0) {
			t = xasprintf("%s%s%s", out, *out ? " " : "",
			    list[i]->d_name);
			free(out);
			out = t;
			(*n_r)++;
		}
		free(list[i]);
	}
	free(list);
	return out;
}

/* Each field of the binding (and two at once) that differs from the one
 * recorded: the old UIDs do not apply, a notice names the change, the old
 * file is set aside at the first save (never over an earlier one). */
static const struct {
	struct state_binding b;
	const char *changed;
} rebound[] = {
	{ { "pop3", "mail.example.org", 993, "alice@example.org" },
	    "alice: protocol changed" },
	{ { "imap", "mail2.example.org", 993, "alice@example.org" },
	    "alice: server changed" },
	{ { "imap", "mail.example.org", 143, "alice@example.org" },
	    "alice: port changed" },
	{ { "imap", "mail.example.org", 993, "bob@example.org" },
	    "alice: user changed" },
	{ { "imap", "other.example.org", 993, "Alice@example.org" },
	    "alice: server and user changed" },
	{ { "pop3", "other.example.org", 995, "bob" },
	    "alice: protocol, server, port and user changed" },
};

START_TEST(test_binding_change)
{
	const struct state_binding *nb = &rebound[_i].b;
	struct state *st;
	char *err = NULL, *old, *log, *aside, *text, *names, *p;
	int n;

	ck_assert_int_eq(state_open(dir, "alice", &B, &st, &err), PM_OK);
	state_validity(st, "INBOX", "42");
	state_add(st, "INBOX", "1");
	state_add(st, "INBOX", "2");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	old = slurp("alice.state");

	open_logged("alice", nb, &st, &log);
	ck_assert_msg(strstr(log, rebound[_i].changed) != NULL,
	    "notice '%s' lacks '%s'", log, rebound[_i].changed);
	ck_assert_ptr_nonnull(strstr(log, "every message there counts as "
	    "new"));
	p = strstr(log, "kept as ");
	ck_assert_ptr_nonnull(p);
	aside = xstrndup(p + 8, strcspn(p + 8, "\n"));
	ck_assert_ptr_nonnull(strstr(aside, "/alice.state.replaced-"));
	free(log);
	/* None of the old UIDs is taken for delivered. */
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 0);
	ck_assert_int_eq(state_known(st, "INBOX", "2"), 0);
	ck_assert_int_eq(state_validity(st, "INBOX", "42"), 0);
	/* Nothing moves before the first save. */
	names = names_with("alice.state.", &n);
	ck_assert_int_eq(n, 0);
	free(names);
	state_add(st, "INBOX", "9");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);

	/* The old file, whole, under the name the notice gave. */
	ck_assert_int_eq(read_small_file(aside, 1 << 20, &text, NULL), 0);
	ck_assert_str_eq(text, old);
	free(text);
	names = names_with("alice.state.", &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(names, strrchr(aside, '/') + 1);
	free(names);

	/* The new state is the new mailbox's: no notice, its UIDs. */
	open_logged("alice", nb, &st, &log);
	ck_assert_str_eq(log, "");
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "9"), 1);
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 0);
	state_close(st);

	/* Back to the first binding: a second file set aside, the first
	 * one untouched even within the same second. */
	open_logged("alice", &B, &st, &log);
	ck_assert_ptr_nonnull(strstr(log, "changed"));
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "9"), 0);
	state_add(st, "INBOX", "10");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	names = names_with("alice.state.", &n);
	ck_assert_int_eq(n, 2);
	free(names);
	ck_assert_int_eq(read_small_file(aside, 1 << 20, &text, NULL), 0);
	ck_assert_str_eq(text, old);
	free(text);
	free(aside);
	free(old);
}
END_TEST

/* The server's case and the protocol's do not matter; the file keeps the
 * lower-cased form. */
START_TEST(test_binding_case)
{
	static const struct state_binding same = {
		"IMAP", "MAIL.example.org", 993, "alice@example.org"
	};
	struct state *st;
	char *err = NULL, *log, *text;

	ck_assert_int_eq(state_open(dir, "alice", &B, &st, &err), PM_OK);
	state_add(st, "INBOX", "1");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	text = slurp("alice.state");
	ck_assert_str_eq(text, "pullmail-state 2\nB\tprotocol\timap\n"
	    "B\tserver\tmail.example.org\nB\tport\t993\n"
	    "B\tuser\talice@example.org\nU\tINBOX\t1\n");
	free(text);
	open_logged("alice", &same, &st, &log);
	ck_assert_str_eq(log, "");
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 1);
	state_close(st);
}
END_TEST

/* A state file from before the binding is adopted once, with a notice,
 * and bound to the account from then on. */
START_TEST(test_binding_upgrade)
{
	static const struct state_binding bob = {
		"imap", "mail.example.org", 993, "bob@example.org"
	};
	struct state *st;
	char *err = NULL, *log, *text;
	int n;

	free(test_write_file(dir, "alice.state", "pullmail-state 1\n"
	    "V\tINBOX\t42\nU\tINBOX\t1\nU\tINBOX\t2\n", 0600));
	open_logged("alice", &B, &st, &log);
	ck_assert_ptr_nonnull(strstr(log, "alice: the state file "));
	ck_assert_ptr_nonnull(strstr(log, "an older pullmail wrote it"));
	ck_assert_ptr_nonnull(strstr(log, "it is now bound to imap user "
	    "alice@example.org at mail.example.org port 993."));
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "1"), 1);
	ck_assert_int_eq(state_validity(st, "INBOX", "42"), 0);
	/* Saved with the binding even though no UID changed. */
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	text = slurp("alice.state");
	ck_assert_ptr_nonnull(strstr(text, "pullmail-state 2\n"
	    "B\tprotocol\timap\nB\tserver\tmail.example.org\n"));
	ck_assert_ptr_nonnull(strstr(text, "U\tINBOX\t2\n"));
	free(text);

	open_logged("alice", &B, &st, &log);
	ck_assert_str_eq(log, "");
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "2"), 1);
	state_close(st);
	open_logged("alice", &bob, &st, &log);
	ck_assert_ptr_nonnull(strstr(log, "alice: user changed"));
	free(log);
	ck_assert_int_eq(state_known(st, "INBOX", "2"), 0);
	state_close(st);
	free(names_with("alice.state.", &n));
	ck_assert_int_eq(n, 0);
}
END_TEST

/* The state file and its lock are never opened through a symbolic link:
 * the error says so and the link's target is left as it was (or is not
 * created). */
static const struct {
	const char *link;	/* under dir */
	int target_exists;
} links[] = {
	{ "mallory.state", 1 },
	{ "mallory.lock", 1 },
	{ "mallory.lock", 0 },
};

START_TEST(test_symlink_refused)
{
	struct state *st = NULL;
	char *err = NULL, *target, *linkpath, *text;
	struct stat sb;

	target = xasprintf("%s/target", dir);
	if (links[_i].target_exists)
		free(test_write_file(dir, "target", "precious\n", 0600));
	linkpath = xasprintf("%s/%s", dir, links[_i].link);
	ck_assert_int_eq(symlink(target, linkpath), 0);
	ck_assert_int_eq(state_open(dir, "mallory", &B, &st, &err),
	    PM_EDELIVER);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, "is a symbolic link; refusing to follow "
	    "it") != NULL && strstr(err, linkpath) != NULL, "%s", err);
	free(err);
	if (links[_i].target_exists) {
		ck_assert_int_eq(read_small_file(target, 1 << 20, &text,
		    NULL), 0);
		ck_assert_str_eq(text, "precious\n");
		free(text);
	} else
		ck_assert_int_eq(lstat(target, &sb), -1);
	free(target);
	free(linkpath);
}
END_TEST

/* A directory everybody can write to is refused unless it is sticky;
 * a state file that is not a regular file is refused. */
START_TEST(test_dir_and_type_checks)
{
	struct state *st = NULL;
	char *err = NULL, *path;

	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(state_open(dir, "x", &B, &st, &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "writable by every user"));
	free(err);
	err = NULL;
	ck_assert_int_eq(chmod(dir, 01777), 0);
	ck_assert_int_eq(state_open(dir, "x", &B, &st, &err), PM_OK);
	state_close(st);
	ck_assert_int_eq(chmod(dir, 0700), 0);

	path = xasprintf("%s/fifo.state", dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(state_open(dir, "fifo", &B, &st, &err), PM_EDELIVER);
	ck_assert_ptr_nonnull(strstr(err, "is not a regular file"));
	free(err);
	free(path);
}
END_TEST

Suite *
suite_state(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_validity_change);
	tcase_add_test(tc, test_prune_and_many);
	tcase_add_test(tc, test_forget);
	tcase_add_test(tc, test_lock);
	tcase_add_loop_test(tc, test_damaged, 0,
	    (int)(sizeof damaged / sizeof damaged[0]));
	tcase_add_test(tc, test_account_name_is_not_a_path);
	tcase_add_loop_test(tc, test_binding_change, 0,
	    (int)(sizeof rebound / sizeof rebound[0]));
	tcase_add_test(tc, test_binding_case);
	tcase_add_test(tc, test_binding_upgrade);
	tcase_add_test(tc, test_stale_tmp_removed);
	tcase_add_loop_test(tc, test_symlink_refused, 0,
	    (int)(sizeof links / sizeof links[0]));
	tcase_add_test(tc, test_dir_and_type_checks);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_lock_threads);
	suite_add_tcase(s, tc);
	return s;
}
