/*
 * Secrets from a secret manager: run a command and take what it prints.
 * Used for password_command, oauth_client_secret_command and
 * oauth_token_command.
 */
#ifndef PM_COMMAND_H
#define PM_COMMAND_H

#include <stddef.h>

#include "secret.h"

/*
 * Run cmd, split at blanks into an argv (no shell; a leading ~/ of each
 * word is the home directory), with stdin from /dev/null and stderr
 * inherited, and return its standard output without trailing newlines as a
 * secret (at most max bytes).  NULL with a malloc'd reason in *why_r (that
 * never contains the output) when it cannot run, exits non-zero, is killed,
 * prints nothing or too much.
 */
struct pm_secret *command_secret(const char *cmd, size_t max, char **why_r);

#endif
