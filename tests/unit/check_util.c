/* Helpers of the core: error strings, files, hashing, secrets and the
 * protocol trace that must redact them. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"
#include "suites.h"
#include "util.h"

START_TEST(test_errf)
{
	char *err = NULL;

	ck_assert_int_eq(errf(&err, PM_EPROTO, "bad %s %d", "line", 3),
	    PM_EPROTO);
	ck_assert_str_eq(err, "bad line 3");
	ck_assert_int_eq(errf(&err, PM_ETEMP, "second"), PM_ETEMP);
	ck_assert_str_eq(err, "second");
	err_prefix(&err, "%s:%d", "imap.example", 993);
	ck_assert_str_eq(err, "imap.example:993: second");
	free(err);
	ck_assert_int_eq(errf(NULL, PM_EAUTH, "ignored"), PM_EAUTH);
}
END_TEST

START_TEST(test_files)
{
	char *dir = test_tmpdir(), *deep, *path, *data;
	size_t len;
	struct stat sb;

	deep = xasprintf("%s/a/b/c", dir);
	ck_assert_int_eq(mkdir_p(deep, 0700), 0);
	ck_assert_int_eq(stat(deep, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(mkdir_p(deep, 0700), 0);
	ck_assert_int_eq(fsync_dir(deep), 0);

	path = test_write_file(dir, "f", "hello\n", 0600);
	ck_assert_int_eq(read_small_file(path, 100, &data, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(data, "hello\n");
	free(data);
	ck_assert_int_eq(read_small_file(path, 3, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(mkdir_p(path, 0700), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	free(path);
	free(deep);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_hash)
{
	char a[17], b[17], c[17];

	hash_hex("https://idp/token\nclient\nscope", a);
	hash_hex("https://idp/token\nclient\nscope", b);
	hash_hex("https://idp/token\nclient\nscope2", c);
	ck_assert_str_eq(a, b);
	ck_assert_str_ne(a, c);
	ck_assert_uint_eq(strlen(a), 16);
	hash_hex("", a);
	ck_assert_str_eq(a, "cbf29ce484222325");
}
END_TEST

START_TEST(test_secret)
{
	struct pm_secret *s = secret_new("ab\0cd", 5), *t;

	ck_assert_uint_eq(secret_len(s), 5);
	ck_assert_mem_eq(secret_reveal(s), "ab\0cd", 6);
	t = secret_dup(s);
	ck_assert(secret_equal(s, t));
	secret_free(t);
	t = secret_from_str("ab");
	ck_assert(!secret_equal(s, t));
	secret_free(t);
	secret_free(s);
	secret_free(NULL);
}
END_TEST

/* Run log_trace with stderr sent to a file; return what it wrote. */
static char *
capture_trace(const char *line, const struct pm_secret *secret)
{
	char *dir = test_tmpdir(), *path = xasprintf("%s/err", dir), *data;
	int fd, saved;
	size_t len;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 0, 1, 0);
	log_trace("acct", "C", line, strlen(line), secret);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(path, 1 << 16, &data, &len), 0);
	free(path);
	test_rm_rf(dir);
	free(dir);
	return data;
}

START_TEST(test_trace_redacts)
{
	struct pm_secret *blob = secret_from_str(
	    "dXNlcj1hQGIBYXV0aD1CZWFyZXIgc2VjcmV0LXRva2VuAQE=");
	char *out;

	out = capture_trace("A1 AUTHENTICATE XOAUTH2 ", blob);
	ck_assert_ptr_nonnull(strstr(out,
	    "acct C: A1 AUTHENTICATE XOAUTH2 <redacted, 48 bytes>"));
	ck_assert_ptr_null(strstr(out, "dXNlcj1h"));
	free(out);
	secret_free(blob);
}
END_TEST

START_TEST(test_trace_escapes)
{
	char *out;

	out = capture_trace("* OK hi\x1b[31m\\\r\n", NULL);
	ck_assert_ptr_nonnull(strstr(out, "acct C: * OK hi\\x1b[31m\\\\\\r\\n"));
	ck_assert_ptr_null(strchr(out, '\x1b'));
	free(out);
}
END_TEST

START_TEST(test_trace_off)
{
	char *dir = test_tmpdir(), *path = xasprintf("%s/err", dir), *data;
	int fd, saved;
	size_t len;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 2, 0, 0);
	log_trace("acct", "C", "A1 LOGIN x y", 12, NULL);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(path, 1 << 16, &data, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(data);
	free(path);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

Suite *
suite_util(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");

	tcase_add_test(tc, test_errf);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_hash);
	tcase_add_test(tc, test_secret);
	tcase_add_test(tc, test_trace_redacts);
	tcase_add_test(tc, test_trace_escapes);
	tcase_add_test(tc, test_trace_off);
	suite_add_tcase(s, tc);
	return s;
}
