/* One account's run: the host services handed to a plugin, and the loop
 * that fetches an account with its plugin. */
#ifndef PM_SESSION_H
#define PM_SESSION_H

#include <stdint.h>

#include <pullmail/plugin.h>

#include "fetch.h"

struct account;

/* The table of host services every plugin receives. */
extern const struct pm_host session_host;

/*
 * Fetch one account with plugin p through the fetch engine; progress
 * draws a progress line on stderr (a terminal only).  When the server
 * rejects an OAuth token that came from the cache, the token is dropped
 * and the run retried once with a fresh one.
 *
 * A session that ends with PM_ETEMP for a reason the plugin named
 * (retry_hint(): throttled, lost, token expired) is followed by a new one,
 * which goes on where it stopped (the state file holds what was
 * delivered): after the server's suggested wait, capped by the account's
 * throttle_max_wait; after 1 s, doubling (at most 8 s) while sessions
 * get nowhere, for a lost session; at once, with a new token, for an
 * expired one.  A session also ends at a batch boundary shortly before
 * its token expires (the last 5 minutes, or the last half of a shorter
 * life) and the run goes on with a new token.  After SESSION_RETRIES (3) new sessions in a row without a
 * message delivered, or when a wait is cut short by a signal, the
 * PM_ETEMP is returned.  Returns PM_OK or a status class with *err set.
 */
int session_run(struct account *a, const struct pm_plugin *p, int progress,
    struct run_stats *stats, char **err);

/* What session_probe() got to. */
struct session_probe_result {
	int logged_in;			/* open() succeeded */
	int token_refused;		/* the server refused the OAuth token */
	const char *failed_folder;	/* the folder select() refused (""
					 * for a POP3 maildrop), or NULL */
};

/*
 * `pullmail check`: open a session of account a with plugin p (connect,
 * TLS, login; the access token as a fetch gets it) and select each of its
 * folders (POP3: the maildrop, listed for its count), calling selected() with folder
 * NULL once logged in and then for each folder selected with the count
 * the server gave; then close.  Nothing is
 * fetched, flagged or deleted.  res says how far it got.  Returns PM_OK
 * or the failing slot's status with *err set.
 */
int session_probe(struct account *a, const struct pm_plugin *p,
    void (*selected)(void *arg, const char *folder, uint64_t count),
    void *arg, struct session_probe_result *res, char **err);

/* How long an IMAP IDLE lasts before it is re-issued (RFC 2177: at most
 * 29 minutes). */
#define IDLE_RENEW_MS	(29 * 60 * 1000)

/* What the daemon hands session_idle(): callbacks with arg. */
struct idle_ctl {
	void *arg;
	int wake_fd;		/* readable: end an IDLE wait early */
	/* 1 when the daemon is stopping or this watcher must end. */
	int (*stopping)(void *arg);
	/* 1 (once) when a poll was asked for since the last call. */
	int (*woken)(void *arg);
	/* Take (on = 1) or release the account's lock around a pass. */
	void (*lock)(void *arg, int on);
	/* After every pass: what it delivered. */
	void (*report)(void *arg, const struct run_stats *stats);
};

/* How a session_idle() ended, besides its status. */
struct session_outcome {
	int no_idle;		/* the server does not offer IDLE: poll */
	int connected;		/* it got as far as idling */
	int renew;		/* ended before the access token of the
				 * session runs out: reconnect now */
	int retry_kind;		/* enum pm_retry the plugin reported, 0 */
	unsigned retry_ms;	/* the server's suggested wait */
};

/*
 * Keep folder of account a (plugin p) fetched with IMAP IDLE: connect,
 * fetch what is new, then wait for news and fetch again, until
 * ctl->stopping() or a failure.  Every pass takes the account's lock
 * (ctl->lock) and opens the state and the target for its duration.
 * Returns PM_OK when stopped (or out->no_idle, out->renew), else the
 * failure's status with *err set and out saying more.
 */
int session_idle(struct account *a, const struct pm_plugin *p,
    const char *folder, const struct idle_ctl *ctl,
    struct session_outcome *out, char **err);

/*
 * The one rule for the wait before a new session after one ended with
 * PM_ETEMP, shared by session_run() and the daemon's IDLE watchers.
 * What differs between them is in the policy.
 */
struct retry_policy {
	unsigned throttle_max_wait;	/* seconds: the most a server's
					 * suggested wait is honoured for */
	unsigned quick;			/* failures in a row that reconnect
					 * after 1, 2, 4 s ... (at most
					 * 8 s) */
	/* The wait after n failures in a row, once past quick or for a
	 * failure that neither got connected nor is a reconnect; a
	 * throttle past quick waits at least backoff(attempt - quick).
	 * NULL: the quick waits go on. */
	long long (*backoff)(unsigned n);
};

/*
 * Milliseconds to wait before a new session after failure number attempt
 * in a row (0 counts as 1) that ended for kind (enum pm_retry, 0: none
 * said).  suggested_ms is the server's wait (0: none); connected says the
 * session got going before it failed (the daemon: as far as idling).  An expired token: at once the first time.
 * Throttled with a suggestion: the suggestion, capped by
 * throttle_max_wait, but never less than the backoff once past quick.  A
 * lost connection (or one that got connected): 1, 2, 4 s ... for quick
 * attempts.  Everything else: the backoff.
 */
long long session_retry_wait(int kind, unsigned attempt, int connected,
    unsigned suggested_ms, const struct retry_policy *pol);

#endif
