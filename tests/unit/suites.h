/* One Check runner, one suite per area. */
#ifndef PM_TEST_SUITES_H
#define PM_TEST_SUITES_H

#include <check.h>

Suite *suite_util(void);
Suite *suite_config(void);
Suite *suite_transport(void);
Suite *suite_sasl(void);
Suite *suite_oauth(void);
Suite *suite_crypto(void);
Suite *suite_state(void);
Suite *suite_maildir(void);
Suite *suite_deliver(void);
Suite *suite_plugin(void);
Suite *suite_pop3(void);

/* A fresh empty directory under $TMPDIR for one test; malloc'd. */
char *test_tmpdir(void);
/* Write text to dir/name with mode; returns the malloc'd path. */
char *test_write_file(const char *dir, const char *name, const char *text,
    unsigned mode);
/* Remove a directory tree (tests only). */
void test_rm_rf(const char *path);

#endif
