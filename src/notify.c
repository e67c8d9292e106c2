/*
 * notify_command (contract in notify.h).
 *
 * Threads: no shared state; the flag file is per account, and the process
 * helper keeps the child async-signal-safe.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "command.h"
#include "log.h"
#include "notify.h"
#include "process.h"
#include "secret.h"
#include "util.h"

/* The flag file saying notify_command ran for the current event. */
static char *
notify_flag(const char *dir, const char *account)
{
	char hash[17];

	if (dir == NULL || account == NULL)
		return NULL;
	hash_hex(account, hash);
	return xasprintf("%s/notified-%s", dir, hash);
}

/* Run command with the account and msg (redacted) in its environment. */
static void
notify_run(const char *command, const char *account, unsigned timeout,
    const char *msg)
{
	struct proc_spec spec = { .in = -1 };
	char *set[3], **argv, **env, *clean, *err = NULL;
	size_t len;
	int st, too_big, r;

	if ((argv = proc_split(command, &err)) == NULL) {
		log_warnx("%s: notify_command: %s", account, err);
		free(err);
		return;
	}
	clean = secret_redacted(msg);
	set[0] = xasprintf("PULLMAIL_ACCOUNT=%s", account);
	set[1] = xasprintf("PULLMAIL_MESSAGE=%s", clean != NULL ? clean :
	    msg);
	set[2] = NULL;
	free(clean);
	env = proc_env((const char *const *)set);
	spec.argv = argv;
	spec.env = env;
	r = proc_run(&spec, timeout != 0 ? timeout : COMMAND_TIMEOUT, NULL, 0,
	    &len, &too_big, &st, &err);
	if (r == PM_OK)
		err = proc_status_text(argv[0], st);
	if (err != NULL)
		log_warnx("%s: notify_command failed: %s", account, err);
	free(err);
	proc_argv_free(env);
	free(set[0]);
	free(set[1]);
	proc_argv_free(argv);
}

/* A failure a human must fix: run the command once per event. */
void
notify_human(const char *command, const char *dir, const char *account,
    unsigned timeout, const char *msg)
{
	char *flag;
	int fd;

	if (command == NULL || (flag = notify_flag(dir, account)) == NULL)
		return;
	if (access(flag, F_OK) == 0) {
		log_debug("oauth", "%s: notify_command already ran for this "
		    "failure", account);
		free(flag);
		return;
	}
	notify_run(command, account, timeout, msg);
	if (mkdir_p(dir, 0700) == 0 &&
	    (fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	free(flag);
}

/* A success: the next failure is a new event. */
void
notify_reset(const char *dir, const char *account)
{
	char *flag;

	if ((flag = notify_flag(dir, account)) == NULL)
		return;
	if (unlink(flag) == 0)
		log_debug("oauth", "%s: cleared the notification flag",
		    account);
	free(flag);
}
