/* The plugin loader: the real IMAP plugin loads; a module built for another
 * ABI, one without magic, and a missing one are refused with a clear error. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "suites.h"
#include "util.h"

/* The build tree's plugin directories, from the test environment. */
static const char *
env_dir(const char *name)
{
	const char *d = getenv(name);

	ck_assert_msg(d != NULL, "%s is not set (run through make check)",
	    name);
	return d;
}

START_TEST(test_load_imap)
{
	const struct pm_plugin *p = NULL;
	char *err = NULL;

	ck_assert_int_eq(plugin_load(env_dir("PULLMAIL_PLUGIN_DIR"), "imap",
	    &p, &err), PM_OK);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "imap");
	ck_assert_uint_eq(p->abi, PM_PLUGIN_ABI);
	ck_assert_uint_eq(p->port_tls, 993);
	ck_assert_uint_eq(p->port_plain, 143);
}
END_TEST

START_TEST(test_wrong_abi)
{
	const struct pm_plugin *p = NULL;
	char *err = NULL, *path, *want;

	path = xasprintf("%s/badabi.so", env_dir("PULLMAIL_TEST_PLUGIN_DIR"));
	ck_assert_int_eq(plugin_load_file(path, "badabi", &p, &err),
	    PM_EINTERNAL);
	ck_assert_ptr_null(p);
	want = xasprintf("%s: plugin ABI version %u, pullmail %s expects %u",
	    path, PM_PLUGIN_ABI + 1, PACKAGE_VERSION, PM_PLUGIN_ABI);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s'", err);
	ck_assert_ptr_null(strchr(err, '\n'));
	free(want);
	free(err);
	free(path);
}
END_TEST

START_TEST(test_no_magic)
{
	const struct pm_plugin *p = NULL;
	char *err = NULL, *path;

	path = xasprintf("%s/nomagic.so", env_dir("PULLMAIL_TEST_PLUGIN_DIR"));
	ck_assert_int_eq(plugin_load_file(path, "nomagic", &p, &err),
	    PM_EINTERNAL);
	ck_assert_ptr_nonnull(strstr(err, "not a pullmail plugin"));
	ck_assert_ptr_nonnull(strstr(err, path));
	free(err);
	free(path);
}
END_TEST

START_TEST(test_missing_and_bad_names)
{
	const struct pm_plugin *p = NULL;
	char *err = NULL;

	ck_assert_int_eq(plugin_load("/nonexistent-dir", "imap", &p, &err),
	    PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/imap.so"));
	ck_assert_ptr_nonnull(strstr(err, "no plugin for protocol 'imap'"));
	free(err);
	err = NULL;
	ck_assert_int_eq(plugin_load(env_dir("PULLMAIL_PLUGIN_DIR"),
	    "../imap", &p, &err), PM_ECONFIG);
	free(err);
	err = NULL;
	/* A plugin file loaded under another protocol's name is refused. */
	ck_assert_int_eq(plugin_load(env_dir("PULLMAIL_TEST_PLUGIN_DIR"),
	    "imap", &p, &err), PM_ECONFIG);
	free(err);
}
END_TEST

START_TEST(test_dir_precedence)
{
	setenv("PULLMAIL_PLUGIN_DIR", "/from/env", 1);
	ck_assert_str_eq(plugin_dir("/from/option"), "/from/option");
	ck_assert_str_eq(plugin_dir(NULL), "/from/env");
	unsetenv("PULLMAIL_PLUGIN_DIR");
	ck_assert_str_eq(plugin_dir(NULL), PM_PLUGIN_INSTALL_DIR);
}
END_TEST

Suite *
suite_plugin(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("loader");

	tcase_add_test(tc, test_load_imap);
	tcase_add_test(tc, test_wrong_abi);
	tcase_add_test(tc, test_no_magic);
	tcase_add_test(tc, test_missing_and_bad_names);
	tcase_add_test(tc, test_dir_precedence);
	suite_add_tcase(s, tc);
	return s;
}
