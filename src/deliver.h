/*
 * The delivery stage seen by its callers (the fetch engine, the session,
 * the config checks): open a target, stream messages through it, sync,
 * close.  The targets themselves implement deliver-int.h.
 *
 * One interface, one implementation per target.
 * A message is streamed through it in bounded chunks; nothing holds it
 * whole.  Finishing a message and making it durable are separate steps so
 * that durability can be grouped (one sync for a batch), wherever the
 * target allows it:
 *
 *   maildir  finish: close the file in tmp/
 *            sync:   flush the batch's data (one syncfs), rename the
 *                    files into new/, one fsync of new/
 *   mbox     finish: append under the locks, write out, unlock (no fsync)
 *            sync:   one fsync of the file (and of its directory if new)
 *   mda      write:  spool into an unlinked file in $TMPDIR
 *            finish: start the MDA on the whole message, wait for its
 *                    exit status (per message)
 *            sync:   nothing left to do
 *   smtp     finish: wait for the reply to the end of DATA (LMTP: the
 *   lmtp             recipient's reply) on the one session of the run
 *            sync:   nothing left to do
 */
#ifndef PM_DELIVER_H
#define PM_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#define DELIVER_HEADER_MAX (256 * 1024)

struct account;
struct deliver;		/* an open target */
struct deliver_msg;	/* one message in flight */

/*
 * Facts about a message handed to the target when it begins.  The caller
 * of deliver_begin() fills the first fields; the stage fills sender and
 * recipient from the header section and the account before the target's
 * begin() sees them.
 */
struct deliver_info {
	const char *account;
	const char *server;
	const char *mailbox;
	const char *uid;
	uint64_t size;		/* server's size, 0 if unknown */
	const char *protocol;	/* "imap", "pop3"; NULL: unknown */
	const char *sender;	/* envelope sender, checked with
				 * envelope_addr_valid(); "" means <> */
	const char *recipient;	/* checked the same way (domain optional) */
};

/*
 * Split an MDA command line into a NULL-terminated argv (malloc'd, free
 * with proc_argv_free()) by the one rule of proc_split().  The words %F
 * and %T stand for the envelope sender and the recipient and must stand
 * alone.  NULL with *err set (PM_ECONFIG) on an unterminated quote, an
 * empty command or %F/%T inside a longer word.
 */
char **deliver_mda_split(const char *cmd, char **err);

/* Parse HOST[:PORT] or [V6]:PORT; *host_r malloc'd.  -1 when broken. */
int deliver_hostport(const char *s, unsigned def_port, char **host_r,
    unsigned *port_r);

/*
 * Open the account's delivery target: deliver_kind picks the target,
 * which is handed the account's delivery settings (deliver-int.h's struct
 * deliver_config), never the account itself; a is not kept.  The
 * recipient is the recipient setting or else the local user.  Errors:
 * PM_ECONFIG (an unknown kind, no usable recipient, a bad target
 * setting), PM_ETEMP and PM_EDELIVER from the target (a Maildir or mbox
 * that cannot be created or opened).
 */
int deliver_open(const struct account *a, struct deliver **d_r, char **err);
/*
 * Begin a message; converts CRLF to LF while streaming.  The header
 * section (up to DELIVER_HEADER_MAX) is held back until it is complete so
 * that the envelope sender can be taken from it and the optional header
 * lines (Return-Path, Delivered-To, Received) put in front; only then is
 * the target's begin() called, so deliver_write() and deliver_finish() can
 * report its errors too.  info and its strings are copied.  Never fails
 * today (PM_OK); callers still check.
 */
int deliver_begin(struct deliver *d, const struct deliver_info *info,
    struct deliver_msg **m_r, char **err);
/*
 * Stream len bytes of the message as the server sent them.  Errors: the
 * target's begin() and write() errors, PM_ETEMP or PM_EDELIVER; after a
 * failure the caller still calls deliver_abort(m).
 */
int deliver_write(struct deliver_msg *m, const void *buf, size_t len,
    char **err);
/*
 * The message is complete: the target finishes it (ops finish() in
 * deliver-int.h says when that makes it durable).  Frees m, on success
 * and on failure.  Errors: PM_ETEMP (retry next run), PM_EDELIVER.
 */
int deliver_finish(struct deliver_msg *m, char **err);
/* Discard the message; nothing of it stays in the target.  Frees m;
 * NULL is fine. */
void deliver_abort(struct deliver_msg *m);
/*
 * Every message finished since the last sync is durable when this returns
 * PM_OK; on failure none of them may be counted as delivered.  Errors:
 * PM_ETEMP, PM_EDELIVER.
 */
int deliver_sync(struct deliver *d, char **err);
/* Have deliver_sync() report each message it makes visible (the target's
 * on_visible()); 0 when the target has no such step (finish() makes a
 * message visible), else 1. */
int deliver_on_visible(struct deliver *d,
    void (*visible)(void *arg, size_t nth), void *arg);
/* Close the target (SMTP/LMTP: QUIT) without syncing, and free d; NULL
 * is fine. */
void deliver_close(struct deliver *d);

/*
 * `pullmail check`: whether a's target can take mail, delivering nothing
 * and leaving nothing behind: a Maildir's tmp/ (or, not there yet, the
 * directory it will be created in) takes a file, removed at once; an mbox
 * opens for appending; the MDA's program is found and executable; the
 * SMTP/LMTP server answers its greeting and EHLO/LHLO (then QUIT).  PM_OK
 * with *note_r (malloc'd) saying what was checked.  Errors: PM_EDELIVER
 * (saying what to change), PM_ETEMP (the MTA), PM_ECONFIG.
 */
int deliver_probe(const struct account *a, char **note_r, char **err);

#endif
