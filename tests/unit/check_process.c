/* The process helper: the one command-line splitter, spawning with an
 * environment and chosen descriptors, deadlines, and notify_command. */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "notify.h"
#include "process.h"
#include "suites.h"
#include "util.h"

static const struct {
	const char *cmd;
	const char *argv;	/* words joined by '|', NULL: an error */
	const char *why;	/* the error's text, in part */
} split_cases[] = {
	{ "pass show mail/imap", "pass|show|mail/imap", NULL },
	{ "  a\t b  ", "a|b", NULL },
	{ "a \"b c\" 'd e'", "a|b c|d e", NULL },
	{ "a \"x\\\"y\\\\z\" 'p\\q'", "a|x\"y\\z|p\\q", NULL },
	{ "a \"\\n\"", "a|\\n", NULL },
	{ "a b\\ c", "a|b\\|c", NULL },
	{ "a b\"c d\"e", "a|bc de", NULL },
	{ "a '' \"\"", "a||", NULL },
	{ "a \"it's\" 'say \"hi\"'", "a|it's|say \"hi\"", NULL },
	{ "a $HOME `x` *;|", "a|$HOME|`x`|*;|", NULL },
	{ "~/bin/vault ~/x '~/y' a~/z", "/home/u/bin/vault|/home/u/x|~/y|a~/z",
	    NULL },
	{ "~ ~user/x", "~|~user/x", NULL },
	{ "a %F", "a|%F", NULL },
	{ "a \"b", NULL, "unbalanced \" quote" },
	{ "a 'b", NULL, "unbalanced ' quote" },
	{ "a \"b\\\"", NULL, "unbalanced \" quote" },
	{ "", NULL, "empty command" },
	{ " \t ", NULL, "empty command" },
};

START_TEST(test_split)
{
	char **argv, *err = NULL, *joined, *home;

	home = getenv("HOME") != NULL ? xstrdup(getenv("HOME")) : NULL;
	setenv("HOME", "/home/u", 1);
	argv = proc_split(split_cases[_i].cmd, &err);
	if (home != NULL)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	free(home);
	if (split_cases[_i].argv == NULL) {
		ck_assert_msg(argv == NULL, "case %d", _i);
		ck_assert_msg(err != NULL &&
		    strstr(err, split_cases[_i].why) != NULL, "case %d: %s",
		    _i, err);
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

/* Run cmd (split) with the given spec fields; its stdout in *out_r
 * (malloc'd), its wait status returned. */
static int
run(const char *cmd, char **env, int in, int err_to_out, size_t max,
    unsigned timeout, char **out_r, int *too_big_r)
{
	struct proc_spec spec = { .in = in, .out_pipe = 1 };
	char **argv, *err = NULL, *buf = xmalloc(max + 1);
	size_t len;
	int st, too_big;

	argv = proc_split(cmd, &err);
	ck_assert_ptr_nonnull(argv);
	spec.argv = argv;
	spec.env = env;
	spec.err_to_out = err_to_out;
	ck_assert_msg(proc_run(&spec, timeout, buf, max, &len, &too_big, &st,
	    &err) == PM_OK, "%s: %s", cmd, err);
	buf[len] = '\0';
	*out_r = buf;
	if (too_big_r != NULL)
		*too_big_r = too_big;
	proc_argv_free(argv);
	return st;
}

/* The environment given is the child's whole environment: a variable
 * set replaces ours once, and no argument carries it. */
START_TEST(test_env)
{
	const char *set[] = { "PM_T_A=new value", "PM_T_B=", NULL };
	char **env, *out;
	int st;

	setenv("PM_T_A", "old", 1);
	setenv("PM_T_C", "kept", 1);
	env = proc_env(set);
	st = run("/bin/sh -c 'printf \"%s|%s|%s|%s|%d\" \"$PM_T_A\" "
	    "\"${PM_T_B-unset}\" \"$PM_T_C\" \"$#\" "
	    "$(env | grep -c ^PM_T_A=)' sh", env, -1, 0, 256, 5, &out, NULL);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(out, "new value||kept|0|1");
	free(out);
	proc_argv_free(env);

	/* An explicit environment: nothing of ours leaks into it. */
	env = xcalloc(2, sizeof *env);
	env[0] = xstrdup("ONLY=this");
	st = run("/usr/bin/env", env, -1, 0, 256, 5, &out, NULL);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(out, "ONLY=this\n");
	free(out);
	proc_argv_free(env);
	unsetenv("PM_T_A");
	unsetenv("PM_T_C");
}
END_TEST

/* stdin is /dev/null or the descriptor given; stderr goes into the pipe
 * when asked. */
START_TEST(test_descriptors)
{
	char *dir = test_tmpdir(), *path, *out;
	int fd;

	ck_assert_int_eq(run("cat", NULL, -1, 0, 64, 5, &out, NULL), 0);
	ck_assert_str_eq(out, "");
	free(out);

	path = test_write_file(dir, "in", "from a file\n", 0600);
	ck_assert_int_ge(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(run("cat", NULL, fd, 0, 64, 5, &out, NULL), 0);
	ck_assert_str_eq(out, "from a file\n");
	free(out);
	close(fd);

	ck_assert_int_eq(run("/bin/sh -c 'echo out; echo err >&2'", NULL, -1,
	    1, 64, 5, &out, NULL), 0);
	ck_assert_str_eq(out, "out\nerr\n");
	free(out);

	/* Only the descriptors chosen reach the command, not the pipes
	 * spawning makes nor our files (all close-on-exec; Check's own file
	 * is made so here). */
	for (fd = 3; fd < 64; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	ck_assert_int_ge(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(run("/bin/sh -c 'for i in 3 4 5 6 7 8 9; do "
	    "[ -e /proc/$$/fd/$i ] && readlink /proc/$$/fd/$i; done; true'", NULL, -1, 0, 256,
	    5, &out, NULL), 0);
	ck_assert_str_eq(out, "");
	free(out);
	close(fd);
	free(path);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

/* The exit status, a signal, and words for them. */
START_TEST(test_status)
{
	char *out, *text;
	int st;

	st = run("/bin/sh -c 'exit 3'", NULL, -1, 0, 16, 5, &out, NULL);
	free(out);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	text = proc_status_text("sh", st);
	ck_assert_str_eq(text, "sh exited with status 3");
	free(text);

	st = run("/bin/sh -c 'kill -9 $$'", NULL, -1, 0, 16, 5, &out, NULL);
	free(out);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	text = proc_status_text("sh", st);
	ck_assert_str_eq(text, "sh was killed by signal 9");
	free(text);

	st = run("true", NULL, -1, 0, 16, 5, &out, NULL);
	free(out);
	ck_assert_int_eq(st, 0);
	ck_assert_ptr_null(proc_status_text("true", st));
}
END_TEST

/* A program that is missing or cannot be executed: a clear error, no
 * child left behind. */
START_TEST(test_cannot_run)
{
	struct proc_spec spec = { .in = -1, .out_pipe = 1 };
	char *dir = test_tmpdir(), *path, *argv[2], *err = NULL;
	pid_t pid;
	int out;

	argv[0] = "/nonexistent/vault";
	argv[1] = NULL;
	spec.argv = argv;
	ck_assert_int_eq(proc_spawn(&spec, &pid, &out, &err), PM_ECONFIG);
	ck_assert_str_eq(err, "cannot run /nonexistent/vault: No such file "
	    "or directory");
	ck_assert_int_eq(pid, -1);
	ck_assert_int_eq(out, -1);
	free(err);
	err = NULL;

	/* Found, but execve() refuses it: told through the report pipe. */
	path = test_write_file(dir, "noexec", "#!/bin/sh\n", 0600);
	argv[0] = path;
	ck_assert_int_eq(proc_spawn(&spec, &pid, &out, &err), PM_ECONFIG);
	ck_assert_msg(strstr(err, "noexec: Permission denied") != NULL,
	    "%s", err);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	free(err);
	free(path);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

/* Output past the limit is dropped (and said so) while the command is
 * still read to its end, so it can finish. */
START_TEST(test_capture_limit)
{
	char *out;
	int too_big;

	ck_assert_int_eq(run("printf 0123456789", NULL, -1, 0, 10, 5, &out,
	    &too_big), 0);
	ck_assert_str_eq(out, "0123456789");
	ck_assert_int_eq(too_big, 0);
	free(out);

	ck_assert_int_eq(run("printf 0123456789", NULL, -1, 0, 4, 5, &out,
	    &too_big), 0);
	ck_assert_str_eq(out, "0123");
	ck_assert_int_eq(too_big, 1);
	free(out);

	/* Far more than a pipe holds: it still exits on its own. */
	ck_assert_int_eq(run("head -c 1000000 /dev/zero", NULL, -1, 0, 16, 5,
	    &out, &too_big), 0);
	ck_assert_int_eq(too_big, 1);
	free(out);
}
END_TEST

/* A command past its deadline is stopped and reaped within the deadline
 * plus the grace period; the error names it. */
START_TEST(test_timeout)
{
	struct proc_spec spec = { .in = -1, .out_pipe = 1 };
	char **argv, *err = NULL, buf[16];
	size_t len;
	long long t0;
	int st, too_big;

	argv = proc_split("sleep 30", &err);
	spec.argv = argv;
	t0 = mono_ms();
	ck_assert_int_eq(proc_run(&spec, 1, buf, sizeof buf, &len, &too_big,
	    &st, &err), PM_ETEMP);
	ck_assert_int_ge(mono_ms() - t0, 1000);
	ck_assert_int_lt(mono_ms() - t0, 2500);	/* SIGTERM did it */
	ck_assert_str_eq(err, "sleep did not finish within 1 seconds; "
	    "stopped it");
	free(err);
	/* Reaped: no child of ours is left. */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);

	/* Without an output pipe too (as notify_command runs). */
	spec.out_pipe = 0;
	err = NULL;
	t0 = mono_ms();
	ck_assert_int_eq(proc_run(&spec, 1, NULL, 0, &len, &too_big, &st,
	    &err), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 2500);
	ck_assert_ptr_nonnull(strstr(err, "did not finish within 1 seconds"));
	free(err);
	proc_argv_free(argv);
}
END_TEST

/* The daemon's threads block SIGTERM; the child must not inherit that,
 * or proc_stop() could only end it with SIGKILL after the grace. */
START_TEST(test_signal_mask)
{
	struct proc_spec spec = { .in = -1 };
	char **argv, *err = NULL;
	sigset_t set, old;
	pid_t pid;
	int out, st;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	argv = proc_split("sleep 30", &err);
	spec.argv = argv;
	ck_assert_int_eq(proc_spawn(&spec, &pid, &out, &err), PM_OK);
	ck_assert_int_eq(out, -1);
	ck_assert_int_eq(proc_wait(pid, mono_ms() + 200, &st), 1);
	kill(pid, SIGTERM);
	ck_assert_int_eq(proc_wait(pid, mono_ms() + 1500, &st), 0);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	sigprocmask(SIG_SETMASK, &old, NULL);
	proc_argv_free(argv);
}
END_TEST

/* notify_command: the message and the account in its environment only,
 * once per event, and stopped at its deadline instead of waited for. */
START_TEST(test_notify)
{
	char *dir = test_tmpdir(), *state, *out, *script, *cmd, *text;
	size_t len;
	long long t0;
	struct stat sb;

	state = xasprintf("%s/tokens", dir);
	out = xasprintf("%s/out", dir);
	text = xasprintf("#!/bin/sh\necho \"$# $PULLMAIL_ACCOUNT: "
	    "$PULLMAIL_MESSAGE\" >> %s\n", out);
	script = test_write_file(dir, "note", text, 0700);
	free(text);
	cmd = xasprintf("'%s'", script);
	notify_human(cmd, state, "acct", 5, "a human must act: it's so");
	notify_human(cmd, state, "acct", 5, "again");
	ck_assert_int_eq(read_small_file(out, 1024, &text, &len), 0);
	ck_assert_str_eq(text, "0 acct: a human must act: it's so\n");
	free(text);
	ck_assert_int_eq(stat(state, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	notify_reset(state, "acct");
	notify_human(cmd, state, "acct", 5, "later");
	ck_assert_int_eq(read_small_file(out, 1024, &text, &len), 0);
	ck_assert_str_eq(text, "0 acct: a human must act: it's so\n"
	    "0 acct: later\n");
	free(text);
	free(cmd);
	free(script);

	/* A command that hangs is stopped at the deadline. */
	notify_reset(state, "acct");
	t0 = mono_ms();
	notify_human("sleep 30", state, "acct", 1, "hang");
	ck_assert_int_lt(mono_ms() - t0, 2500);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	free(out);
	free(state);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

Suite *
suite_process(void)
{
	Suite *s = suite_create("process");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_split, 0,
	    sizeof split_cases / sizeof split_cases[0]);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_descriptors);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_cannot_run);
	tcase_add_test(tc, test_capture_limit);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_signal_mask);
	tcase_add_test(tc, test_notify);
	suite_add_tcase(s, tc);
	return s;
}
