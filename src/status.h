/*
 * The status file: what each account of a running daemon or of the last
 * one-shot run is doing, for `pullmail status` and monitoring.
 *
 * One file per configuration file (status_path), next to the UID state.
 * A process registers the accounts it runs (status_account) and owns
 * their records; setters only change memory and mark it dirty, and
 * status_flush writes the file when dirty: under an flock on PATH.lock it
 * rereads the file, keeps the records of accounts it does not own (another
 * run's), replaces its own, writes PATH.tmp (mode 0600), fsyncs it and
 * renames it over PATH.  So setters are cheap enough to call on every
 * state change, and a scheduler flushes once per loop turn.
 *
 * Every function is thread-safe (one mutex for the records, another
 * serialising flushes).  Account names are matched exactly; a setter for an
 * account that was never registered registers it.
 */
#ifndef PM_STATUS_H
#define PM_STATUS_H

#include <stdio.h>
#include <time.h>

struct account;
struct config;

enum status_state {
	ST_IDLE = 0,	/* waiting for the next poll (or the next run) */
	ST_POLLING,	/* fetching now */
	ST_IDLING,	/* IMAP IDLE: waiting for the server to say */
	ST_BACKOFF,	/* failed; retrying at status_set_backoff's time */
	ST_HUMAN,	/* only a person can fix it (authorization, config) */
	ST_STOPPED	/* no longer run by this process */
};

/* The status file of cfg (malloc'd): STATE_DIR/status-HASH, where
 * STATE_DIR is the first account's state_dir and HASH is of the config
 * file's absolute path, so instances with their own config files sharing
 * a state directory keep apart. */
char *status_path(const struct config *cfg);

/* Write to path (copied) from now on; the process's start time and pid go
 * into its records.  Nothing is written until the first status_flush. */
void status_open(const char *path);

/* Own the record of account name: state ST_IDLE, nothing delivered yet;
 * the last success, last error and token expiry of the record on disk
 * (another run's) are carried over.  Again for a known name: no-op. */
void status_account(const char *name);

/* Drop the record of name from the file at the next flush (an account
 * removed from the configuration). */
void status_forget(const char *name);

/* The state of name; any backoff time is cleared. */
void status_set_state(const char *name, enum status_state st);

/* ST_BACKOFF until time until (0: until the next run). */
void status_set_backoff(const char *name, time_t until);

/* A fetch of name completed: the last success is now. */
void status_set_success(const char *name);

/* The last error of name (one line; secrets are redacted again here); its
 * time is now. */
void status_set_error(const char *name, const char *text);

/* n more messages of name delivered. */
void status_add_delivered(const char *name, unsigned long n);

/* When the access token of name expires (0: unknown). */
void status_set_token_expiry(const char *name, time_t at);

/* A fetch of account a starts (a worker took it): ST_POLLING. */
void status_fetch_begin(const struct account *a);

/*
 * A fetch of account a ended with r (PM_*) after delivering n messages,
 * with the error message err when r is not PM_OK: ST_IDLE and the last
 * success now, or the last error and ST_HUMAN (PM_EAUTH, PM_ECONFIG: the
 * classes that pause an account) or ST_BACKOFF until the next run (the
 * daemon then sets its retry time with status_set_backoff); and the
 * token's recorded expiry (reads the token cache, no request).
 */
void status_fetch_end(struct account *a, int r, unsigned long n,
    const char *err);

/* A one-line summary of this process's accounts for sdnotify_status
 * (malloc'd): "3 accounts: 2 idling, 1 backing off" (states in enum
 * order, those with no account left out). */
char *status_summary(void);

/* Write the file if anything changed since the last write.  Errors (the
 * file is left as it was, the records stay dirty): PM_ETEMP with a
 * message naming the file. */
int status_flush(char **err);

/* status_flush, with a warning when the file cannot be written: once,
 * and again only after a write that worked (for a loop that calls it
 * every turn). */
void status_sync(void);

/* Flush (errors only logged) and forget everything; status_open may
 * follow.  A no-op without status_open. */
void status_close(void);

/*
 * `pullmail status`: print the records of the names[0..n) (in that order;
 * every one must be an account) from the file at path, as of now, to out.
 * Returns the exit status: 0 all well, 1 an account is backing off or its
 * last attempt failed, 2 an account needs a human, 3 no status file or
 * no record for an account (2 outranks 3 outranks 1).  A file that cannot
 * be read or parsed: a message on stderr and 3.
 */
int status_report(const char *path, char *const *names, size_t n, time_t now,
    FILE *out);

#endif
