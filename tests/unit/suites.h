/* One Check runner, one suite per area. */
#ifndef PM_TEST_SUITES_H
#define PM_TEST_SUITES_H

#include <check.h>

Suite *suite_util(void);
Suite *suite_config(void);
Suite *suite_transport(void);
Suite *suite_base64(void);
Suite *suite_sasl(void);
Suite *suite_oauth(void);
Suite *suite_crypto(void);
Suite *suite_state(void);
Suite *suite_maildir(void);
Suite *suite_deliver(void);
Suite *suite_plugin(void);
Suite *suite_fetch(void);
Suite *suite_session(void);
Suite *suite_sdnotify(void);
Suite *suite_status(void);
Suite *suite_process(void);

/* A fresh empty directory under $TMPDIR for one test; malloc'd. */
char *test_tmpdir(void);
/* Write text to dir/name with mode; returns the malloc'd path. */
char *test_write_file(const char *dir, const char *name, const char *text,
    unsigned mode);
/* Send fd (STDOUT_FILENO or STDERR_FILENO) to a new file at path until
 * test_capture_end(); returns the descriptor to restore. */
int test_capture_begin(int fd, const char *path);
/* Restore fd from saved; the text written meanwhile (malloc'd); path is
 * removed. */
char *test_capture_end(int fd, int saved, const char *path);
/* Remove a directory tree (tests only). */
void test_rm_rf(const char *path);
/* The words of a non-empty argv joined by '|' (malloc'd). */
char *test_join(char *const *argv);

#endif
