/* UID state: records, UIDVALIDITY changes, pruning, atomic saves, locking,
 * and damaged files. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state.h"
#include "suites.h"
#include "util.h"

static char *dir;

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

	ck_assert_int_eq(state_open(dir, "alice", &st, &err), PM_OK);
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

	ck_assert_int_eq(state_open(dir, "alice", &st, &err), PM_OK);
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

	ck_assert_int_eq(state_open(dir, "bob", &st, &err), PM_OK);
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

	ck_assert_int_eq(state_open(dir, "carol", &st, &err), PM_OK);
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

/* Forgetting deleted UIDs keeps the others and the other mailboxes. */
START_TEST(test_forget)
{
	struct state *st;
	char *err = NULL, uid[32];
	const char *gone[3] = { "u2", "u4", "never" };
	int i;

	ck_assert_int_eq(state_open(dir, "dave", &st, &err), PM_OK);
	for (i = 1; i <= 1000; i++) {
		snprintf(uid, sizeof uid, "u%d", i);
		state_add(st, "", uid);
	}
	state_add(st, "other", "u2");
	ck_assert_int_eq(state_forget(st, "", gone, 3), 2);
	ck_assert_int_eq(state_forget(st, "nobox", gone, 3), 0);
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	ck_assert_int_eq(state_open(dir, "dave", &st, &err), PM_OK);
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

	ck_assert_int_eq(state_open(dir, "dave", &st, &err), PM_OK);
	ck_assert_int_eq(state_open(dir, "dave", &st2, &err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "another pullmail"));
	free(err);
	err = NULL;
	state_close(st);
	ck_assert_int_eq(state_open(dir, "dave", &st2, &err), PM_OK);
	state_close(st2);
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
};

START_TEST(test_damaged)
{
	struct state *st = NULL;
	char *err = NULL, *path;

	path = test_write_file(dir, "eve.state", damaged[_i].text, 0600);
	ck_assert_int_eq(state_open(dir, "eve", &st, &err), PM_EINTERNAL);
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

	ck_assert_int_eq(state_open(dir, "../evil/name", &st, &err), PM_OK);
	state_add(st, "INBOX", "1");
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
	path = xasprintf("%s/%%2E.%%2Fevil%%2Fname.state", dir);
	ck_assert_int_eq(stat(path, &sb), 0);
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
	suite_add_tcase(s, tc);
	return s;
}
