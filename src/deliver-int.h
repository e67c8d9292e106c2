/*
 * The delivery stage seen by its targets (deliver-maildir.c, -mbox.c,
 * -mda.c, -smtp.c): the ops table each one fills, the configuration it is
 * opened with, and the helpers they share.  Callers use deliver.h only;
 * deliver.c is the one place that picks a table and calls through it.
 */
#ifndef PM_DELIVER_INT_H
#define PM_DELIVER_INT_H

#include <stddef.h>

#include "deliver.h"

/*
 * What a target reads of the account: built by deliver_open() from the
 * account each time a target is opened, with the defaults applied, so
 * that no target sees struct account.
 */
struct deliver_config {
	const char *account;	/* the account's name, for messages; "" when
				 * it has none */
	const char *target;	/* maildir, mbox: the path (expanded); mda:
				 * the command line; smtp: HOST[:PORT];
				 * lmtp: HOST[:PORT] or a socket's path.
				 * NULL when not set */
	const char *recipient;	/* the recipient setting, NULL when not set
				 * (mbox: a new file of root's is given to
				 * this user) */
	unsigned timeout;	/* smtp, lmtp: seconds for the connect and
				 * each read or write (default 60) */
	unsigned lock_timeout;	/* mbox: seconds to wait for the locks
				 * (default 60) */
	unsigned mda_timeout;	/* mda: seconds the MDA may take (default
				 * 600) */
};

struct deliver_ops {
	const char *name;
	/*
	 * Open the target described by cfg; cfg and its strings are valid
	 * only during the call (a target copies what it keeps).  Create it
	 * if missing where that makes sense; a target that connects (SMTP,
	 * LMTP) may do so lazily.  Errors: PM_EDELIVER, PM_ETEMP,
	 * PM_ECONFIG.
	 */
	int (*open)(const struct deliver_config *cfg, void **ctx_r,
	    char **err);
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
 * The SMTP/LMTP DATA encoder (exposed for the tests).  in is what the
 * stage hands a target: LF line ends, and any CR in it a bare CR of the
 * message.  Writes CRLF for each LF and each CR, drops NUL bytes and
 * doubles a '.' at the start of a line; *bol (1 at the start of a
 * message) carries the state from one call to the next.  out must have
 * room for 2 * len bytes; returns the bytes written.
 */
size_t deliver_smtp_encode(int *bol, const char *in, size_t len, char *out);

/* smtp/lmtp: connect, read the greeting and say EHLO/LHLO on the target
 * ctx (from deliver_smtp_ops or deliver_lmtp_ops open()); close() then
 * says QUIT.  Errors: those of a delivery's connection. */
int deliver_smtp_hello(void *ctx, char **err);

#endif
