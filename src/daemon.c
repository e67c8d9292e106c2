/*
 * Running accounts at once: the one-shot run and the daemon (daemon.h).
 *
 * Why threads and not one poll() loop over every connection: the plugins
 * speak their protocols against a blocking host (read_line() waits for
 * the server), which keeps them short and easy to check; an event loop
 * would turn both into state machines.  So every session has a thread:
 *
 *  - a pool of worker threads, as many as max_connections, runs polls:
 *    one session_run() each, picking the oldest queued account whose
 *    server is below its server_connections;
 *  - every folder of an account kept with IMAP IDLE has a watcher thread
 *    of its own, asleep in poll() nearly all the time (small stack,
 *    WATCH_STACK); the connections of IDLE watchers are not counted in
 *    the bounds, which limit how many sessions fetch at once;
 *  - the main thread schedules: one poll() over a signalfd and a pipe
 *    that workers and watchers write to when something changed.
 *
 * Locks: d->mu guards the queue, the server slots, every account's
 * scheduling fields and the list of accounts; an account's own lock
 * (ac->pass) keeps two watchers of its folders from fetching at once.
 * The services below (token cache, state, delivery, log) are safe to call
 * from several threads; one account is never fetched by two at once.
 *
 * A failure backs off exponentially with jitter (BACKOFF_BASE_MS doubling
 * up to BACKOFF_CAP_MS); one that needs a human (PM_EAUTH, PM_ECONFIG)
 * pauses the account, runs its notify_command once, and waits for SIGHUP.
 * SIGTERM stops starting work, ends IDLE waits, and gives the sessions
 * that are fetching STOP_GRACE_MS to finish; then every network wait is
 * cut (transport_set_abort_fd()): the message in flight is not recorded
 * and stays on the server, the ones before it are synced and recorded.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "oauth.h"
#include "plugin.h"
#include "sdnotify.h"
#include "session.h"
#include "status.h"
#include "transport.h"
#include "util.h"

#define BACKOFF_BASE_MS		5000LL
#define BACKOFF_CAP_MS		(30 * 60 * 1000LL)
#define RECONNECT_MS		1000LL	/* after a session that worked */
#define WATCH_QUICK_RETRIES	3	/* failures in a row of a watcher
					 * that reconnect soon */
#define STABLE_MS		30000LL	/* an IDLE session that lasted this
					 * long worked: its failures in a
					 * row start again from 0 */
#define STOP_GRACE_MS		10000LL
#define WATCH_STACK		(512 * 1024)

/* Where an account stands. */
enum acct_state {
	AS_WAITING = 0,		/* for its next poll */
	AS_QUEUED,		/* for a worker */
	AS_RUNNING,		/* a worker fetches it */
	AS_BACKOFF,		/* after a failure, until due */
	AS_HUMAN,		/* paused until SIGHUP */
	AS_IDLING		/* its watchers keep it (IMAP IDLE) */
};

/* Sessions at once to one server. */
struct slot {
	char *key;		/* "protocol:server:port" */
	unsigned active;
	unsigned limit;		/* the smallest server_connections */
	struct slot *next;
};

struct daemon;
struct acct;

/* One IMAP IDLE folder's thread. */
struct watcher {
	struct daemon *d;
	struct acct *ac;
	const char *folder;
	pthread_t tid;
	int started;
	int efd;		/* eventfd: wakes its wait */
	atomic_int stop;	/* end now */
	atomic_int poll;	/* fetch now (SIGUSR1) */
	atomic_int done;	/* the thread ended */
};

/* One account, as the scheduler sees it. */
struct acct {
	struct account *a;
	const struct pm_plugin *p;
	char *load_err;		/* the plugin did not load */
	int load_rc;		/* and why (enum pm_status) */
	struct slot *slot;
	int state;		/* enum acct_state */
	long long due;		/* mono_ms of the next poll */
	unsigned fails;		/* failures in a row */
	int watch;		/* kept with IDLE by watchers */
	int retired;		/* gone after a reload: free when idle */
	size_t order;		/* position in the config (one-shot) */

	/* A worker's result. */
	int result;
	char *err;
	struct run_stats stats;
	int finished;		/* one-shot: result is in */

	unsigned long delivered;	/* since the start */
	pthread_mutex_t pass;	/* one fetch of the account at a time */
	struct watcher *w;	/* nw of them, one per folder */
	size_t nw;
	int human;		/* paused: needs a human */

	struct acct *qnext;	/* queue link */
	struct acct *next;
};

struct daemon {
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* queue changed, or quit */
	pthread_cond_t done_cv;	/* one-shot: a result came in */
	struct acct *accts;
	struct acct *qhead, **qtail;
	struct slot *slots;
	pthread_t *workers;
	size_t nworkers;
	int quit;		/* workers end */
	int progress;		/* one account, one worker: a progress
				 * line */
	atomic_int stopping;
	int wake[2];		/* pipe: something for the scheduler */
	const struct run_opts *o;
	int daemon;
};

/* A failure the daemon cannot go on after (no threads, no fds). */
static void PM_PRINTF(1, 2)
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(PM_LOG_ERR, fmt, ap);
	va_end(ap);
	exit(EX_OSERR);
}

/* Start libcurl for the token module before threads start (it is also
 * started lazily, under a lock, by the first request). */
static void
curl_init(void)
{
	char *err = NULL;

	if (oauth_global_init(&err) != PM_OK) {
		log_warnx("%s", err);
		free(err);
	}
}

/* Map a status class to an exit status. */
int
status_exit(int status)
{
	switch (status) {
	case PM_OK:
		return EXIT_DELIVERED;
	case PM_ETEMP:
		return EX_TEMPFAIL;
	case PM_EAUTH:
		return EX_NOPERM;
	case PM_EPROTO:
	case PM_ETLS:
		return EX_PROTOCOL;
	case PM_EDELIVER:
		return EX_CANTCREAT;
	case PM_ECONFIG:
		return EX_CONFIG;
	default:
		return EX_SOFTWARE;
	}
}

/* How severe an exit status is when several accounts disagree. */
static int
exit_rank(int code)
{
	switch (code) {
	case EXIT_NOTHING:
		return 0;
	case EXIT_DELIVERED:
		return 1;
	case EX_TEMPFAIL:
		return 2;
	case EX_PROTOCOL:
		return 3;
	case EX_CANTCREAT:
		return 4;
	case EX_SOFTWARE:
		return 5;
	case EX_NOPERM:
		return 6;
	case EX_CONFIG:
		return 7;
	default:
		return 5;
	}
}

int
exit_worse(int a, int b)
{
	return exit_rank(b) > exit_rank(a) ? b : a;
}

/* Tell the scheduler to look again. */
static void
poke(struct daemon *d)
{
	ssize_t n;

	if (d->wake[1] >= 0)
		do
			n = write(d->wake[1], "", 1);
		while (n < 0 && errno == EINTR);
}

/* The server slot for account a, made on first use. */
static struct slot *
slot_get(struct daemon *d, const struct account *a)
{
	struct slot *sl;
	char *key;

	key = xasprintf("%s:%s:%u", a->protocol, a->server, a->port);
	for (sl = d->slots; sl != NULL; sl = sl->next)
		if (strcmp(sl->key, key) == 0)
			break;
	if (sl == NULL) {
		sl = xcalloc(1, sizeof *sl);
		sl->key = key;
		sl->limit = a->server_connections;
		sl->next = d->slots;
		d->slots = sl;
	} else {
		free(key);
		if (a->server_connections < sl->limit)
			sl->limit = a->server_connections;
	}
	return sl;
}

/* Print what one account's session did (the one-shot summary lines, also
 * the daemon's after each delivery) and return its exit status. */
static int
report(const struct account *a, int r, const struct run_stats *st,
    char *err, int quiet, int daemon)
{
	char buf[256];
	int n = 0;

	buf[0] = '\0';
	if (!quiet && st->delivered > 0)
		n += snprintf(buf + n, sizeof buf - (size_t)n,
		    "%s: %lu message%s delivered (%llu bytes)\n", a->name,
		    st->delivered, st->delivered == 1 ? "" : "s",
		    (unsigned long long)st->bytes);
	if (!quiet && st->skipped > 0 && n >= 0 && (size_t)n < sizeof buf)
		n += snprintf(buf + n, sizeof buf - (size_t)n,
		    "%s: %lu message%s skipped for size\n", a->name,
		    st->skipped, st->skipped == 1 ? "" : "s");
	if (r == PM_OK && st->delivered == 0 && !quiet && !daemon &&
	    n >= 0 && (size_t)n < sizeof buf)
		snprintf(buf + n, sizeof buf - (size_t)n,
		    "%s: no new messages\n", a->name);
	if (buf[0] != '\0') {
		fputs(buf, stdout);
		fflush(stdout);
	}
	if (r != PM_OK) {
		log_errx("%s: %s", a->name, err != NULL ? err :
		    "failed for an unknown reason");
		return status_exit(r);
	}
	return st->delivered == 0 ? EXIT_NOTHING : EXIT_DELIVERED;
}

/* Make the scheduling record of account a. */
static struct acct *
acct_new(struct daemon *d, struct account *a, size_t order)
{
	struct acct *ac = xcalloc(1, sizeof *ac);
	char *err = NULL;

	ac->a = a;
	ac->order = order;
	if ((ac->load_rc = plugin_load(d->o->plugdir, a->protocol, &ac->p,
	    &err)) != PM_OK)
		ac->load_err = err;
	ac->slot = slot_get(d, a);
	pthread_mutex_init(&ac->pass, NULL);
	return ac;
}

static void
acct_free(struct acct *ac)
{
	pthread_mutex_destroy(&ac->pass);
	free(ac->load_err);
	free(ac->err);
	free(ac->w);
	free(ac);
}

/* Queue ac for a worker (under d->mu). */
static void
enqueue(struct daemon *d, struct acct *ac)
{
	ac->state = AS_QUEUED;
	ac->qnext = NULL;
	*d->qtail = ac;
	d->qtail = &ac->qnext;
	/* One account more: one worker is enough.  Waking them all had
	 * each of them take the lock and scan the queue in turn. */
	pthread_cond_signal(&d->cv);
}

/* Take the first queued account whose server has room (under d->mu). */
static struct acct *
dequeue(struct daemon *d)
{
	struct acct **pp, *ac;

	for (pp = &d->qhead; (ac = *pp) != NULL; pp = &ac->qnext) {
		if (ac->slot->active >= ac->slot->limit)
			continue;
		*pp = ac->qnext;
		if (d->qtail == &ac->qnext)
			d->qtail = pp;
		ac->qnext = NULL;
		ac->slot->active++;
		ac->state = AS_RUNNING;
		return ac;
	}
	return NULL;
}

/* A worker: fetch queued accounts until told to quit. */
static void *
worker_main(void *arg)
{
	struct daemon *d = arg;
	struct acct *ac;
	struct run_stats st;
	char *err;
	int r, progress;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->quit && (ac = dequeue(d)) == NULL)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->quit)
			break;
		progress = d->progress;
		pthread_mutex_unlock(&d->mu);

		memset(&st, 0, sizeof st);
		err = NULL;
		status_fetch_begin(ac->a);
		if (ac->load_err != NULL) {
			r = ac->load_rc;
			err = xstrdup(ac->load_err);
		} else {
			pthread_mutex_lock(&ac->pass);
			r = session_run(ac->a, ac->p, progress, &st, &err);
			pthread_mutex_unlock(&ac->pass);
		}
		status_fetch_end(ac->a, r, st.delivered, err);

		pthread_mutex_lock(&d->mu);
		ac->slot->active--;
		free(ac->err);
		ac->err = err;
		ac->result = r;
		ac->stats = st;
		ac->finished = 1;
		/* A slot is free: one more account may start.  This worker
		 * looks first, on its next turn of the loop; one waiting
		 * worker is woken as well. */
		pthread_cond_signal(&d->cv);
		pthread_cond_broadcast(&d->done_cv);
		poke(d);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Start n workers. */
static void
workers_start(struct daemon *d, size_t n)
{
	size_t i;
	int r;

	d->workers = xcalloc(n, sizeof *d->workers);
	for (i = 0; i < n; i++) {
		if ((r = pthread_create(&d->workers[i], NULL, worker_main,
		    d)) != 0) {
			log_warnx("cannot start a worker thread: %s",
			    pm_strerror(r));
			break;
		}
	}
	d->nworkers = i;
	if (i == 0)
		die("no worker thread could be started");
}

/* Tell the workers to quit and wait for them. */
static void
workers_stop(struct daemon *d)
{
	size_t i;

	pthread_mutex_lock(&d->mu);
	d->quit = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	free(d->workers);
	d->workers = NULL;
	d->nworkers = 0;
}

static void
daemon_init(struct daemon *d, const struct run_opts *o)
{
	memset(d, 0, sizeof *d);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->done_cv, NULL);
	d->qtail = &d->qhead;
	d->wake[0] = d->wake[1] = -1;
	d->o = o;
}

static void
daemon_free(struct daemon *d)
{
	struct acct *ac, *next;
	struct slot *sl, *snext;

	for (ac = d->accts; ac != NULL; ac = next) {
		next = ac->next;
		acct_free(ac);
	}
	for (sl = d->slots; sl != NULL; sl = snext) {
		snext = sl->next;
		free(sl->key);
		free(sl);
	}
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->done_cv);
	if (d->wake[0] >= 0) {
		close(d->wake[0]);
		close(d->wake[1]);
	}
}

/* Whether account name is among names[0..n) (all when n is 0). */
static int
selected(const char *name, char *const *names, size_t n)
{
	size_t i;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

int
run_once(struct config *cfg, char *const *names, size_t n,
    const struct run_opts *o)
{
	struct daemon d;
	struct acct *ac, **tail, **byorder;
	struct account *a;
	size_t count = 0, shown = 0;
	int code = -1, r;

	daemon_init(&d, o);
	tail = &d.accts;
	for (a = cfg->accounts; a != NULL; a = a->next) {
		if (!selected(a->name, names, n))
			continue;
		ac = acct_new(&d, a, count++);
		*tail = ac;
		tail = &ac->next;
		/* The status file says the run is at it (a run that dies
		 * leaves "polling" for a process that is gone). */
		status_set_state(a->name, ST_POLLING);
	}
	status_sync();
	if (count == 0) {
		daemon_free(&d);
		return EXIT_NOTHING;
	}
	byorder = xcalloc(count, sizeof *byorder);
	for (ac = d.accts; ac != NULL; ac = ac->next)
		byorder[ac->order] = ac;

	/* libcurl once, before threads need it. */
	if (count > 1)
		curl_init();
	pthread_mutex_lock(&d.mu);
	for (ac = d.accts; ac != NULL; ac = ac->next)
		enqueue(&d, ac);
	d.progress = o->progress && count == 1;
	pthread_mutex_unlock(&d.mu);
	workers_start(&d, count < cfg->max_connections ? count :
	    cfg->max_connections);

	/* Summaries in the config's order, each as soon as it and every
	 * account before it are done. */
	pthread_mutex_lock(&d.mu);
	while (shown < count) {
		while (!byorder[shown]->finished)
			pthread_cond_wait(&d.done_cv, &d.mu);
		ac = byorder[shown++];
		pthread_mutex_unlock(&d.mu);
		r = report(ac->a, ac->result, &ac->stats, ac->err, o->quiet,
		    0);
		code = code < 0 ? r : exit_worse(code, r);
		pthread_mutex_lock(&d.mu);
	}
	pthread_mutex_unlock(&d.mu);
	workers_stop(&d);
	status_sync();
	free(byorder);
	daemon_free(&d);
	return code < 0 ? EXIT_NOTHING : code;
}

/* ------------------------------------------------------------------ */
/* The daemon. */

/* A wait of base doubling with each failure, capped, with +-25% jitter
 * so that accounts broken together do not retry together. */
static long long
backoff_ms(unsigned fails)
{
	long long ms = BACKOFF_BASE_MS;
	unsigned i;
	unsigned char rnd[2] = { 0, 0 };

	for (i = 1; i < fails && ms < BACKOFF_CAP_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_CAP_MS)
		ms = BACKOFF_CAP_MS;
	(void)crypto_random(rnd, sizeof rnd);
	return ms * 3 / 4 + (ms / 2) * ((rnd[0] << 8 | rnd[1]) % 1000) /
	    1000;
}

/* Run the account's notify_command once for a failure only a human can
 * fix (msg; a flag file keeps it to once), or with msg NULL clear that
 * flag after the account worked again. */
static void
account_notify(const struct account *a, const char *msg)
{
	char *cache_dir;

	if (a->notify_command == NULL)
		return;
	cache_dir = account_token_dir(a);
	if (msg != NULL)
		notify_human(a->notify_command, cache_dir, a->name,
		    a->timeout, msg);
	else
		notify_reset(cache_dir, a->name);
	free(cache_dir);
}

/* Whether a status class needs a human. */
static int
needs_human(int r)
{
	return r == PM_EAUTH || r == PM_ECONFIG;
}

/* Watcher callbacks for session_idle(). */
static int
w_stopping(void *arg)
{
	struct watcher *w = arg;

	return atomic_load(&w->stop) || atomic_load(&w->d->stopping);
}

static int
w_woken(void *arg)
{
	struct watcher *w = arg;
	uint64_t v;
	ssize_t n;

	n = read(w->efd, &v, sizeof v);	/* non-blocking: drain */
	(void)n;
	return atomic_exchange(&w->poll, 0);
}

static void
w_lock(void *arg, int on)
{
	struct watcher *w = arg;

	if (on)
		pthread_mutex_lock(&w->ac->pass);
	else
		pthread_mutex_unlock(&w->ac->pass);
}

static void
w_report(void *arg, const struct run_stats *st)
{
	struct watcher *w = arg;

	status_set_success(w->ac->a->name);
	status_set_state(w->ac->a->name, ST_IDLING);
	if (st->delivered == 0 && st->skipped == 0) {
		poke(w->d);	/* the status file, the STATUS line */
		return;
	}
	status_add_delivered(w->ac->a->name, st->delivered);
	poke(w->d);
	pthread_mutex_lock(&w->d->mu);
	w->ac->delivered += st->delivered;
	pthread_mutex_unlock(&w->d->mu);
	report(w->ac->a, PM_OK, st, NULL, w->d->o->quiet, 1);
}

/* Sleep ms or until the watcher is woken or stopped. */
static void
w_sleep(struct watcher *w, long long ms)
{
	struct pollfd pfd;
	long long end = mono_ms() + ms, left;

	while (!w_stopping(w) && (left = end - mono_ms()) > 0) {
		pfd.fd = w->efd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)left) > 0 && w_woken(w))
			break;
	}
}

/* A watcher: keep one folder with IMAP IDLE until stopped. */
static void *
watcher_main(void *arg)
{
	struct watcher *w = arg;
	struct acct *ac = w->ac;
	struct session_outcome out;
	struct idle_ctl ctl;
	struct retry_policy pol;
	unsigned fails = 0;
	char *err;
	int r;
	long long wait, t0;

	memset(&ctl, 0, sizeof ctl);
	ctl.arg = w;
	ctl.wake_fd = w->efd;
	ctl.stopping = w_stopping;
	ctl.woken = w_woken;
	ctl.lock = w_lock;
	ctl.report = w_report;
	while (!w_stopping(w)) {
		err = NULL;
		t0 = mono_ms();
		r = session_idle(ac->a, ac->p, w->folder, &ctl, &out, &err);
		if (w_stopping(w)) {
			free(err);
			break;
		}
		if (r == PM_OK && out.no_idle) {
			/* The server has no IDLE: the scheduler polls. */
			log_info("%s: the server does not offer IDLE; polling "
			    "every %u s", ac->a->name, ac->a->poll_interval);
			pthread_mutex_lock(&w->d->mu);
			ac->watch = 0;
			pthread_mutex_unlock(&w->d->mu);
			break;
		}
		if (r == PM_OK) {
			fails = 0;
			if (!out.renew)
				w_sleep(w, RECONNECT_MS);
			continue;
		}
		status_set_error(ac->a->name, err != NULL ? err : "failed");
		if (needs_human(r)) {
			status_set_state(ac->a->name, ST_HUMAN);
			log_errx("%s: %s; the account is paused until the "
			    "configuration is reloaded (SIGHUP)",
			    ac->a->name, err);
			account_notify(ac->a, err);
			pthread_mutex_lock(&w->d->mu);
			ac->human = 1;
			pthread_mutex_unlock(&w->d->mu);
			free(err);
			break;
		}
		/* A session that idled for a while worked: a break
		 * afterwards (a BYE, an expired token, a restarted server)
		 * is retried soon; sessions that keep failing back off. */
		if (out.connected && mono_ms() - t0 >= STABLE_MS)
			fails = 0;
		fails++;
		/* "User is authenticated but not connected", a BYE, a
		 * restarted server: 1, 2, 4 s, then backoff; a throttle:
		 * what the server suggests, within throttle_max_wait. */
		memset(&pol, 0, sizeof pol);
		pol.throttle_max_wait = ac->a->throttle_max_wait;
		pol.quick = WATCH_QUICK_RETRIES;
		pol.backoff = backoff_ms;
		wait = session_retry_wait(out.retry_kind, fails, out.connected,
		    out.retry_ms, &pol);
		log_warnx("%s: %s%s%s; retrying in %lld s", ac->a->name,
		    w->folder, w->folder[0] != '\0' ? ": " : "",
		    err != NULL ? err : "failed", (wait + 999) / 1000);
		free(err);
		if (wait > 0)
			status_set_backoff(ac->a->name,
			    time(NULL) + (wait + 999) / 1000);
		poke(w->d);
		w_sleep(w, wait);
	}
	atomic_store(&w->done, 1);
	poke(w->d);
	return NULL;
}

/* Start a watcher per folder of ac. */
static void
watchers_start(struct daemon *d, struct acct *ac)
{
	pthread_attr_t attr;
	struct watcher *w;
	size_t i;
	int r;

	ac->w = xcalloc(ac->a->nfolders, sizeof *ac->w);
	ac->nw = ac->a->nfolders;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WATCH_STACK);
	for (i = 0; i < ac->nw; i++) {
		w = &ac->w[i];
		w->d = d;
		w->ac = ac;
		w->folder = ac->a->folders[i];
		w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->efd < 0)
			die("eventfd: %s", pm_strerror(errno));
		if ((r = pthread_create(&w->tid, &attr, watcher_main, w)) !=
		    0)
			die("cannot start a thread for %s: %s",
			    ac->a->name, pm_strerror(r));
		w->started = 1;
	}
	pthread_attr_destroy(&attr);
	ac->state = AS_IDLING;
}

/* Wake every watcher of ac (stop: for good). */
static void
watchers_wake(struct acct *ac, int stop)
{
	uint64_t one = 1;
	size_t i;
	ssize_t n;

	for (i = 0; i < ac->nw; i++) {
		if (stop)
			atomic_store(&ac->w[i].stop, 1);
		else
			atomic_store(&ac->w[i].poll, 1);
		n = write(ac->w[i].efd, &one, sizeof one);
		(void)n;
	}
}

/* Whether every watcher of ac has ended. */
static int
watchers_done(const struct acct *ac)
{
	size_t i;

	for (i = 0; i < ac->nw; i++)
		if (!atomic_load(&ac->w[i].done))
			return 0;
	return 1;
}

/* Join the watchers of ac (they must be ending). */
static void
watchers_join(struct acct *ac)
{
	size_t i;

	for (i = 0; i < ac->nw; i++) {
		if (ac->w[i].started)
			pthread_join(ac->w[i].tid, NULL);
		close(ac->w[i].efd);
	}
	free(ac->w);
	ac->w = NULL;
	ac->nw = 0;
}

/* Start keeping account ac: watchers or a first poll now (under d->mu). */
static void
acct_start(struct daemon *d, struct acct *ac)
{
	ac->human = 0;
	ac->fails = 0;
	ac->watch = ac->load_err == NULL && ac->a->idle &&
	    ac->p->can_wait != NULL && ac->p->wait != NULL;
	if (ac->watch) {
		status_set_state(ac->a->name, ST_IDLING);
		watchers_start(d, ac);
	} else {
		status_set_state(ac->a->name, ST_IDLE);
		ac->state = AS_WAITING;
		ac->due = mono_ms();
	}
}

/* Look at every account after a worker or watcher changed something, and
 * queue what is due (under d->mu).  Returns ms until the next due poll. */
static long long
schedule(struct daemon *d)
{
	struct acct *ac;
	long long now = mono_ms(), next = 60000, wait;
	int r;

	for (ac = d->accts; ac != NULL; ac = ac->next) {
		if (ac->nw > 0 && watchers_done(ac)) {
			/* The watchers ended: no IDLE, or a human must act. */
			watchers_join(ac);
			if (ac->human)
				ac->state = AS_HUMAN;
			else if (!ac->retired) {
				ac->state = AS_WAITING;
				ac->due = now;
			}
		}
		if (ac->finished) {
			ac->finished = 0;
			r = ac->result;
			ac->delivered += ac->stats.delivered;
			pthread_mutex_unlock(&d->mu);
			if (r == PM_OK || ac->stats.delivered > 0)
				report(ac->a, PM_OK, &ac->stats, NULL,
				    d->o->quiet, 1);
			pthread_mutex_lock(&d->mu);
			if (r == PM_OK) {
				if (ac->fails > 0 || ac->human)
					account_notify(ac->a, NULL);
				ac->fails = 0;
				ac->state = AS_WAITING;
				ac->due = now + ac->a->poll_interval * 1000LL;
			} else if (needs_human(r)) {
				log_errx("%s: %s; the account is paused until "
				    "the configuration is reloaded (SIGHUP)",
				    ac->a->name, ac->err);
				account_notify(ac->a, ac->err);
				ac->human = 1;
				ac->state = AS_HUMAN;
			} else if (atomic_load(&d->stopping)) {
				log_info("%s: %s", ac->a->name, ac->err);
				ac->state = AS_WAITING;
			} else {
				ac->fails++;
				wait = backoff_ms(ac->fails);
				if (wait < ac->a->poll_interval * 1000LL &&
				    ac->fails > 8)
					wait = ac->a->poll_interval * 1000LL;
				log_warnx("%s: %s; retrying in %lld s",
				    ac->a->name, ac->err, (wait + 999) / 1000);
				status_set_backoff(ac->a->name,
				    time(NULL) + (wait + 999) / 1000);
				ac->state = AS_BACKOFF;
				ac->due = now + wait;
			}
		}
		if (ac->retired || atomic_load(&d->stopping))
			continue;
		if ((ac->state == AS_WAITING || ac->state == AS_BACKOFF) &&
		    ac->due <= now)
			enqueue(d, ac);
		else if (ac->state == AS_WAITING || ac->state == AS_BACKOFF) {
			if (ac->due - now < next)
				next = ac->due - now;
		}
	}
	return next;
}

/* Remove the retired accounts that are idle (under d->mu). */
static void
reap(struct daemon *d)
{
	struct acct **pp, *ac;

	for (pp = &d->accts; (ac = *pp) != NULL;) {
		if (ac->retired && ac->nw == 0 && ac->state != AS_RUNNING &&
		    ac->state != AS_QUEUED) {
			*pp = ac->next;
			acct_free(ac);
		} else
			pp = &ac->next;
	}
}

/* Drop ac from the queue if it waits there (under d->mu). */
static void
unqueue(struct daemon *d, struct acct *ac)
{
	struct acct **pp;

	for (pp = &d->qhead; *pp != NULL; pp = &(*pp)->qnext) {
		if (*pp == ac) {
			*pp = ac->qnext;
			if (d->qtail == &ac->qnext)
				d->qtail = pp;
			ac->qnext = NULL;
			ac->state = AS_WAITING;
			return;
		}
	}
}

/* A config whose accounts are still in use after a reload. */
struct oldcfg {
	struct config *cfg;
	struct oldcfg *next;
};

/* Whether some live account still points into cfg. */
static int
cfg_in_use(const struct daemon *d, const struct config *cfg)
{
	const struct acct *ac;
	const struct account *a;

	for (ac = d->accts; ac != NULL; ac = ac->next)
		for (a = cfg->accounts; a != NULL; a = a->next)
			if (ac->a == a)
				return 1;
	return 0;
}

/* SIGHUP: load the config again.  Unchanged accounts keep their sessions
 * (their struct account stays, from the old config); changed and removed
 * ones stop; new ones start.  Paused accounts start again. */
static void
reload(struct daemon *d, const char *path, struct config **cfgp,
    struct oldcfg **old)
{
	struct config *ncfg = NULL;
	struct account *a;
	struct acct *ac, *keep;
	struct oldcfg *oc;
	char *err = NULL;
	size_t added = 0, removed = 0, kept = 0;

	if (config_load(path, &ncfg, &err) != PM_OK) {
		log_errx("reload: %s; keeping the running configuration",
		    err);
		free(err);
		return;
	}
	pthread_mutex_lock(&d->mu);
	for (ac = d->accts; ac != NULL; ac = ac->next) {
		if (ac->retired)
			continue;
		a = config_find(ncfg, ac->a->name);
		if (a != NULL && a->fingerprint == ac->a->fingerprint)
			continue;
		ac->retired = 1;
		removed++;
		if (a == NULL)
			status_forget(ac->a->name);
		unqueue(d, ac);
		if (ac->nw > 0)
			watchers_wake(ac, 1);
	}
	for (a = ncfg->accounts; a != NULL; a = a->next) {
		keep = NULL;
		for (ac = d->accts; ac != NULL; ac = ac->next)
			if (!ac->retired && strcmp(ac->a->name, a->name) == 0)
				keep = ac;
		if (keep != NULL) {
			kept++;
			if (keep->human || keep->state == AS_BACKOFF) {
				/* SIGHUP resumes a paused account. */
				keep->human = 0;
				keep->fails = 0;
				if (keep->nw == 0)
					acct_start(d, keep);
			}
			continue;
		}
		ac = acct_new(d, a, 0);
		ac->next = d->accts;
		d->accts = ac;
		acct_start(d, ac);
		added++;
	}
	/* The new config owns the new accounts; the old one stays while
	 * its accounts run. */
	oc = xcalloc(1, sizeof *oc);
	oc->cfg = *cfgp;
	oc->next = *old;
	*old = oc;
	*cfgp = ncfg;
	pthread_mutex_unlock(&d->mu);
	log_info("reloaded %s: %zu account%s kept, %zu started, %zu stopped",
	    path, kept, kept == 1 ? "" : "s", added, removed);
}

/* Free the old configs no account uses any more (under d->mu). */
static void
old_free(struct daemon *d, struct oldcfg **old, struct config *cur)
{
	struct oldcfg **pp, *oc;

	for (pp = old; (oc = *pp) != NULL;) {
		if (oc->cfg != cur && !cfg_in_use(d, oc->cfg)) {
			*pp = oc->next;
			config_free(oc->cfg);
			free(oc);
		} else
			pp = &oc->next;
	}
}

/* The signals the daemon handles, blocked in every thread. */
static void
signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

int
run_daemon(const char *path, struct config **cfgp,
    const struct run_opts *o)
{
	struct daemon d;
	struct oldcfg *old = NULL, *oc;
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	struct account *a;
	struct acct *ac, **tail;
	sigset_t set;
	char buf[256];
	long long next, stop_at = 0, wd_ms, wd_last;
	char *summary, *last_summary = NULL;
	int sfd, afd, busy, aborted = 0;
	size_t n = 0;
	uint64_t one = 1;
	ssize_t rd;

	daemon_init(&d, o);
	d.daemon = 1;
	signals_block(&set);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		die("signalfd: %s", pm_strerror(errno));
	if (pipe2(d.wake, O_CLOEXEC | O_NONBLOCK) < 0)
		die("pipe: %s", pm_strerror(errno));
	if ((afd = eventfd(0, EFD_CLOEXEC)) < 0)
		die("eventfd: %s", pm_strerror(errno));
	transport_set_abort_fd(afd);

	curl_init();
	pthread_mutex_lock(&d.mu);
	tail = &d.accts;
	for (a = (*cfgp)->accounts; a != NULL; a = a->next) {
		ac = acct_new(&d, a, n++);
		*tail = ac;
		tail = &ac->next;
		acct_start(&d, ac);
	}
	pthread_mutex_unlock(&d.mu);
	workers_start(&d, (*cfgp)->max_connections);
	log_info("running: %zu account%s, up to %u sessions at once", n,
	    n == 1 ? "" : "s", (*cfgp)->max_connections);
	/* systemd (Type=notify): started; the watchdog wants a ping every
	 * half of its interval. */
	wd_ms = (long long)(sdnotify_watchdog_usec() / 2000);
	wd_last = mono_ms();
	status_sync();
	sdnotify_ready();

	for (;;) {
		if (wd_ms > 0 && mono_ms() - wd_last >= wd_ms) {
			sdnotify_watchdog();
			wd_last = mono_ms();
		}
		status_sync();
		summary = status_summary();
		if (summary != NULL && (last_summary == NULL ||
		    strcmp(summary, last_summary) != 0)) {
			sdnotify_status("%s", summary);
			free(last_summary);
			last_summary = summary;
		} else
			free(summary);
		pthread_mutex_lock(&d.mu);
		next = schedule(&d);
		reap(&d);
		old_free(&d, &old, *cfgp);
		busy = 0;
		if (atomic_load(&d.stopping)) {
			for (ac = d.accts; ac != NULL; ac = ac->next)
				if (ac->nw > 0 || ac->state == AS_RUNNING)
					busy = 1;
		}
		pthread_mutex_unlock(&d.mu);
		if (atomic_load(&d.stopping)) {
			if (!busy)
				break;
			if (!aborted && mono_ms() >= stop_at) {
				log_info("stopping: cutting the sessions still "
				    "fetching; their messages in flight stay "
				    "on the server");
				rd = write(afd, &one, sizeof one);
				(void)rd;
				aborted = 1;
			}
			next = aborted ? 1000 : stop_at - mono_ms();
			if (next < 0)
				next = 0;
		}
		if (wd_ms > 0 && next > wd_ms - (mono_ms() - wd_last))
			next = wd_ms - (mono_ms() - wd_last);
		if (next < 0)
			next = 0;
		pfd[0].fd = sfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = d.wake[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, (int)(next > 60000 ? 60000 : next)) < 0 &&
		    errno != EINTR)
			die("poll: %s", pm_strerror(errno));
		while (read(d.wake[0], buf, sizeof buf) > 0)
			;
		while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
			switch (si.ssi_signo) {
			case SIGTERM:
			case SIGINT:
				if (atomic_load(&d.stopping)) {
					/* A second one: stop at once. */
					stop_at = 0;
					break;
				}
				log_info("stopping (signal %u)", si.ssi_signo);
				sdnotify_stopping();
				atomic_store(&d.stopping, 1);
				stop_at = mono_ms() + STOP_GRACE_MS;
				pthread_mutex_lock(&d.mu);
				while (d.qhead != NULL)
					unqueue(&d, d.qhead);
				for (ac = d.accts; ac != NULL; ac = ac->next)
					watchers_wake(ac, 1);
				pthread_mutex_unlock(&d.mu);
				break;
			case SIGHUP:
				if (atomic_load(&d.stopping))
					break;
				sdnotify_reloading();
				reload(&d, path, cfgp, &old);
				sdnotify_ready();
				break;
			case SIGUSR1:
				log_info("polling every account now");
				pthread_mutex_lock(&d.mu);
				for (ac = d.accts; ac != NULL; ac = ac->next) {
					if (ac->nw > 0)
						watchers_wake(ac, 0);
					else if (ac->state == AS_WAITING)
						ac->due = mono_ms();
				}
				pthread_mutex_unlock(&d.mu);
				break;
			}
		}
	}
	workers_stop(&d);
	pthread_mutex_lock(&d.mu);
	for (ac = d.accts; ac != NULL; ac = ac->next) {
		if (ac->nw > 0)
			watchers_join(ac);
		status_set_state(ac->a->name, ST_STOPPED);
	}
	pthread_mutex_unlock(&d.mu);
	status_sync();
	free(last_summary);
	transport_set_abort_fd(-1);
	close(afd);
	close(sfd);
	daemon_free(&d);
	while ((oc = old) != NULL) {
		old = oc->next;
		config_free(oc->cfg);
		free(oc);
	}
	log_info("stopped");
	return 0;
}
