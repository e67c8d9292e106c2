/*
 * The delivery stage: one interface, one implementation per target.
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

struct deliver_ops {
	const char *name;
	/*
	 * Open the target of account a (a->deliver_path and the delivery
	 * settings).  Create it if missing where that makes sense; a target
	 * that connects (SMTP, LMTP) may do so lazily.  Errors: PM_EDELIVER,
	 * PM_ETEMP, PM_ECONFIG.
	 */
	int (*open)(const struct account *a, void **ctx_r, char **err);
	/*
	 * Start one message.  *m_r is the target's state for it.  info and
	 * its strings are valid only during the call.  Errors: PM_ETEMP
	 * (retry next run: lock busy, MTA 4xx), PM_EDELIVER.
	 */
	int (*begin)(void *ctx, const struct deliver_info *info, void **m_r,
	    char **err);
	/* Append bytes with LF line ends (CRLF already converted: a CR
	 * still in them was a bare CR of the message).  On failure the
	 * caller still calls abort(). */
	int (*write)(void *ctx, void *m, const void *buf, size_t len,
	    char **err);
	/*
	 * The message is complete.  It need not be durable yet (mbox,
	 * Maildir: sync() makes it so), but a target whose peer decides
	 * (MDA exit status, MTA reply to the end of DATA) waits for that
	 * answer here, and then it is.  A failure concerns this message
	 * alone: those finished before are unaffected.  Frees m on success
	 * and on failure.  Errors: PM_ETEMP, PM_EDELIVER.
	 */
	int (*finish)(void *ctx, void *m, char **err);
	/* Discard the message (nothing of it may stay behind) and free m. */
	void (*abort)(void *ctx, void *m);
	/*
	 * Every message finished since the last sync is durable when this
	 * returns PM_OK.  On failure none of them may be counted as
	 * delivered, and a target that cannot vouch for them any more
	 * fails every later sync too (mbox after a failed fsync).  Errors:
	 * PM_ETEMP, PM_EDELIVER.
	 */
	int (*sync)(void *ctx, char **err);
	/*
	 * Only for a target whose finish() leaves the message out of the
	 * user's sight (Maildir: a file in tmp/) and whose sync() shows it
	 * (the rename into new/): from now on sync() calls visible(arg, nth)
	 * right after the nth message (from 0, in the order finish()
	 * succeeded since the previous sync) became visible, so that the
	 * engine can journal it; visible NULL stops that.  NULL for the
	 * targets where finish() makes the message visible.
	 */
	void (*on_visible)(void *ctx, void (*visible)(void *arg, size_t nth),
	    void *arg);
	/* Close the target (SMTP/LMTP: QUIT) and free ctx.  It does not
	 * sync: what was finished but not synced was never reported. */
	void (*close)(void *ctx);
};

extern const struct deliver_ops deliver_maildir_ops;
extern const struct deliver_ops deliver_mbox_ops;
extern const struct deliver_ops deliver_mda_ops;
extern const struct deliver_ops deliver_smtp_ops;
extern const struct deliver_ops deliver_lmtp_ops;

/*
 * Split an MDA command line into a NULL-terminated argv (malloc'd, free
 * with proc_argv_free()) by the one rule of proc_split().  The words %F
 * and %T stand for the envelope sender and the recipient and must stand
 * alone.  NULL with *err set (PM_ECONFIG) on an unterminated quote, an
 * empty command or %F/%T inside a longer word.
 */
char **deliver_mda_split(const char *cmd, char **err);

/*
 * The SMTP/LMTP DATA encoder (exposed for the tests).  in is what the
 * stage hands a target: LF line ends, and any CR in it a bare CR of the
 * message.  Writes CRLF for each LF and each CR, drops NUL bytes and
 * doubles a '.' at the start of a line; *bol (1 at the start of a
 * message) carries the state from one call to the next.  out must have
 * room for 2 * len bytes; returns the bytes written.
 */
size_t deliver_smtp_encode(int *bol, const char *in, size_t len, char *out);

/* Parse HOST[:PORT] or [V6]:PORT; *host_r malloc'd.  -1 when broken. */
int deliver_hostport(const char *s, unsigned def_port, char **host_r,
    unsigned *port_r);

/* Open the account's delivery target. */
int deliver_open(const struct account *a, struct deliver **d_r, char **err);
/*
 * Begin a message; converts CRLF to LF while streaming.  The header
 * section (up to DELIVER_HEADER_MAX) is held back until it is complete so
 * that the envelope sender can be taken from it and the optional header
 * lines (Return-Path, Delivered-To, Received) put in front; only then is
 * the target's begin() called, so deliver_write() and deliver_finish() can
 * report its errors too.
 */
int deliver_begin(struct deliver *d, const struct deliver_info *info,
    struct deliver_msg **m_r, char **err);
int deliver_write(struct deliver_msg *m, const void *buf, size_t len,
    char **err);
/* Frees m. */
int deliver_finish(struct deliver_msg *m, char **err);
/* Frees m. */
void deliver_abort(struct deliver_msg *m);
int deliver_sync(struct deliver *d, char **err);
/* Have deliver_sync() report each message it makes visible (the target's
 * on_visible()); 0 when the target has no such step (finish() makes a
 * message visible), else 1. */
int deliver_on_visible(struct deliver *d,
    void (*visible)(void *arg, size_t nth), void *arg);
void deliver_close(struct deliver *d);

#endif
