/*
 * Secrets printed by a command (a secret manager such as pass, secret-tool
 * or a vault client).  The command is an argv split at blanks: no shell
 * ever sees the configuration's text.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "secret.h"
#include "util.h"

/* cmd split at blanks, ~/ expanded; NULL-terminated, words malloc'd. */
static char **
split_argv(const char *cmd)
{
	const char *home = getenv("HOME");
	char *copy, *w, **argv = NULL;
	size_t n = 0;

	copy = xstrdup(cmd);
	for (w = strtok(copy, " \t"); w != NULL; w = strtok(NULL, " \t")) {
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

/* Run cmd and take its output as a secret (contract in command.h). */
struct pm_secret *
command_secret(const char *cmd, size_t max, char **why_r)
{
	struct pm_secret *s = NULL;
	char **argv, *buf;
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int fds[2], st, fd, too_big = 0;

	if ((argv = split_argv(cmd)) == NULL) {
		*why_r = xstrdup("empty command");
		return NULL;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		*why_r = xasprintf("pipe: %s", strerror(errno));
		free_argv(argv);
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		*why_r = xasprintf("fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free_argv(argv);
		return NULL;
	}
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDONLY)) >= 0)
			dup2(fd, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	buf = xmalloc(max + 1);
	for (;;) {
		n = read(fds[0], buf + len, len < max ? max - len : 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len >= max) {
			too_big = 1;
			continue;	/* drain, so the child can exit */
		}
		len += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
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
	else
		s = secret_new(buf, len);
	secret_wipe(buf, max + 1);
	free(buf);
	free_argv(argv);
	return s;
}
