/*
 * The fetch engine (fetch.h): the fetch policy, once, for every protocol.
 *
 * For each folder: select it, list it, tell the state the UIDVALIDITY and
 * the complete list (so it forgets what is gone), sort the messages into
 * known (delivered by an earlier run), too big and new, then fetch the new
 * ones batch by batch.  A batch is handed to the plugin as one set, which it
 * fetches with as many requests in flight as its protocol allows; each
 * message streams through the sink below into the target.  When the set is
 * done the target syncs (one fsync schedule for the whole batch), the UIDs
 * are recorded and the state file saved, and only then is the plugin told
 * to flag or delete those messages.  A message whose delivery failed stays
 * on the server (not recorded, not disposed of) while the others go on; a
 * connection that breaks in the middle of a batch still has the messages
 * completed before it synced and recorded, and nothing disposed of.
 *
 * Each message's key goes to the delivery journal (journal.h) the moment
 * it becomes visible (after finish(), or when the target's sync() reports
 * it), and the journal is emptied once the state file holds the batch: a
 * run killed in between delivers one message again, not the batch.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver.h"
#include "fetch.h"
#include "journal.h"
#include "log.h"
#include "state.h"
#include "util.h"

/* Where one message of the batch stands. */
enum slot_state {
	SLOT_WAITING = 0,	/* requested, nothing heard of it yet */
	SLOT_RECEIVING,		/* begun: bytes are arriving */
	SLOT_FINISHED,		/* complete and finished: to be synced */
	SLOT_FAILED,		/* delivery or server refused: stays */
	SLOT_GONE,		/* expunged meanwhile: nothing to do */
	SLOT_CUT		/* transfer broke off: fetched next time */
};

/* One message of the batch being fetched. */
struct slot {
	size_t idx;		/* index into the listing */
	int state;		/* enum slot_state */
	uint64_t bytes;		/* bytes delivered, once finished */
	struct pm_msg *m;	/* open while SLOT_RECEIVING */
};

/* Messages deleted in one folder, to be forgotten when close() succeeds
 * (PM_PLUGIN_DELETE_AT_CLOSE). */
struct gone {
	const char *folder;
	char **uids;
	size_t n;
};

/* The progress line of a terminal. */
struct progress {
	int on;
	size_t msgs, msgs_done;
	uint64_t bytes, bytes_done;
	long long start_ms, drawn_ms;
	int drawn;		/* a line is on the screen */
};

struct pm_fetch {
	const struct fetch_policy *pol;
	const struct fetch_target *t;
	struct state *st;
	const struct pm_plugin *p;
	struct pm_conn *c;
	struct run_stats *stats;

	const char *folder;		/* the selected folder */
	const struct pm_entry *e;	/* its listing (the plugin's) */
	size_t ne;
	int have_uids;			/* the listing's uids are stable */

	struct slot *slots;		/* the batch, ascending idx */
	size_t nslots;
	size_t *shown;			/* for a target whose sync shows them:
					 * slots finished since the sync, in
					 * order (their index into slots) */
	size_t nshown;

	struct journal *j;
	int sync_shows;			/* sync(), not finish(), makes a
					 * message visible */

	int worst;			/* worst per-message failure */
	char *worst_err;

	struct gone *gone;
	size_t ngone;

	size_t batches;			/* batches committed by this run */

	struct progress prog;
};

/* A message streaming into the target. */
struct pm_msg {
	struct pm_fetch *f;
	struct slot *sl;	/* NULL: not ours (a plugin bug); dropped */
	void *dm;		/* the target's message, NULL after a failure */
	uint64_t bytes;
};

/* "FOLDER: " for log lines, "" for a protocol without folders. */
static const char *
folder_sep(const struct pm_fetch *f)
{
	return f->folder[0] != '\0' ? ": " : "";
}

/* Human-readable byte count in buf. */
static const char *
fmt_bytes(char *buf, size_t len, uint64_t n)
{
	if (n >= (uint64_t)10 << 30)
		snprintf(buf, len, "%.1f GB", n / 1073741824.0);
	else if (n >= (uint64_t)10 << 20)
		snprintf(buf, len, "%.1f MB", n / 1048576.0);
	else if (n >= 10 << 10)
		snprintf(buf, len, "%.1f kB", n / 1024.0);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	return buf;
}

/* Draw the progress line: messages and bytes done of the total, rate and
 * time left.  At most five times a second unless force is set. */
static void
progress_draw(struct pm_fetch *f, int force)
{
	struct progress *pg = &f->prog;
	char done[24], total[24], rate[24], left[32];
	long long now = mono_ms(), ms;
	double bps;

	if (!pg->on || pg->msgs == 0 ||
	    (!force && pg->drawn && now - pg->drawn_ms < 200))
		return;
	pg->drawn_ms = now;
	ms = now - pg->start_ms;
	bps = ms > 0 ? pg->bytes_done * 1000.0 / ms : 0;
	if (bps > 0 && pg->bytes > pg->bytes_done) {
		long long s = (long long)((pg->bytes - pg->bytes_done) / bps);

		snprintf(left, sizeof left, ", %lld:%02lld left", s / 60,
		    s % 60);
	} else
		left[0] = '\0';
	fprintf(stderr, "\r%s: %s%s%zu/%zu messages, %s/%s, %s/s%s\033[K",
	    f->pol->account, f->folder, folder_sep(f), pg->msgs_done,
	    pg->msgs, fmt_bytes(done, sizeof done, pg->bytes_done),
	    fmt_bytes(total, sizeof total, pg->bytes),
	    fmt_bytes(rate, sizeof rate, (uint64_t)bps), left);
	fflush(stderr);
	pg->drawn = 1;
}

/* Take the progress line off the screen. */
static void
progress_clear(struct pm_fetch *f)
{
	if (!f->prog.drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	f->prog.drawn = 0;
}

/* Note that message idx of the folder stays on the server because of a
 * failure; the worst one (PM_EDELIVER over PM_ETEMP) is reported at the
 * end.  Takes reason. */
static void
note_failure(struct pm_fetch *f, size_t idx, int status, char *reason)
{
	progress_clear(f);
	log_warnx("%s: %s%smessage %s left on the server: %s",
	    f->pol->account, f->folder, folder_sep(f), f->e[idx].uid,
	    reason != NULL ? reason : "delivery failed");
	f->stats->failed++;
	if (f->worst == PM_OK ||
	    (status == PM_EDELIVER && f->worst != PM_EDELIVER)) {
		free(f->worst_err);
		f->worst = status;
		f->worst_err = reason != NULL ? reason :
		    xstrdup("delivery failed");
	} else
		free(reason);
}

/* Order slots by listing index. */
static int
slot_cmp(const void *key, const void *elem)
{
	size_t k = *(const size_t *)key, i = ((const struct slot *)elem)->idx;

	return k < i ? -1 : k > i;
}

/* The slot of message idx in the batch, or NULL. */
static struct slot *
slot_find(struct pm_fetch *f, size_t idx)
{
	if (f->nslots == 0)
		return NULL;
	return bsearch(&idx, f->slots, f->nslots, sizeof *f->slots,
	    slot_cmp);
}

/* Sink begin(): open the target for message idx. */
static struct pm_msg *
sink_begin(struct pm_fetch *f, size_t idx)
{
	struct deliver_info info;
	struct pm_msg *m = xcalloc(1, sizeof *m);
	struct slot *sl = slot_find(f, idx);
	char *derr = NULL;
	int rc;

	m->f = f;
	if (sl == NULL || sl->state != SLOT_WAITING) {
		log_warnx("%s: the %s plugin began message %zu, which is not "
		    "awaited; its bytes are dropped", f->pol->account,
		    f->p->name, idx);
		return m;
	}
	m->sl = sl;
	sl->m = m;
	sl->state = SLOT_RECEIVING;
	memset(&info, 0, sizeof info);
	info.account = f->pol->account;
	info.server = f->pol->server;
	info.mailbox = f->folder;
	info.uid = f->e[idx].uid;
	info.size = f->e[idx].size;
	info.protocol = f->pol->protocol;
	rc = f->t->begin(f->t->ctx, &info, &m->dm, &derr);
	if (rc != PM_OK) {
		m->dm = NULL;
		sl->state = SLOT_FAILED;
		note_failure(f, idx, rc, derr);
	}
	return m;
}

/* Sink write(): pass bytes on; after a failure they are dropped. */
static void
sink_write(struct pm_msg *m, const void *buf, size_t len)
{
	struct pm_fetch *f = m->f;
	char *derr = NULL;
	int rc;

	m->bytes += len;
	if (m->sl != NULL && f->prog.on) {
		f->prog.bytes_done += len;
		progress_draw(f, 0);
	}
	if (m->dm == NULL || len == 0)
		return;
	rc = f->t->write(m->dm, buf, len, &derr);
	if (rc != PM_OK) {
		f->t->abort(m->dm);
		m->dm = NULL;
		m->sl->state = SLOT_FAILED;
		note_failure(f, m->sl->idx, rc, derr);
	}
}

/* Sink end(): finish a complete message, drop an incomplete one. */
static void
sink_end(struct pm_msg *m, int complete)
{
	struct pm_fetch *f = m->f;
	struct slot *sl = m->sl;
	char *derr = NULL;
	int rc;

	if (sl == NULL) {
		free(m);
		return;
	}
	sl->m = NULL;
	if (m->dm != NULL && !complete) {
		f->t->abort(m->dm);
		sl->state = SLOT_CUT;
	} else if (m->dm != NULL) {
		/* finish() frees the target's message either way. */
		rc = f->t->finish(m->dm, &derr);
		if (rc == PM_OK) {
			sl->state = SLOT_FINISHED;
			sl->bytes = m->bytes;
			/* Visible now, or when sync() says so.  Made-up
			 * keys (no UIDL) are never recorded. */
			if (f->sync_shows)
				f->shown[f->nshown++] = (size_t)(sl - f->slots);
			else if (f->have_uids)
				journal_add(f->j, f->e[sl->idx].uid);
		} else {
			sl->state = SLOT_FAILED;
			note_failure(f, sl->idx, rc, derr);
		}
	}
	f->prog.msgs_done++;
	progress_draw(f, 0);
	free(m);
}

/* Sink missing(): the server did not hand message idx over, or the plugin
 * discarded what it handed over. */
static void
sink_missing(struct pm_fetch *f, size_t idx, int status, const char *reason)
{
	struct slot *sl = slot_find(f, idx);

	/* A message the plugin began and discarded may be given a reason
	 * (the slot is then SLOT_CUT and already counted as done). */
	if (sl == NULL || (sl->state != SLOT_WAITING &&
	    (sl->state != SLOT_CUT || status == PM_OK)))
		return;
	if (sl->state == SLOT_WAITING)
		f->prog.msgs_done++;
	if (status == PM_OK) {
		sl->state = SLOT_GONE;
		log_debug("fetch", "%s: %s%smessage %s is gone: %s",
		    f->pol->account, f->folder, folder_sep(f),
		    f->e[idx].uid, reason != NULL ? reason : "expunged");
		return;
	}
	sl->state = SLOT_FAILED;
	note_failure(f, idx, status, xstrdup(reason != NULL ? reason :
	    "the server did not send it"));
}

/* The target's sync() made the nth message finished since the last sync
 * visible: journal it. */
static void
engine_visible(void *arg, size_t nth)
{
	struct pm_fetch *f = arg;

	if (nth < f->nshown && f->have_uids)
		journal_add(f->j, f->e[f->slots[f->shown[nth]].idx].uid);
}

static const struct pm_sink engine_sink = {
	.begin = sink_begin,
	.write = sink_write,
	.end = sink_end,
	.missing = sink_missing,
};

/* Make the batch's finished messages durable and record them.  *n_r is
 * how many there were. */
static int
commit_batch(struct pm_fetch *f, size_t *n_r, char **err)
{
	size_t i, n = 0;
	uint64_t bytes = 0;
	int rc;

	for (i = 0; i < f->nslots; i++)
		if (f->slots[i].state == SLOT_FINISHED)
			n++;
	*n_r = n;
	if (n == 0)
		return PM_OK;
	if ((rc = f->t->sync(f->t->ctx, err)) != PM_OK) {
		/* Not durable, not recorded: fetched again next time, so the
		 * journal must not vouch for them either. */
		journal_clear(f->j);
		return rc;
	}
	for (i = 0; i < f->nslots; i++) {
		if (f->slots[i].state != SLOT_FINISHED)
			continue;
		/* Made-up keys (POP3 without UIDL) mean nothing next
		 * time: they are not recorded. */
		if (f->have_uids)
			state_add(f->st, f->folder,
			    f->e[f->slots[i].idx].uid);
		bytes += f->slots[i].bytes;
	}
	/* When the save fails the journal keeps them: they are durable,
	 * and the next run records them. */
	if ((rc = state_save(f->st, err)) != PM_OK)
		return rc;
	journal_clear(f->j);
	f->stats->delivered += n;
	f->stats->bytes += bytes;
	log_debug("state", "%s: %s%s%zu messages durable and recorded",
	    f->pol->account, f->folder, folder_sep(f), n);
	return PM_OK;
}

/* What the account wants done to a delivered message: 0 (nothing) or an
 * enum pm_dispose. */
static int
dispose_action(const struct fetch_policy *pol)
{
	if (!pol->keep)
		return PM_DISPOSE_DELETE;
	return pol->mark_seen ? PM_DISPOSE_SEEN : 0;
}

/* Dispose of idx[0..n) as the account says; remember what the server
 * accepted to delete at close. */
static int
dispose(struct pm_fetch *f, const size_t *idx, size_t n, char **err)
{
	struct gone *g;
	unsigned char *done;
	size_t i, ndone = 0;
	int rc, action = dispose_action(f->pol);

	if (n == 0 || action == 0)
		return PM_OK;
	done = xcalloc(n, 1);
	rc = f->p->dispose(f->c, action, idx, n, done, err);
	for (i = 0; i < n; i++)
		ndone += done[i] != 0;
	if (action == PM_DISPOSE_DELETE &&
	    (f->p->flags & PM_PLUGIN_DELETE_AT_CLOSE) && ndone > 0) {
		if (f->ngone == 0 || strcmp(f->gone[f->ngone - 1].folder,
		    f->folder) != 0) {
			f->gone = xrealloc(f->gone, (f->ngone + 1) *
			    sizeof *f->gone);
			memset(&f->gone[f->ngone], 0, sizeof *f->gone);
			f->gone[f->ngone++].folder = f->folder;
		}
		g = &f->gone[f->ngone - 1];
		g->uids = xrealloc(g->uids, (g->n + ndone) * sizeof *g->uids);
		for (i = 0; i < n; i++)
			if (done[i])
				g->uids[g->n++] = xstrdup(f->e[idx[i]].uid);
	}
	free(done);
	if (rc == PM_OK)
		log_debug("fetch", "%s: %s%s%zu messages %s", f->pol->account,
		    f->folder, folder_sep(f), ndone,
		    action == PM_DISPOSE_DELETE ? "deleted" : "marked seen");
	return rc;
}

/*
 * Fetch the messages idx[0..n) as one set, then sync and record the ones
 * that arrived whole and dispose of those.  After a failure of the session
 * the completed ones are still synced and recorded; nothing is disposed of.
 */
static int
fetch_batch(struct pm_fetch *f, const size_t *idx, size_t n, char **err)
{
	size_t i, nfin = 0, *fin;
	char *cerr = NULL;
	int rc, crc;

	f->slots = xcalloc(n, sizeof *f->slots);
	f->nslots = n;
	f->shown = xcalloc(n, sizeof *f->shown);
	f->nshown = 0;
	for (i = 0; i < n; i++)
		f->slots[i].idx = idx[i];
	rc = f->p->fetch(f->c, idx, n, &engine_sink, f, err);
	for (i = 0; i < n; i++) {
		struct slot *sl = &f->slots[i];

		if (sl->state == SLOT_RECEIVING) {
			/* The plugin left it open: it is incomplete. */
			log_warnx("%s: the %s plugin did not end message %s",
			    f->pol->account, f->p->name, f->e[sl->idx].uid);
			sink_end(sl->m, 0);
		} else if (sl->state == SLOT_WAITING && rc == PM_OK) {
			sl->state = SLOT_GONE;
			log_debug("fetch", "%s: %s%smessage %s is gone",
			    f->pol->account, f->folder, folder_sep(f),
			    f->e[sl->idx].uid);
		}
	}
	crc = commit_batch(f, &nfin, &cerr);
	if (crc != PM_OK) {
		if (rc == PM_OK) {
			rc = crc;
			free(*err);
			*err = cerr;
			cerr = NULL;
		} else
			log_warnx("%s: %s", f->pol->account, cerr);
		if (nfin > 0)
			log_warnx("%s: %zu delivered messages were not "
			    "recorded; they stay on the server and may be "
			    "delivered again", f->pol->account, nfin);
	} else if (rc == PM_OK && nfin > 0) {
		fin = xmalloc(nfin * sizeof *fin);
		for (i = nfin = 0; i < n; i++)
			if (f->slots[i].state == SLOT_FINISHED)
				fin[nfin++] = f->slots[i].idx;
		rc = dispose(f, fin, nfin, err);
		free(fin);
	}
	if (rc == PM_OK)
		f->batches++;
	free(cerr);
	free(f->slots);
	f->slots = NULL;
	f->nslots = 0;
	free(f->shown);
	f->shown = NULL;
	f->nshown = 0;
	return rc;
}

/* Whether the session must end now, at a batch boundary, to go on with a
 * new one (pol->renew_at_ms): PM_ETEMP with stats->renew set.  Only after
 * a batch of this run, so that every session gets somewhere. */
static int
renew_due(struct pm_fetch *f, char **err)
{
	if (f->pol->renew_at_ms <= 0 || f->batches == 0 ||
	    mono_ms() < f->pol->renew_at_ms)
		return PM_OK;
	f->stats->renew = 1;
	return errf(err, PM_ETEMP, "the access token is about to expire; "
	    "the session ends here to go on with a new one");
}

/* Fetch the new messages of one folder and dispose of them. */
static int
fetch_folder(struct pm_fetch *f, const char *folder, char **err)
{
	const struct fetch_policy *pol = f->pol;
	struct pm_folder fi;
	const char **present = NULL;
	size_t i, k, n, nfresh = 0, nold = 0, nskip = 0, *fresh = NULL;
	size_t *old = NULL;
	uint64_t bytes, fresh_bytes = 0;
	int rc, have_uids = 0;

	f->folder = folder;
	f->e = NULL;
	f->ne = 0;
	memset(&fi, 0, sizeof fi);
	if ((rc = f->p->select(f->c, folder, &fi, err)) != PM_OK)
		return rc;
	journal_folder(f->j, folder, fi.validity);
	if (fi.validity != NULL && state_validity(f->st, folder,
	    fi.validity) == 1)
		log_warnx("%s: UIDVALIDITY of %s changed to %s: the messages "
		    "delivered before can no longer be told apart, all of "
		    "them will be fetched again", pol->account, folder,
		    fi.validity);
	rc = f->p->list(f->c, &f->e, &f->ne, &have_uids, err);
	if (rc != PM_OK)
		return rc;
	f->have_uids = have_uids;
	n = f->ne;
	if (!have_uids && !pol->fetch_all)
		return errf(err, PM_ECONFIG, "the server does not support "
		    "UIDL, so messages cannot be told apart from one run to "
		    "the next; set fetch_all = yes to fetch every message on "
		    "each run (with keep = no they are deleted after "
		    "delivery)");
	if (!have_uids && pol->keep)
		log_warnx("%s: the server does not support UIDL: with "
		    "fetch_all = yes and keep = yes every message is fetched "
		    "again on each run", pol->account);
	if (have_uids) {
		/* The complete list, so the state can forget what is
		 * gone. */
		present = xmalloc((n + 1) * sizeof *present);
		for (i = 0; i < n; i++)
			present[i] = f->e[i].uid;
		k = (size_t)state_prune(f->st, folder, present, n);
		free(present);
		if (k > 0)
			log_debug("state", "%s: %s%sforgot %zu UIDs no longer "
			    "on the server", pol->account, folder,
			    folder_sep(f), k);
	}

	fresh = xmalloc((n + 1) * sizeof *fresh);
	old = xmalloc((n + 1) * sizeof *old);
	for (i = 0; i < n; i++) {
		if (have_uids && state_known(f->st, folder, f->e[i].uid)) {
			old[nold++] = i;
			continue;
		}
		if (pol->size_limit > 0 && f->e[i].size > pol->size_limit) {
			f->stats->skipped++;
			nskip++;
			log_info("%s: %s%smessage %s (%llu bytes) is over the "
			    "size limit; skipped", pol->account, folder,
			    folder_sep(f), f->e[i].uid,
			    (unsigned long long)f->e[i].size);
			continue;
		}
		fresh[nfresh++] = i;
		fresh_bytes += f->e[i].size;
	}
	log_info("%s: %s%s%zu new of %zu messages", pol->account, folder,
	    folder_sep(f), nfresh, n);

	/* Known messages still there with keep = no: an earlier run
	 * recorded them but did not get to delete them. */
	if (nold > 0 && dispose_action(pol) == PM_DISPOSE_DELETE) {
		log_info("%s: %s%sdeleting %zu messages delivered by an "
		    "earlier run", pol->account, folder, folder_sep(f), nold);
		if ((rc = dispose(f, old, nold, err)) != PM_OK)
			goto out;
	}

	f->prog.msgs = nfresh;
	f->prog.bytes = fresh_bytes;
	f->prog.msgs_done = 0;
	f->prog.bytes_done = 0;
	f->prog.start_ms = mono_ms();
	for (i = 0; i < nfresh; i += k) {
		bytes = f->e[fresh[i]].size;
		for (k = 1; i + k < nfresh && k < pol->batch_msgs; k++) {
			bytes += f->e[fresh[i + k]].size;
			if (bytes > pol->batch_bytes)
				break;
		}
		if ((rc = fetch_batch(f, fresh + i, k, err)) != PM_OK)
			goto out;
		if (i + k < nfresh && (rc = renew_due(f, err)) != PM_OK)
			goto out;
	}
	/* Save the validity and the pruned list even when nothing came. */
	rc = state_save(f->st, err);
out:
	progress_draw(f, 1);
	progress_clear(f);
	free(fresh);
	free(old);
	return rc;
}

/* After a close() that took the deletions, forget their UIDs: a later
 * message that reuses one (POP3 UIDLs may be hashes) is then new, never
 * taken for one delivered before. */
static int
forget_gone(struct pm_fetch *f, char **err)
{
	size_t i, n = 0;

	for (i = 0; i < f->ngone; i++)
		n += (size_t)state_forget(f->st, f->gone[i].folder,
		    (const char *const *)f->gone[i].uids, f->gone[i].n);
	if (n > 0)
		log_debug("state", "%s: forgot %zu deleted UIDs",
		    f->pol->account, n);
	return state_save(f->st, err);
}

/* Free the lists of deleted UIDs. */
static void
gone_free(struct pm_fetch *f)
{
	size_t i, j;

	for (i = 0; i < f->ngone; i++) {
		for (j = 0; j < f->gone[i].n; j++)
			free(f->gone[i].uids[j]);
		free(f->gone[i].uids);
	}
	free(f->gone);
	f->gone = NULL;
	f->ngone = 0;
}

/* Set up f for one account's run. */
static void
engine_init(struct pm_fetch *f, const struct fetch_policy *pol,
    const struct fetch_target *t, struct state *st,
    const struct pm_plugin *p, struct run_stats *stats)
{
	memset(f, 0, sizeof *f);
	f->pol = pol;
	f->t = t;
	f->st = st;
	f->p = p;
	f->stats = stats;
	f->folder = "";
	f->prog.on = pol->progress;
}

/* Under the state's lock, before anything else: what a killed run
 * delivered is recorded (and with keep = no deleted later). */
static int
engine_journal(struct pm_fetch *f, char **err)
{
	int rc;

	if ((rc = journal_open(f->st, f->pol->account, &f->j, err)) != PM_OK)
		return rc;
	if (f->t->on_visible != NULL)
		f->sync_shows = f->t->on_visible(f->t->ctx, engine_visible, f);
	return PM_OK;
}

/* Undo engine_journal(). */
static void
engine_unjournal(struct pm_fetch *f)
{
	if (f->sync_shows)
		f->t->on_visible(f->t->ctx, NULL, NULL);
	f->sync_shows = 0;
	journal_close(f->j);
	f->j = NULL;
}

/* Every folder of the account on the open connection f->c. */
static int
engine_folders(struct pm_fetch *f, char **err)
{
	static const char *const nofolder[] = { "" };
	const char *const *folders = nofolder;
	size_t i, nfolders = 1;
	int rc = PM_OK;

	if (f->p->flags & PM_PLUGIN_FOLDERS) {
		folders = f->pol->folders;
		nfolders = f->pol->nfolders;
	}
	for (i = 0; rc == PM_OK && i < nfolders; i++) {
		rc = fetch_folder(f, folders[i], err);
		if (rc == PM_OK && i + 1 < nfolders)
			rc = renew_due(f, err);
	}
	f->e = NULL;
	f->ne = 0;
	return rc;
}

/* The worst per-message failure, when the session itself went well. */
static int
engine_worst(struct pm_fetch *f, int rc, char **err)
{
	if (rc == PM_OK && f->worst != PM_OK) {
		rc = f->worst;
		*err = f->worst_err;
		f->worst_err = NULL;
	}
	free(f->worst_err);
	f->worst_err = NULL;
	return rc;
}

int
fetch_run(const struct fetch_policy *pol, const struct fetch_target *t,
    struct state *st, const struct pm_plugin *p, const struct pm_host *h,
    struct pm_session *s, struct run_stats *stats, char **err)
{
	struct pm_fetch f;
	char *cerr = NULL;
	int rc, crc;

	engine_init(&f, pol, t, st, p, stats);
	if ((rc = engine_journal(&f, err)) != PM_OK)
		return rc;
	if ((rc = p->open(h, s, &f.c, err)) != PM_OK)
		goto out;
	rc = engine_folders(&f, err);
	crc = p->close(f.c, &cerr);
	if (crc == PM_OK && f.ngone > 0)
		crc = forget_gone(&f, &cerr);
	if (crc != PM_OK) {
		if (rc == PM_OK) {
			rc = crc;
			*err = cerr;
			cerr = NULL;
		} else
			log_warnx("%s: %s", pol->account, cerr);
	}
	free(cerr);
	gone_free(&f);
	rc = engine_worst(&f, rc, err);
out:
	engine_unjournal(&f);
	return rc;
}

int
fetch_pass(const struct fetch_policy *pol, const struct fetch_target *t,
    struct state *st, const struct pm_plugin *p, struct pm_conn *c,
    struct run_stats *stats, char **err)
{
	struct pm_fetch f;
	int rc;

	if ((p->flags & PM_PLUGIN_DELETE_AT_CLOSE) && !pol->keep)
		return errf(err, PM_EINTERNAL, "the %s plugin deletes only "
		    "at the end of a session; fetch_pass() cannot be used",
		    p->name);
	engine_init(&f, pol, t, st, p, stats);
	f.c = c;
	if ((rc = engine_journal(&f, err)) != PM_OK)
		return rc;
	rc = engine_folders(&f, err);
	gone_free(&f);
	rc = engine_worst(&f, rc, err);
	engine_unjournal(&f);
	return rc;
}

/* The delivery stage as a fetch target. */
static int
target_begin(void *ctx, const struct deliver_info *info, void **m_r,
    char **err)
{
	return deliver_begin(ctx, info, (struct deliver_msg **)m_r, err);
}

static int
target_write(void *m, const void *buf, size_t len, char **err)
{
	return deliver_write(m, buf, len, err);
}

static int
target_finish(void *m, char **err)
{
	return deliver_finish(m, err);
}

static void
target_abort(void *m)
{
	deliver_abort(m);
}

static int
target_sync(void *ctx, char **err)
{
	return deliver_sync(ctx, err);
}

static int
target_on_visible(void *ctx, void (*visible)(void *arg, size_t nth),
    void *arg)
{
	return deliver_on_visible(ctx, visible, arg);
}

void
fetch_target_deliver(struct fetch_target *t, struct deliver *d)
{
	t->ctx = d;
	t->begin = target_begin;
	t->write = target_write;
	t->finish = target_finish;
	t->abort = target_abort;
	t->sync = target_sync;
	t->on_visible = target_on_visible;
}
