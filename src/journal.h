/*
 * The delivery journal: the messages that became visible to the user
 * since the UID state last recorded them, so that a run killed between a
 * batch's delivery and its state_save() costs at most one duplicate (the
 * message made visible but not yet written here) instead of the batch.
 *
 * One append-only file beside the account's state file, "<state>.journal",
 * mode 0600, opened without following a link:
 *
 *	pullmail-journal 1
 *	B <boot id>
 *	V <mailbox> <validity>		(before the first key of a mailbox)
 *	U <mailbox> <uid>
 *
 * fields tab-separated and escaped as in the state file.  A line is
 * written with one write(2) the moment its message became visible, never
 * fsync'd: a killed process loses nothing of the page cache, and a
 * machine that went down shows another boot id, whose journal is thrown
 * away (its messages are fetched again: duplicates, never losses).  The
 * engine empties the journal once state_save() has made the batch
 * durable, before it disposes of the batch on the server.
 */
#ifndef PM_JOURNAL_H
#define PM_JOURNAL_H

struct journal;
struct state;

/*
 * Open the journal of state st (whose lock the caller holds) and replay
 * what a run killed before left in it: written under this boot, its keys
 * are synced (sync(2)), added to st and saved; written under another boot,
 * it is discarded.  Either is logged for account.  The journal is then
 * empty.  Errors: PM_EDELIVER (PM_ETEMP when the disk is full) when the
 * journal cannot be opened or read or the state cannot be saved; the
 * journal is then left as it was.
 */
int journal_open(struct state *st, const char *account, struct journal **j_r,
    char **err);

/* The mailbox (and its UIDVALIDITY, or NULL) of the keys added next.
 * Copies both. */
void journal_folder(struct journal *j, const char *mailbox,
    const char *validity);

/*
 * Record that message uid of the current mailbox is visible.  A failure
 * to write is logged once and turns the journal off for the run (a crash
 * then costs up to a batch of duplicates, as without a journal).
 */
void journal_add(struct journal *j, const char *uid);

/* Empty the journal: its keys are recorded in the state file, or were
 * never durable (a failed sync) and are fetched again. */
void journal_clear(struct journal *j);

/* Close the journal; keys still in it are replayed by the next run.
 * NULL is fine. */
void journal_close(struct journal *j);

#endif
