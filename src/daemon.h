/*
 * Running accounts: all of them at once within bounds, once (a one-shot
 * run) or until stopped (the daemon).  See daemon.c for the design.
 */
#ifndef PM_DAEMON_H
#define PM_DAEMON_H

#include <stddef.h>

struct config;

/* Exit statuses besides the sysexits ones. */
#define EXIT_DELIVERED	0
#define EXIT_NOTHING	1

/* How a run is shown. */
struct run_opts {
	const char *plugdir;	/* where the protocol plugins are */
	int quiet;		/* no summary lines on stdout */
	int progress;		/* a progress line on stderr (one account
				 * at a time only) */
};

/* The exit status for a status class (enum pm_status). */
int status_exit(int status);

/* Of two exit statuses, the one that ranks as the worse outcome. */
int exit_worse(int a, int b);

/*
 * Fetch the accounts of cfg whose names are in names[0..n) (all of them
 * when n is 0) once, up to cfg->max_connections sessions at once and each
 * account's server_connections per server, printing each account's
 * summary in the config's order.  Returns the worst account's exit status
 * (EXIT_NOTHING when nothing was delivered and nothing failed).
 */
int run_once(struct config *cfg, char *const *names, size_t n,
    const struct run_opts *o);

/*
 * The daemon: keep every account of the config at path (already loaded as
 * *cfg) fetched until SIGTERM or SIGINT: IMAP IDLE where the account and
 * the server allow it, else a poll every poll_interval; SIGHUP reloads the
 * config (a new *cfg), SIGUSR1 polls every account now.  Returns the exit
 * status: 0 after a clean stop.
 */
int run_daemon(const char *path, struct config **cfg,
    const struct run_opts *o);

#endif
