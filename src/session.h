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
 * draws a progress line on stderr (a terminal only).  When the server rejects an OAuth token
 * that came from the cache, the token is dropped and the run retried once
 * with a fresh one.  Returns PM_OK or a status class with *err set.
 */
int session_run(struct account *a, const struct pm_plugin *p, int progress,
    struct run_stats *stats, char **err);

#endif
