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

#endif
