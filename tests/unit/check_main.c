/* The unit test runner: every suite, selectable with CK_RUN_SUITE. */
#include "autoconf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suites.h"

char *
test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/pm-unit-XXXXXX", base) < 0)
		abort();
	if (mkdtemp(path) == NULL)
		abort();
	return path;
}

char *
test_write_file(const char *dir, const char *name, const char *text,
    unsigned mode)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

int
test_capture_begin(int fd, const char *path)
{
	int file, saved;

	file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (file < 0)
		abort();
	fflush(fd == STDOUT_FILENO ? stdout : stderr);
	saved = dup(fd);
	if (saved < 0 || dup2(file, fd) < 0)
		abort();
	close(file);
	return saved;
}

char *
test_capture_end(int fd, int saved, const char *path)
{
	char buf[4096], *text = NULL;
	size_t len = 0, n;
	FILE *f;

	fflush(fd == STDOUT_FILENO ? stdout : stderr);
	if (dup2(saved, fd) < 0)
		abort();
	close(saved);
	f = fopen(path, "r");
	if (f == NULL)
		abort();
	do {
		n = fread(buf, 1, sizeof buf, f);
		text = realloc(text, len + n + 1);
		if (text == NULL)
			abort();
		memcpy(text + len, buf, n);
		len += n;
	} while (n > 0);
	text[len] = '\0';
	fclose(f);
	unlink(path);
	return text;
}

void
test_rm_rf(const char *path)
{
	char *cmd;

	if (path == NULL || strncmp(path, "/", 1) != 0 ||
	    strstr(path, "pm-unit-") == NULL)
		return;
	if (asprintf(&cmd, "rm -rf '%s'", path) < 0)
		abort();
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", path);
	free(cmd);
}

char *
test_join(char *const *argv)
{
	char *joined, *t;
	size_t i;

	if (asprintf(&joined, "%s", argv[0]) < 0)
		abort();
	for (i = 1; argv[i] != NULL; i++) {
		if (asprintf(&t, "%s|%s", joined, argv[i]) < 0)
			abort();
		free(joined);
		joined = t;
	}
	return joined;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	/* Some cases wait on timeouts of a second or two on purpose; Check's
	 * default of 4 s per case is too tight when run by hand on a busy
	 * machine.  The environment still wins. */
	setenv("CK_DEFAULT_TIMEOUT", "60", 0);
	sr = srunner_create(suite_util());
	srunner_add_suite(sr, suite_config());
	srunner_add_suite(sr, suite_transport());
	srunner_add_suite(sr, suite_base64());
	srunner_add_suite(sr, suite_sasl());
	srunner_add_suite(sr, suite_oauth());
	srunner_add_suite(sr, suite_crypto());
	srunner_add_suite(sr, suite_state());
	srunner_add_suite(sr, suite_maildir());
	srunner_add_suite(sr, suite_deliver());
	srunner_add_suite(sr, suite_plugin());
	srunner_add_suite(sr, suite_fetch());
	srunner_add_suite(sr, suite_session());
	srunner_add_suite(sr, suite_sdnotify());
	srunner_add_suite(sr, suite_status());
	srunner_add_suite(sr, suite_process());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
