/*
 * notify_command: run once per failure only a human can fix, a flag file
 * in the token directory remembering that it ran.  The command is started
 * with the program found and the environment built before fork(), so the
 * child calls only async-signal-safe functions.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

extern char **environ;

/* --- a human must act ----------------------------------------------------- */

/* The flag file saying notify_command ran for the current event. */
static char *
notify_flag(const struct oauth_request *req)
{
	char hash[17];

	if (req->cache_dir == NULL || req->account == NULL)
		return NULL;
	hash_hex(req->account, hash);
	return xasprintf("%s/notified-%s", req->cache_dir, hash);
}

/* Run notify_command (split on blanks, no shell) with the account and the
 * message, any secret in it redacted, in PULLMAIL_ACCOUNT and
 * PULLMAIL_MESSAGE: never as an argument, which any local user can read
 * with ps. */
static void
notify_run(const struct oauth_request *req, const char *msg)
{
	char *copy, *p, *save, **argv = NULL, **env, *acct, *text, *clean;
	char *path;
	size_t n = 0, i, o;
	pid_t pid;
	int st, fd;

	copy = xstrdup(req->notify_command);
	for (p = strtok_r(copy, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		argv = xrealloc(argv, (n + 2) * sizeof *argv);
		argv[n++] = p;
	}
	if (n == 0) {
		free(copy);
		return;
	}
	argv[n] = NULL;
	clean = secret_redacted(msg);
	acct = xasprintf("PULLMAIL_ACCOUNT=%s", who(req));
	text = xasprintf("PULLMAIL_MESSAGE=%s", clean != NULL ? clean : msg);
	free(clean);
	/* Built before fork(): the child of a threaded process must not
	 * allocate, as putenv() may. */
	for (n = 0; environ[n] != NULL; n++)
		;
	env = xcalloc(n + 3, sizeof *env);
	for (i = o = 0; i < n; i++)
		if (strncmp(environ[i], "PULLMAIL_ACCOUNT=", 17) != 0 &&
		    strncmp(environ[i], "PULLMAIL_MESSAGE=", 17) != 0)
			env[o++] = environ[i];
	env[o++] = acct;
	env[o] = text;
	path = exec_resolve(argv[0]);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			dup2(fd, 0);
		if (path != NULL)
			execve(path, argv, env);
		_exit(127);
	}
	free(path);
	free(env);
	if (pid < 0)
		log_warn("%s: cannot run notify_command", who(req));
	else {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			log_warnx("%s: notify_command failed (status %d)",
			    who(req), WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	free(acct);
	free(text);
	free(argv);
	free(copy);
}

/* A failure a human must fix: run notify_command once per event. */
void
oauth_notify_human(const struct oauth_request *req, const char *msg)
{
	char *flag;
	int fd;

	if (req->notify_command == NULL || (flag = notify_flag(req)) == NULL)
		return;
	if (access(flag, F_OK) == 0) {
		log_debug("oauth", "%s: notify_command already ran for this "
		    "failure", who(req));
		free(flag);
		return;
	}
	notify_run(req, msg);
	if (mkdir_p(req->cache_dir, 0700) == 0 &&
	    (fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	free(flag);
}

/* A success: the next failure is a new event. */
void
oauth_notify_reset(const struct oauth_request *req)
{
	char *flag;

	if ((flag = notify_flag(req)) == NULL)
		return;
	if (unlink(flag) == 0)
		log_debug("oauth", "%s: cleared the notification flag",
		    who(req));
	free(flag);
}
