/*
 * Secrets from a secret manager: run a command and take what it prints.
 * Used for password_command, oauth_client_secret_command and
 * oauth_token_command.
 */
#ifndef PM_COMMAND_H
#define PM_COMMAND_H

#include <stddef.h>

#include "secret.h"

/* Seconds a command may take when no account timeout applies. */
#define COMMAND_TIMEOUT 60

/*
 * Run cmd, split into an argv by proc_split() (no shell), with stdin from
 * /dev/null and stderr inherited, and set *s_r to its standard output
 * without trailing newlines as a secret (at most max bytes).  The command
 * has timeout seconds (0: COMMAND_TIMEOUT) to print and exit, else it is
 * stopped (SIGTERM, then SIGKILL) and reaped.  On failure *s_r is NULL and
 * *why_r a malloc'd reason naming the command, never containing its
 * output.  Errors: PM_ETEMP (timed out, no pipe or process), PM_ECONFIG
 * (empty, unterminated quote, cannot run, exits non-zero, is killed,
 * prints nothing or too much).
 */
int command_secret(const char *cmd, size_t max, unsigned timeout,
    struct pm_secret **s_r, char **why_r);

#endif
