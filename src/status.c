/*
 * The status file (contract in status.h).
 *
 * Design.  The daemon changes an account's state many times a minute
 * (polling, idling, backing off) from several worker threads; writing a
 * file each time would cost an fsync per change.  So the records live in
 * memory behind one mutex, setters only mark them dirty, and the file is
 * rewritten by status_flush, which the scheduler calls once per loop turn
 * and a one-shot run after each account.  A second mutex keeps flushes in
 * order, so a slow writer never renames an older snapshot over a newer one.
 *
 * Several processes may share one file (a one-shot run of one account
 * while another runs, or a daemon and a manual run): each owns the records
 * of the accounts it registered and, under an flock on PATH.lock, rereads
 * the file and keeps every other record as it found it.
 *
 * The format is text, one record per line, so `cat` is enough to see it
 * and no JSON library is needed outside the token module:
 *
 *     pullmail-status 1
 *     account=NAME<TAB>pid=N<TAB>started=T<TAB>state=WORD<TAB>...
 *
 * Fields are key=value separated by tabs; times are Unix seconds, 0 when
 * unknown; values are escaped (\\ \t \n \r, \xHH for other control bytes).
 * Unknown keys are skipped, so later versions may add fields.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "oauth.h"
#include "secret.h"
#include "status.h"
#include "util.h"

#define STATUS_MAGIC	"pullmail-status 1"
#define STATUS_MAX_FILE	(32u * 1024 * 1024)
#define STATUS_MAX_ERROR 1000	/* bytes of an error kept */

struct status_rec {
	char *account;
	long pid;
	time_t started;		/* of the writing process */
	time_t updated;		/* last change */
	int state;		/* enum status_state */
	time_t until;		/* ST_BACKOFF: retry time; 0: next run */
	time_t success;		/* last success; 0: none known */
	time_t error_at;	/* time of error; 0: none */
	char *error;		/* last error or NULL */
	unsigned long long delivered;	/* since started */
	time_t token_expires;	/* 0: unknown */
	int removed;		/* status_forget: leave out of the file */
	int seeded;		/* carried-over fields taken from disk */
};

static const char *const state_words[] = {
	[ST_IDLE] = "idle",
	[ST_POLLING] = "polling",
	[ST_IDLING] = "idling",
	[ST_BACKOFF] = "backing-off",
	[ST_HUMAN] = "needs-human",
	[ST_STOPPED] = "stopped",
};
#define NSTATES (sizeof state_words / sizeof state_words[0])

/* This process's records (owned), guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Held across a whole flush so snapshots reach the file in order. */
static pthread_mutex_t flush_mu = PTHREAD_MUTEX_INITIALIZER;
static char *path;
static time_t started;
static struct status_rec **recs;
static size_t nrecs, caprecs;
static struct strmap index_;	/* account -> struct status_rec * */
static int dirty;

char *
status_path(const struct config *cfg)
{
	char hash[17], *abs;

	if (cfg->accounts == NULL)
		return NULL;
	abs = realpath(cfg->file, NULL);
	hash_hex(abs != NULL ? abs : cfg->file, hash);
	free(abs);
	return xasprintf("%s/status-%s", cfg->accounts->state_dir, hash);
}

static void
rec_free(struct status_rec *r)
{
	if (r == NULL)
		return;
	free(r->account);
	free(r->error);
	free(r);
}

/* The owned record of name, registered when new; mu held. */
static struct status_rec *
rec_get(const char *name)
{
	struct strmap_entry *e = strmap_get(&index_, name);
	struct status_rec *r;

	if (e != NULL)
		return e->value;
	r = xcalloc(1, sizeof *r);
	r->account = xstrdup(name);
	r->pid = (long)getpid();
	r->started = started != 0 ? started : time(NULL);
	r->updated = time(NULL);
	r->state = ST_IDLE;
	if (nrecs == caprecs) {
		caprecs = caprecs == 0 ? 16 : caprecs * 2;
		recs = xrealloc(recs, caprecs * sizeof *recs);
	}
	recs[nrecs++] = r;
	strmap_put(&index_, name, r);
	dirty = 1;
	return r;
}

/* Mark r changed; mu held. */
static void
touch(struct status_rec *r)
{
	r->updated = time(NULL);
	r->removed = 0;
	dirty = 1;
}

void
status_open(const char *p)
{
	pthread_mutex_lock(&mu);
	free(path);
	path = xstrdup(p);
	started = time(NULL);
	pthread_mutex_unlock(&mu);
}

void
status_account(const char *name)
{
	pthread_mutex_lock(&mu);
	(void)rec_get(name);
	pthread_mutex_unlock(&mu);
}

void
status_forget(const char *name)
{
	struct strmap_entry *e;

	pthread_mutex_lock(&mu);
	if ((e = strmap_get(&index_, name)) != NULL) {
		((struct status_rec *)e->value)->removed = 1;
		dirty = 1;
	}
	pthread_mutex_unlock(&mu);
}

void
status_set_state(const char *name, enum status_state st)
{
	struct status_rec *r;

	pthread_mutex_lock(&mu);
	r = rec_get(name);
	if (r->state != (int)st || r->until != 0) {
		r->state = st;
		r->until = 0;
		touch(r);
	}
	pthread_mutex_unlock(&mu);
}

void
status_set_backoff(const char *name, time_t until)
{
	struct status_rec *r;

	pthread_mutex_lock(&mu);
	r = rec_get(name);
	r->state = ST_BACKOFF;
	r->until = until;
	touch(r);
	pthread_mutex_unlock(&mu);
}

void
status_set_success(const char *name)
{
	struct status_rec *r;

	pthread_mutex_lock(&mu);
	r = rec_get(name);
	r->success = time(NULL);
	touch(r);
	pthread_mutex_unlock(&mu);
}

void
status_set_error(const char *name, const char *text)
{
	struct status_rec *r;
	char *copy, *red;

	/* Log code redacts already; a second pass costs little here. */
	copy = xstrndup(text, STATUS_MAX_ERROR);
	if ((red = secret_redacted(copy)) != NULL) {
		secret_wipe_free(copy, strlen(copy));
		copy = red;
	}
	pthread_mutex_lock(&mu);
	r = rec_get(name);
	free(r->error);
	r->error = copy;
	r->error_at = time(NULL);
	touch(r);
	pthread_mutex_unlock(&mu);
}

void
status_add_delivered(const char *name, unsigned long n)
{
	struct status_rec *r;

	if (n == 0)
		return;
	pthread_mutex_lock(&mu);
	r = rec_get(name);
	r->delivered += n;
	touch(r);
	pthread_mutex_unlock(&mu);
}

void
status_set_token_expiry(const char *name, time_t at)
{
	struct status_rec *r;

	pthread_mutex_lock(&mu);
	r = rec_get(name);
	if (r->token_expires != at) {
		r->token_expires = at;
		touch(r);
	}
	pthread_mutex_unlock(&mu);
}

void
status_fetch_begin(const struct account *a)
{
	status_set_state(a->name, ST_POLLING);
}

void
status_fetch_end(struct account *a, int r, unsigned long n,
    const char *err)
{
	char *cache_dir;

	status_add_delivered(a->name, n);
	if (r == PM_OK) {
		status_set_success(a->name);
		status_set_state(a->name, ST_IDLE);
	} else {
		status_set_error(a->name, err != NULL ? err :
		    "failed for an unknown reason");
		if (r == PM_EAUTH || r == PM_ECONFIG)
			status_set_state(a->name, ST_HUMAN);
		else
			status_set_backoff(a->name, 0);
	}
	if (account_uses_oauth(a)) {
		cache_dir = account_token_dir(a);
		status_set_token_expiry(a->name,
		    oauth_account_expiry(a, cache_dir, NULL));
		free(cache_dir);
	}
}

char *
status_summary(void)
{
	static const char *const words[] = {
		[ST_IDLE] = "idle",
		[ST_POLLING] = "polling",
		[ST_IDLING] = "idling",
		[ST_BACKOFF] = "backing off",
		[ST_HUMAN] = "needing a human",
		[ST_STOPPED] = "stopped",
	};
	size_t count[NSTATES] = { 0 }, total = 0, i, len = 0;
	const char *sep = ": ";
	char *text = NULL;
	FILE *f;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nrecs; i++)
		if (!recs[i]->removed) {
			count[recs[i]->state]++;
			total++;
		}
	pthread_mutex_unlock(&mu);
	if ((f = open_memstream(&text, &len)) == NULL)
		abort();	/* out of memory, as xmalloc */
	fprintf(f, "%zu account%s", total, total == 1 ? "" : "s");
	for (i = 0; i < NSTATES; i++)
		if (count[i] > 0) {
			fprintf(f, "%s%zu %s", sep, count[i], words[i]);
			sep = ", ";
		}
	if (fclose(f) != 0)
		abort();
	return text;
}

/* --- the file format --------------------------------------------------- */

/* Write s to f, escaped. */
static void
put_escaped(FILE *f, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\r')
			fputs("\\r", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

/* One record as a line. */
static void
put_record(FILE *f, const struct status_rec *r)
{
	fputs("account=", f);
	put_escaped(f, r->account);
	fprintf(f, "\tpid=%ld\tstarted=%lld\tupdated=%lld\tstate=%s"
	    "\tuntil=%lld\tsuccess=%lld\tdelivered=%llu\ttoken_expires=%lld"
	    "\terror_at=%lld", r->pid, (long long)r->started,
	    (long long)r->updated, state_words[r->state], (long long)r->until,
	    (long long)r->success, r->delivered, (long long)r->token_expires,
	    (long long)r->error_at);
	if (r->error != NULL) {
		fputs("\terror=", f);
		put_escaped(f, r->error);
	}
	fputc('\n', f);
}

/* Undo put_escaped in place. */
static void
unescape(char *s)
{
	char *w = s;

	while (*s != '\0') {
		if (*s != '\\' || s[1] == '\0') {
			*w++ = *s++;
			continue;
		}
		switch (s[1]) {
		case 't': *w++ = '\t'; s += 2; break;
		case 'n': *w++ = '\n'; s += 2; break;
		case 'r': *w++ = '\r'; s += 2; break;
		case '\\': *w++ = '\\'; s += 2; break;
		case 'x':
			if (s[2] != '\0' && s[3] != '\0' &&
			    strchr("0123456789abcdefABCDEF", s[2]) != NULL &&
			    strchr("0123456789abcdefABCDEF", s[3]) != NULL) {
				char hex[3] = { s[2], s[3], '\0' };

				*w++ = (char)strtol(hex, NULL, 16);
				s += 4;
				break;
			}
			/* FALLTHROUGH */
		default:
			*w++ = *s++;
		}
	}
	*w = '\0';
}

/* A number field; 0 when malformed. */
static long long
num(const char *v)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	return errno != 0 || *end != '\0' || end == v ? 0 : n;
}

/* Parse one line (modified in place) into a new record; NULL if it names
 * no account. */
static struct status_rec *
parse_record(char *line)
{
	struct status_rec *r = xcalloc(1, sizeof *r);
	char *field, *save = NULL, *eq;
	size_t i;

	for (field = strtok_r(line, "\t", &save); field != NULL;
	    field = strtok_r(NULL, "\t", &save)) {
		if ((eq = strchr(field, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(field, "account") == 0) {
			unescape(eq);
			free(r->account);
			r->account = xstrdup(eq);
		} else if (strcmp(field, "error") == 0) {
			unescape(eq);
			free(r->error);
			r->error = xstrdup(eq);
		} else if (strcmp(field, "state") == 0) {
			for (i = 0; i < NSTATES; i++)
				if (strcmp(eq, state_words[i]) == 0)
					r->state = (int)i;
		} else if (strcmp(field, "pid") == 0)
			r->pid = (long)num(eq);
		else if (strcmp(field, "started") == 0)
			r->started = (time_t)num(eq);
		else if (strcmp(field, "updated") == 0)
			r->updated = (time_t)num(eq);
		else if (strcmp(field, "until") == 0)
			r->until = (time_t)num(eq);
		else if (strcmp(field, "success") == 0)
			r->success = (time_t)num(eq);
		else if (strcmp(field, "delivered") == 0)
			r->delivered = (unsigned long long)num(eq);
		else if (strcmp(field, "token_expires") == 0)
			r->token_expires = (time_t)num(eq);
		else if (strcmp(field, "error_at") == 0)
			r->error_at = (time_t)num(eq);
	}
	if (r->account == NULL || r->account[0] == '\0') {
		rec_free(r);
		return NULL;
	}
	return r;
}

/*
 * Read the file at p into a new array of records.  PM_OK (a missing file:
 * *missing_r = 1 and no records), or PM_ETEMP (unreadable) / PM_EPROTO
 * (not a status file) with *err.
 */
static int
read_file(const char *p, struct status_rec ***recs_r, size_t *n_r,
    int *missing_r, char **err)
{
	struct status_rec **out = NULL, *r;
	char *data, *line, *next;
	size_t len, n = 0, cap = 0;

	*recs_r = NULL;
	*n_r = 0;
	*missing_r = 0;
	if (read_small_file(p, STATUS_MAX_FILE, &data, &len) < 0) {
		if (errno == ENOENT) {
			*missing_r = 1;
			return PM_OK;
		}
		return errf(err, PM_ETEMP, "%s: %s", p, strerror(errno));
	}
	if (memchr(data, '\0', len) != NULL ||
	    strncmp(data, STATUS_MAGIC "\n", strlen(STATUS_MAGIC) + 1) != 0) {
		free(data);
		return errf(err, PM_EPROTO, "%s: not a pullmail status file "
		    "(or one from a newer version)", p);
	}
	for (line = data + strlen(STATUS_MAGIC) + 1; *line != '\0';
	    line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if ((r = parse_record(line)) == NULL)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			out = xrealloc(out, cap * sizeof *out);
		}
		out[n++] = r;
	}
	free(data);
	*recs_r = out;
	*n_r = n;
	return PM_OK;
}

static void
recs_free(struct status_rec **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		rec_free(v[i]);
	free(v);
}

/* The record of name in v[0..n), or NULL. */
static struct status_rec *
find(struct status_rec **v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i]->account, name) == 0)
			return v[i];
	return NULL;
}

/* Write text to p atomically (p.tmp, fsync, rename, fsync dir), 0600. */
static int
write_atomic(const char *p, const char *text, char **err)
{
	char *tmp = xasprintf("%s.tmp", p), *dir = xstrdup(p), *slash;
	int fd, r = PM_OK;

	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0 || fchmod(fd, 0600) < 0 ||
	    write_full(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		r = errf(err, PM_ETEMP, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	} else if (close(fd) < 0 || rename(tmp, p) < 0) {
		r = errf(err, PM_ETEMP, "%s: %s", p, strerror(errno));
		unlink(tmp);
	} else if (slash != NULL)
		(void)fsync_dir(dir);
	free(tmp);
	free(dir);
	return r;
}

int
status_flush(char **err)
{
	struct status_rec **disk = NULL, *d, *r;
	char *p, *lockp, *dir, *slash, *text = NULL;
	size_t ndisk = 0, textlen = 0, i;
	FILE *f;
	int missing, lockfd = -1, rc;

	pthread_mutex_lock(&flush_mu);
	pthread_mutex_lock(&mu);
	if (path == NULL || !dirty) {
		pthread_mutex_unlock(&mu);
		pthread_mutex_unlock(&flush_mu);
		return PM_OK;
	}
	p = xstrdup(path);
	dirty = 0;
	pthread_mutex_unlock(&mu);

	dir = xstrdup(p);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		(void)mkdir_p(dir, 0700);
	}
	free(dir);
	lockp = xasprintf("%s.lock", p);
	lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0)
		rc = errf(err, PM_ETEMP, "%s: %s", lockp, strerror(errno));
	else
		rc = read_file(p, &disk, &ndisk, &missing, err);
	free(lockp);

	pthread_mutex_lock(&mu);
	if (rc == PM_OK) {
		if ((f = open_memstream(&text, &textlen)) == NULL)
			abort();	/* out of memory, as xmalloc */
		fprintf(f, "%s\n", STATUS_MAGIC);
		/* Others' records where they were, ours in their place. */
		for (i = 0; i < ndisk; i++) {
			d = disk[i];
			if ((r = find(recs, nrecs, d->account)) == NULL)
				put_record(f, d);
		}
		for (i = 0; i < nrecs; i++) {
			r = recs[i];
			if (!r->seeded &&
			    (d = find(disk, ndisk, r->account)) != NULL) {
				/* What the last run learnt still holds. */
				if (r->success == 0)
					r->success = d->success;
				if (r->error == NULL && d->error != NULL) {
					r->error = xstrdup(d->error);
					r->error_at = d->error_at;
				}
				if (r->token_expires == 0)
					r->token_expires = d->token_expires;
			}
			r->seeded = 1;
			if (!r->removed)
				put_record(f, r);
		}
		if (fclose(f) != 0)
			abort();
	}
	pthread_mutex_unlock(&mu);
	recs_free(disk, ndisk);

	if (rc == PM_OK)
		rc = write_atomic(p, text, err);
	if (lockfd >= 0)
		close(lockfd);	/* releases the lock */
	if (rc != PM_OK) {
		pthread_mutex_lock(&mu);
		dirty = 1;
		pthread_mutex_unlock(&mu);
	}
	free(text);
	free(p);
	pthread_mutex_unlock(&flush_mu);
	return rc;
}

void
status_sync(void)
{
	static atomic_int failing;
	char *err = NULL;

	if (status_flush(&err) == PM_OK)
		failing = 0;
	else {
		if (atomic_exchange(&failing, 1) == 0)
			log_warnx("status file not written: %s", err);
		free(err);
	}
}

void
status_close(void)
{
	status_sync();
	pthread_mutex_lock(&mu);
	recs_free(recs, nrecs);
	recs = NULL;
	nrecs = caprecs = 0;
	strmap_free(&index_);
	free(path);
	path = NULL;
	started = 0;
	dirty = 0;
	pthread_mutex_unlock(&mu);
}

/* --- pullmail status ----------------------------------------------------- */

/* Whether process pid still runs. */
static int
pid_alive(long pid)
{
	if (pid <= 0 || pid > INT_MAX)
		return 0;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* "2026-11-30 03:10:02 (4 min ago)" or "... (in 59 min)" into buf. */
static const char *
when(time_t t, time_t now, char *buf, size_t size)
{
	long long d = (long long)(now - t), a = d < 0 ? -d : d;
	char stamp[32], span[48];
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	if (a < 60)
		snprintf(span, sizeof span, "%lld s", a);
	else if (a < 3600)
		snprintf(span, sizeof span, "%lld min", a / 60);
	else if (a < 86400)
		snprintf(span, sizeof span, "%lld h %lld min", a / 3600,
		    a % 3600 / 60);
	else
		snprintf(span, sizeof span, "%lld d %lld h", a / 86400,
		    a % 86400 / 3600);
	snprintf(buf, size, "%s (%s%s%s)", stamp, d < 0 ? "in " : "", span,
	    d < 0 ? "" : " ago");
	return buf;
}

/* Print the record r; returns its exit status (see status_report). */
static int
report_one(FILE *out, const struct status_rec *r, time_t now)
{
	int alive = pid_alive(r->pid), code = 0;
	char t1[96], t2[96];

	fprintf(out, "%s\n  state:         ", r->account);
	switch (r->state) {
	case ST_IDLE:
		fprintf(out, alive ? "idle, waiting for the next poll\n" :
		    "idle since %s\n", when(r->updated, now, t1, sizeof t1));
		break;
	case ST_POLLING:
	case ST_IDLING:
		fprintf(out, "%s", r->state == ST_POLLING ? "polling" :
		    "idling (IMAP IDLE)");
		if (!alive) {
			fprintf(out, ", but its process is gone (it ended "
			    "without a word at %s?)",
			    when(r->updated, now, t1, sizeof t1));
			code = 1;
		}
		fputc('\n', out);
		break;
	case ST_BACKOFF:
		if (r->until != 0 && alive)
			fprintf(out, "backing off until %s\n",
			    when(r->until, now, t1, sizeof t1));
		else
			fprintf(out, "backing off: the next run tries "
			    "again\n");
		code = 1;
		break;
	case ST_HUMAN:
		fprintf(out, "NEEDS A HUMAN: see the last error\n");
		code = 2;
		break;
	default:
		fprintf(out, "stopped at %s\n",
		    when(r->updated, now, t1, sizeof t1));
		break;
	}
	fprintf(out, "  last success:  %s\n", r->success == 0 ? "never" :
	    when(r->success, now, t1, sizeof t1));
	if (r->error != NULL && r->error_at != 0) {
		fprintf(out, "  last error:    %s: %s\n",
		    when(r->error_at, now, t1, sizeof t1), r->error);
		if (r->error_at >= r->success && code == 0)
			code = 1;
	} else
		fprintf(out, "  last error:    none\n");
	fprintf(out, "  delivered:     %llu since %s\n", r->delivered,
	    when(r->started, now, t1, sizeof t1));
	if (r->token_expires == 0)
		fprintf(out, "  token expires: unknown\n");
	else
		fprintf(out, "  token expires: %s%s\n",
		    when(r->token_expires, now, t1, sizeof t1),
		    r->token_expires <= now ? ", expired (the next fetch "
		    "gets a new one)" : "");
	fprintf(out, "  written by:    pid %ld, %s, at %s\n", r->pid,
	    alive ? "running" : "no longer running",
	    when(r->updated, now, t2, sizeof t2));
	return code;
}

/* Of two report exit statuses, the more urgent one. */
static int
report_worse(int a, int b)
{
	static const int rank[] = { 0, 1, 3, 2 };	/* by code 0..3 */

	return rank[b] > rank[a] ? b : a;
}

int
status_report(const char *p, char *const *names, size_t n, time_t now,
    FILE *out)
{
	struct status_rec **v, *r;
	size_t nv, i;
	char *err = NULL;
	int missing, code = 0;

	if (read_file(p, &v, &nv, &missing, &err) != PM_OK) {
		log_errx("%s", err);
		free(err);
		return 3;
	}
	if (missing) {
		fprintf(out, "no status yet: %s does not exist (pullmail has "
		    "not run with this configuration)\n", p);
		return 3;
	}
	for (i = 0; i < n; i++) {
		if (i > 0)
			fputc('\n', out);
		if ((r = find(v, nv, names[i])) == NULL) {
			fprintf(out, "%s\n  state:         no status yet (not "
			    "run since the status file was written)\n",
			    names[i]);
			code = report_worse(code, 3);
		} else
			code = report_worse(code, report_one(out, r, now));
	}
	recs_free(v, nv);
	return code;
}
