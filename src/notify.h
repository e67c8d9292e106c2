/*
 * notify_command: tell a human that only a human can fix what failed (a
 * refused refresh token, a login refused for good), once per event.
 */
#ifndef PM_NOTIFY_H
#define PM_NOTIFY_H

/*
 * Run command (split by proc_split(), no shell, no arguments added) for
 * account with the message in PULLMAIL_MESSAGE and the account in
 * PULLMAIL_ACCOUNT, any secret in msg redacted: never on its command line,
 * which any local user can read with ps.  stdin is /dev/null, stdout and
 * stderr are ours; the command has timeout seconds (0: COMMAND_TIMEOUT),
 * then it is stopped.  A flag file in dir (made 0700 when missing) remembers that it
 * ran, so it runs once per event until notify_reset().  Failures are
 * logged, never returned: the failure being reported matters more.
 * Nothing happens when command, dir or account is NULL.
 */
void notify_human(const char *command, const char *dir, const char *account,
    unsigned timeout, const char *msg);

/* The account worked again: the next failure is a new event. */
void notify_reset(const char *dir, const char *account);

#endif
