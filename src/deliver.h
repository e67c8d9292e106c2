/* The delivery stage: one interface, one implementation per target.
 * A message is streamed through it in bounded chunks; nothing holds it
 * whole.  Finishing a message and making it durable are separate steps so
 * that durability can be grouped (one sync for a batch). */
#ifndef PM_DELIVER_H
#define PM_DELIVER_H

#include <stddef.h>
#include <stdint.h>

struct account;
struct deliver;		/* an open target */
struct deliver_msg;	/* one message in flight */

/* Facts about a message handed to the target when it begins. */
struct deliver_info {
	const char *account;
	const char *server;
	const char *mailbox;
	const char *uid;
	uint64_t size;		/* server's size, 0 if unknown */
};

struct deliver_ops {
	const char *name;
	/*
	 * Open the target described by arg (a path for maildir).  Create it
	 * if missing where that makes sense.  Errors: PM_EDELIVER, PM_ETEMP.
	 */
	int (*open)(const char *arg, void **ctx_r, char **err);
	/* Start one message.  *m_r is the target's state for it. */
	int (*begin)(void *ctx, const struct deliver_info *info, void **m_r,
	    char **err);
	/* Append bytes with LF line ends (CRLF already converted). */
	int (*write)(void *ctx, void *m, const void *buf, size_t len,
	    char **err);
	/* The message is complete; the target may still buffer it.
	 * Frees m on success and on failure. */
	int (*finish)(void *ctx, void *m, char **err);
	/* Discard the message and free m. */
	void (*abort)(void *ctx, void *m);
	/* Every finished message is durable when this returns PM_OK. */
	int (*sync)(void *ctx, char **err);
	void (*close)(void *ctx);
};

extern const struct deliver_ops deliver_maildir_ops;

/* Open the account's delivery target. */
int deliver_open(const struct account *a, struct deliver **d_r, char **err);
/* Begin a message; converts CRLF to LF while streaming.  */
int deliver_begin(struct deliver *d, const struct deliver_info *info,
    struct deliver_msg **m_r, char **err);
int deliver_write(struct deliver_msg *m, const void *buf, size_t len,
    char **err);
/* Frees m. */
int deliver_finish(struct deliver_msg *m, char **err);
/* Frees m. */
void deliver_abort(struct deliver_msg *m);
int deliver_sync(struct deliver *d, char **err);
void deliver_close(struct deliver *d);

#endif
