/* UID state: which messages of an account were delivered durably.
 * One file per account, "<state_dir>/<account>.state", mode 0600, rewritten
 * atomically (temp file, fsync, rename, fsync dir), bound to the mailbox
 * its UIDs were read from. */
#ifndef PM_STATE_H
#define PM_STATE_H

#include <stddef.h>

struct state;

/* The mailbox an account's UIDs belong to. */
struct state_binding {
	const char *protocol;	/* "imap", "pop3" (compared lower-cased) */
	const char *server;	/* host as configured (compared lower-cased) */
	unsigned port;		/* the port connected to */
	const char *user;	/* login name (compared exactly) */
};

/*
 * Lock and open the account's state (creating state_dir 0700 when
 * missing).  A missing file is an empty state.  A file recorded for another
 * protocol, server, port or user (b) is not loaded: a notice says what
 * changed, the state starts empty, and the first state_save() keeps the
 * old file as "<file>.replaced-YYYYMMDDTHHMMSS" (UTC).  A file from before
 * the binding is adopted, with a notice.  Errors: PM_EINTERNAL for a
 * malformed file (naming file and line), PM_ETEMP when another process
 * holds the lock, PM_EDELIVER for a symbolic link, a file that is not a
 * regular file of this user's, a directory every user may write to (not
 * sticky), or an I/O error.
 */
int state_open(const char *state_dir, const char *account,
    const struct state_binding *b, struct state **st_r, char **err);
void state_close(struct state *st);

/* Record mailbox's UIDVALIDITY.  Returns 1 when a different one was
 * recorded before: that mailbox's UIDs were dropped.  Else 0. */
int state_validity(struct state *st, const char *mailbox,
    const char *validity);
int state_known(const struct state *st, const char *mailbox, const char *uid);
/* Add uid as delivered (in memory until state_save). */
void state_add(struct state *st, const char *mailbox, const char *uid);
int state_prune(struct state *st, const char *mailbox,
    const char *const *present, size_t n);
/* Forget the UIDs gone[0..n) of mailbox (deleted on the server); returns
 * how many were recorded. */
int state_forget(struct state *st, const char *mailbox,
    const char *const *gone, size_t n);
/* Write the file atomically and fsync it; no-op when nothing changed. */
int state_save(struct state *st, char **err);
/* The state file's path (the journal lives beside it). */
const char *state_path(const struct state *st);
/* A mailbox name or UID escaped as the state file does (malloc'd), and
 * decoded in place (-1 when malformed). */
char *state_field_encode(const char *s);
int state_field_decode(char *s);

#endif
