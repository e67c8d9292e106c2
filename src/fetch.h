/*
 * The fetch engine: the one place that knows the fetch policy, for every
 * protocol.  It drives a backend plugin step by step (open, select, list,
 * fetch a set, dispose of a set, close) and decides which messages are new
 * (UID state), which are too big, how many go in one batch, when a batch is
 * synced, recorded and disposed of on the server, and what a failure of one
 * message or of the connection means.
 *
 * The no-loss rule lives here alone: a message is disposed of on the server
 * only after the target's sync() covered it and its UID is in the state
 * file (written and fsync'd).  A message whose delivery or transfer failed
 * is neither recorded nor disposed of: it is fetched again next time.
 * Between a message becoming visible and the state recording it, its key
 * is in the delivery journal (journal.h), so that a run killed there
 * delivers at most that one message again.
 */
#ifndef PM_FETCH_H
#define PM_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include <pullmail/plugin.h>

struct deliver;
struct deliver_info;
struct state;

/* What one account's run did, for the summary line. */
struct run_stats {
	unsigned long delivered;	/* messages delivered and recorded */
	uint64_t bytes;			/* their size as delivered */
	unsigned long skipped;		/* over the size limit */
	unsigned long failed;		/* left on the server after a failure */
	int renew;			/* the run ended early, after a batch,
					 * because renew_at_ms passed: go on
					 * with a new session (not a
					 * failure) */
};

/* The account's fetch policy, as the config says. */
struct fetch_policy {
	const char *account;		/* for log lines and the target */
	const char *server;
	const char *protocol;		/* "imap", "pop3" */
	const char *const *folders;	/* for PM_PLUGIN_FOLDERS plugins */
	size_t nfolders;
	int keep;			/* 1: leave messages on the server */
	int mark_seen;			/* with keep: flag them \Seen */
	int fetch_all;			/* fetch even without stable UIDs */
	uint64_t size_limit;		/* 0: none */
	size_t batch_msgs;		/* most messages per batch (> 0) */
	uint64_t batch_bytes;		/* most listed bytes per batch (> 0) */
	int progress;			/* draw a progress line on stderr */
	long long renew_at_ms;		/* mono_ms() after which the session
					 * ends at the next batch boundary
					 * (its access token is about to
					 * expire); 0: never.  Read at each
					 * boundary, so it may be set while
					 * the run goes on. */
};

/* Defaults for fetch_policy's batch bounds: a sync (fsync) and a save of
 * the state cover up to this much (the journal keeps a crash in between
 * from fetching the batch again). */
#define FETCH_BATCH_MSGS	500
#define FETCH_BATCH_BYTES	((uint64_t)64 << 20)

/*
 * Where the engine delivers: the delivery stage (fetch_target_deliver()),
 * or a test's own.  The slots mean what the delivery stage's functions of
 * the same names mean (deliver.h): begin a message, write its bytes (CRLF
 * line ends), finish it (frees m either way), abort it (frees m), and make
 * every finished message durable.  on_visible, when not NULL, is the
 * delivery stage's deliver_on_visible(): it returns 1 when sync() will
 * report each message it makes visible, 0 when finish() makes them so.
 */
struct fetch_target {
	void *ctx;
	int (*begin)(void *ctx, const struct deliver_info *info, void **m_r,
	    char **err);
	int (*write)(void *m, const void *buf, size_t len, char **err);
	int (*finish)(void *m, char **err);
	void (*abort)(void *m);
	int (*sync)(void *ctx, char **err);
	int (*on_visible)(void *ctx, void (*visible)(void *arg, size_t nth),
	    void *arg);
};

/* A target that delivers through the delivery stage d. */
void fetch_target_deliver(struct fetch_target *t, struct deliver *d);

/*
 * Fetch the account with plugin p over host h and session s: open, every
 * folder, close.  Messages go to t; st is the account's UID state.  Returns
 * PM_OK, the status of the step that broke the session (the messages
 * completed before it are still synced and recorded), or else the worst
 * per-message failure (PM_EDELIVER over PM_ETEMP) after every other
 * message was dealt with; *err is set with the reason.  When
 * pol->renew_at_ms passed after at least one batch of this run was
 * committed and more is to come, the run closes the session and returns
 * PM_ETEMP with stats->renew set.
 */
int fetch_run(const struct fetch_policy *pol, const struct fetch_target *t,
    struct state *st, const struct pm_plugin *p, const struct pm_host *h,
    struct pm_session *s, struct run_stats *stats, char **err);

/*
 * The same on a connection that stays open (the daemon's IMAP IDLE
 * sessions): every folder of pol on c, which the caller opened with
 * p->open() and closes itself, so that it can wait for news in between.
 * Not for a plugin that deletes only at close (PM_PLUGIN_DELETE_AT_CLOSE)
 * with keep = no: PM_EINTERNAL.  Returns as fetch_run() does.
 */
int fetch_pass(const struct fetch_policy *pol, const struct fetch_target *t,
    struct state *st, const struct pm_plugin *p, struct pm_conn *c,
    struct run_stats *stats, char **err);

#endif
