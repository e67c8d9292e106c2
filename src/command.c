/*
 * Secrets printed by a command (a secret manager such as pass, secret-tool
 * or a vault client).  The command is an argv split at blanks: no shell
 * ever sees the configuration's text.  Reading its output and waiting for
 * its exit share one deadline; a command still running then is stopped.
 *
 * Threads: no shared state.  The program is looked up in $PATH before
 * fork() and the child makes only async-signal-safe calls (open, dup2,
 * execve, _exit), as the child of a threaded process must; every
 * descriptor of ours is close-on-exec, so none reaches the command.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "secret.h"
#include "util.h"

#define COMMAND_KILL_GRACE_MS 2000

/* cmd split at blanks, ~/ expanded; NULL-terminated, words malloc'd. */
static char **
split_argv(const char *cmd)
{
	const char *home = getenv("HOME");
	char *copy, *w, *save, **argv = NULL;
	size_t n = 0;

	copy = xstrdup(cmd);
	for (w = strtok_r(copy, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		argv = xrealloc(argv, (n + 2) * sizeof *argv);
		if (strncmp(w, "~/", 2) == 0 && home != NULL && *home == '/')
			argv[n++] = xasprintf("%s/%s", home, w + 2);
		else
			argv[n++] = xstrdup(w);
	}
	free(copy);
	if (n == 0)
		return NULL;
	argv[n] = NULL;
	return argv;
}

/* Free what split_argv returned. */
static void
free_argv(char **argv)
{
	size_t i;

	for (i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* Milliseconds left until deadline, as a poll() timeout (0 when past). */
static int
ms_left(long long deadline)
{
	long long left = deadline - mono_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Reap pid into *st before deadline; -1 if it is still running then. */
static int
reap_until(pid_t pid, int *st, long long deadline)
{
	pid_t p;

	for (;;) {
		p = waitpid(pid, st, WNOHANG);
		if (p == pid)
			return 0;
		if (p < 0 && errno != EINTR) {
			*st = 0;	/* reaped elsewhere: status unknown */
			return 0;
		}
		if (ms_left(deadline) == 0)
			return -1;
		poll(NULL, 0, ms_left(deadline) > 20 ? 20 : ms_left(deadline));
	}
}

/* Stop a command that overran: SIGTERM, a grace period, SIGKILL; reap. */
static void
stop_child(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	if (reap_until(pid, &st, mono_ms() + COMMAND_KILL_GRACE_MS) == 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Read the command's output from fd into buf (at most max bytes kept)
 * until EOF or the deadline; -1 when the deadline came first. */
static int
read_output(int fd, char *buf, size_t max, size_t *len_r, int *too_big_r,
    long long deadline)
{
	struct pollfd pfd;
	size_t len = 0;
	ssize_t n;
	int ms;

	for (;;) {
		if ((ms = ms_left(deadline)) == 0)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ms) <= 0)
			continue;	/* EINTR or time up: checked above */
		n = read(fd, buf + len, len < max ? max - len : 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (len >= max) {
			*too_big_r = 1;
			continue;	/* drain, so the child can exit */
		}
		len += (size_t)n;
	}
	*len_r = len;
	return 0;
}

/* Run cmd and take its output as a secret (contract in command.h). */
int
command_secret(const char *cmd, size_t max, unsigned timeout,
    struct pm_secret **s_r, char **why_r)
{
	extern char **environ;
	char **argv, *buf, *path;
	size_t len = 0;
	long long deadline;
	pid_t pid;
	int fds[2], st, fd, too_big = 0, r = PM_ECONFIG;

	*s_r = NULL;
	if ((argv = split_argv(cmd)) == NULL) {
		*why_r = xstrdup("empty command");
		return PM_ECONFIG;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		*why_r = xasprintf("pipe: %s", pm_strerror(errno));
		free_argv(argv);
		return PM_ETEMP;
	}
	path = exec_resolve(argv[0]);
	pid = fork();
	if (pid < 0) {
		*why_r = xasprintf("fork: %s", pm_strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free(path);
		free_argv(argv);
		return PM_ETEMP;
	}
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			dup2(fd, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		if (path != NULL)
			execve(path, argv, environ);
		_exit(127);
	}
	free(path);
	close(fds[1]);
	(void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
	deadline = mono_ms() + (long long)(timeout != 0 ? timeout :
	    COMMAND_TIMEOUT) * 1000;
	buf = xmalloc(max + 1);
	if (read_output(fds[0], buf, max, &len, &too_big, deadline) < 0 ||
	    reap_until(pid, &st, deadline) < 0) {
		close(fds[0]);
		stop_child(pid);
		*why_r = xasprintf("%s did not finish within %u seconds; "
		    "stopped it", argv[0], timeout != 0 ? timeout :
		    COMMAND_TIMEOUT);
		r = PM_ETEMP;
		goto out;
	}
	close(fds[0]);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		*why_r = xasprintf("cannot run %s", argv[0]);
	else if (!WIFEXITED(st))
		*why_r = xasprintf("%s was killed by signal %d", argv[0],
		    WTERMSIG(st));
	else if (WEXITSTATUS(st) != 0)
		*why_r = xasprintf("%s exited with status %d", argv[0],
		    WEXITSTATUS(st));
	else if (too_big)
		*why_r = xasprintf("%s printed more than %zu bytes", argv[0],
		    max);
	else if (len == 0)
		*why_r = xasprintf("%s printed nothing", argv[0]);
	else {
		*s_r = secret_new(buf, len);
		r = PM_OK;
	}
out:
	secret_wipe(buf, max + 1);
	free(buf);
	free_argv(argv);
	return r;
}
