/*
 * Secrets printed by a command (a secret manager such as pass, secret-tool
 * or a vault client).  The command is split into an argv by the one rule
 * of process.h: no shell ever sees the configuration's text.  Reading its
 * output and waiting for its exit share one deadline; a command still
 * running then is stopped.
 *
 * Threads: no shared state; the process helper keeps the child
 * async-signal-safe.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "command.h"
#include "process.h"
#include "secret.h"
#include "util.h"

/* Run cmd and take its output as a secret (contract in command.h). */
int
command_secret(const char *cmd, size_t max, unsigned timeout,
    struct pm_secret **s_r, char **why_r)
{
	struct proc_spec spec = { .in = -1, .out_pipe = 1 };
	char **argv, *buf;
	size_t len = 0;
	int st, too_big = 0, r;

	*s_r = NULL;
	if ((argv = proc_split(cmd, why_r)) == NULL)
		return PM_ECONFIG;
	spec.argv = argv;
	buf = xmalloc(max + 1);
	r = proc_run(&spec, timeout != 0 ? timeout : COMMAND_TIMEOUT, buf,
	    max, &len, &too_big, &st, why_r);
	if (r != PM_OK)
		goto out;
	r = PM_ECONFIG;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if ((*why_r = proc_status_text(argv[0], st)) != NULL)
		goto out;
	if (too_big)
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
	proc_argv_free(argv);
	return r;
}
