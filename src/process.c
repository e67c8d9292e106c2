/*
 * Child processes (contract in process.h).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "process.h"
#include "util.h"

extern char **environ;

/* Split cmd by the one quoting rule (contract in process.h). */
char **
proc_split(const char *cmd, char **err)
{
	const char *home = getenv("HOME"), *s = cmd;
	char **argv = NULL, *word, q;
	size_t n = 0, w, hlen;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		hlen = 0;
		if (s[0] == '~' && s[1] == '/' && home != NULL && *home == '/') {
			hlen = strlen(home);
			s++;
		}
		word = xmalloc(hlen + strlen(s) + 1);
		memcpy(word, home, hlen);
		w = hlen;
		while (*s != '\0' && *s != ' ' && *s != '\t') {
			if (*s != '"' && *s != '\'') {
				word[w++] = *s++;
				continue;
			}
			q = *s++;
			while (*s != '\0' && *s != q) {
				if (q == '"' && *s == '\\' &&
				    (s[1] == '"' || s[1] == '\\'))
					s++;
				word[w++] = *s++;
			}
			if (*s == '\0') {
				free(word);
				proc_argv_free(argv);
				errf(err, PM_ECONFIG, "unbalanced %c quote "
				    "(close it, or quote it with %s)", q,
				    q == '"' ? "'\"' or \\\" inside \"...\"" :
				    "\"'\"");
				return NULL;
			}
			s++;
		}
		word[w] = '\0';
		argv = xrealloc(argv, (n + 2) * sizeof *argv);
		argv[n++] = word;
		argv[n] = NULL;
	}
	if (n == 0) {
		errf(err, PM_ECONFIG, "empty command");
		return NULL;
	}
	return argv;
}

/* Free a NULL-terminated array of strings (contract in process.h). */
void
proc_argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* Whether the "NAME=..." entry e sets one of the names in set. */
static int
env_replaced(const char *e, const char *const *set)
{
	const char *eq;
	size_t i;

	for (i = 0; set != NULL && set[i] != NULL; i++)
		if ((eq = strchr(set[i], '=')) != NULL &&
		    strncmp(e, set[i], (size_t)(eq - set[i]) + 1) == 0)
			return 1;
	return 0;
}

/* Our environment with set applied (contract in process.h). */
char **
proc_env(const char *const *set)
{
	char **env;
	size_t n = 0, k = 0, o = 0, i;

	while (environ[n] != NULL)
		n++;
	while (set != NULL && set[k] != NULL)
		k++;
	env = xcalloc(n + k + 1, sizeof *env);
	for (i = 0; i < n; i++)
		if (!env_replaced(environ[i], set))
			env[o++] = xstrdup(environ[i]);
	for (i = 0; i < k; i++)
		env[o++] = xstrdup(set[i]);
	env[o] = NULL;
	return env;
}

/* fd moved above the standard descriptors (close-on-exec), so that
 * setting up the child's 0, 1 and 2 cannot overwrite it; -1 + errno. */
static int
fd_high(int fd)
{
	int nfd;

	if (fd > STDERR_FILENO)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	close(fd);
	return nfd;
}

/* In the child: make from the descriptor to (without close-on-exec). */
static int
fd_onto(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(from, to) < 0 ? -1 : 0;
}

/* The child: set up its descriptors and signals and exec path; on any
 * failure write errno to report and exit 127.  Async-signal-safe only. */
static void
child_exec(const struct proc_spec *spec, const char *path, char *const *env,
    int in, int outw, int report)
{
	sigset_t none;
	int e;

	signal(SIGPIPE, SIG_DFL);
	signal(SIGXFSZ, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fd_onto(in, STDIN_FILENO) < 0)
		goto fail;
	if (outw >= 0 && (fd_onto(outw, STDOUT_FILENO) < 0 ||
	    (spec->err_to_out && fd_onto(outw, STDERR_FILENO) < 0)))
		goto fail;
	execve(path, spec->argv, env);
fail:
	e = errno;
	(void)write(report, &e, sizeof e);
	_exit(127);
}

/* Close each descriptor of fds that is open (>= 0). */
static void
close_all(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Start the command of spec (contract in process.h). */
int
proc_spawn(const struct proc_spec *spec, pid_t *pid_r, int *out_r,
    char **err)
{
	const char *name = spec->argv[0];
	char *const *env = spec->env != NULL ? spec->env : environ;
	/* fd[0] /dev/null, fd[1..2] the output pipe, fd[3..4] the report */
	int fd[5] = { -1, -1, -1, -1, -1 }, in = spec->in, e, st, p[2];
	char *path;
	ssize_t got;
	pid_t pid;

	*pid_r = -1;
	*out_r = -1;
	/* Found now: the child may call nothing that allocates. */
	if ((path = exec_resolve(name)) == NULL)
		return errf(err, PM_ECONFIG, "cannot run %s: %s", name,
		    pm_strerror(errno));
	if (in < 0 && (in = fd[0] = open("/dev/null",
	    O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	if (spec->out_pipe) {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto fail;
		fd[1] = p[0];
		fd[2] = p[1];
		if ((fd[2] = fd_high(fd[2])) < 0)
			goto fail;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		goto fail;
	fd[3] = p[0];
	fd[4] = p[1];
	if ((fd[4] = fd_high(fd[4])) < 0)
		goto fail;
	if (!spec->out_pipe)
		fflush(stdout);		/* ours first, then the child's */
	if ((pid = fork()) < 0)
		goto fail;
	if (pid == 0)
		child_exec(spec, path, env, in, fd[2], fd[4]);
	free(path);
	close(fd[4]);
	fd[4] = -1;
	do
		got = read(fd[3], &e, sizeof e);
	while (got < 0 && errno == EINTR);
	if (got == (ssize_t)sizeof e) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		close_all(fd, 5);
		return errf(err, PM_ECONFIG, "cannot run %s: %s", name,
		    pm_strerror(e));
	}
	if (fd[1] >= 0)
		(void)fcntl(fd[1], F_SETFL, O_NONBLOCK);
	*out_r = fd[1];
	fd[1] = -1;
	close_all(fd, 5);
	*pid_r = pid;
	return PM_OK;
fail:
	e = errno;
	free(path);
	close_all(fd, 5);
	return errf(err, PM_ETEMP, "cannot run %s: %s", name,
	    pm_strerror(e));
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

/* Reap pid before the deadline (contract in process.h). */
int
proc_wait(pid_t pid, long long deadline, int *status_r)
{
	pid_t p;
	int ms;

	for (;;) {
		p = waitpid(pid, status_r, WNOHANG);
		if (p == pid)
			return 0;
		if (p < 0 && errno != EINTR)
			return -1;
		if ((ms = ms_left(deadline)) == 0)
			return 1;
		poll(NULL, 0, ms > 20 ? 20 : ms);
	}
}

/* Stop pid: TERM, a grace period, KILL; reap (contract in process.h). */
void
proc_stop(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	if (proc_wait(pid, mono_ms() + PROC_KILL_GRACE_MS, &st) != 1)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Read fd to EOF within the deadline (contract in process.h). */
int
proc_read(int fd, char *buf, size_t max, size_t *len_r, int *too_big_r,
    long long deadline)
{
	struct pollfd pfd;
	char sink[512];
	size_t len = 0;
	ssize_t n;
	int ms;

	*too_big_r = 0;
	for (;;) {
		if ((ms = ms_left(deadline)) == 0) {
			*len_r = len;
			return 1;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ms) <= 0)
			continue;	/* EINTR or time up: checked above */
		if (len < max)
			n = read(fd, buf + len, max - len);
		else
			n = read(fd, sink, sizeof sink);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		if (len >= max)
			*too_big_r = 1;
		else
			len += (size_t)n;
	}
	*len_r = len;
	return 0;
}

/* Run spec to its end within timeout seconds (contract in process.h). */
int
proc_run(const struct proc_spec *spec, unsigned timeout, char *buf,
    size_t max, size_t *len_r, int *too_big_r, int *status_r, char **err)
{
	long long deadline;
	pid_t pid;
	int out, r, late;

	*len_r = 0;
	*too_big_r = 0;
	if ((r = proc_spawn(spec, &pid, &out, err)) != PM_OK)
		return r;
	deadline = mono_ms() + (long long)timeout * 1000;
	late = out >= 0 && proc_read(out, buf, max, len_r, too_big_r,
	    deadline) != 0;
	if (!late && (r = proc_wait(pid, deadline, status_r)) < 0) {
		r = errf(err, PM_ETEMP, "%s: waitpid: %s", spec->argv[0],
		    pm_strerror(errno));
		if (out >= 0)
			close(out);
		return r;
	}
	if (out >= 0)
		close(out);
	if (late || r == 1) {
		proc_stop(pid);
		return errf(err, PM_ETEMP, "%s did not finish within %u "
		    "seconds; stopped it", spec->argv[0], timeout);
	}
	return PM_OK;
}

/* A wait status in words (contract in process.h). */
char *
proc_status_text(const char *name, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return NULL;
	if (WIFEXITED(status))
		return xasprintf("%s exited with status %d", name,
		    WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return xasprintf("%s was killed by signal %d", name,
		    WTERMSIG(status));
	return xasprintf("%s stopped with wait status %#x", name, status);
}
