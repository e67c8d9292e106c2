/*
 * The fetch engine against a fake plugin and a fake target (no network, no
 * dlopen), with the real UID state in a temporary directory: every failure
 * at every step, and what ends up delivered, synced, recorded and disposed
 * of on the server; runs killed (SIGKILL, in a child) at every point of a
 * batch, and what the delivery journal lets the next run record.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver.h"
#include "fetch.h"
#include "state.h"
#include "suites.h"
#include "util.h"

/*
 * The fake server: one listing (served for every folder selected), each
 * message with a behaviour in fetch():
 *   o  sent whole              g  gone (the server sends nothing)
 *   x  refused (missing, PM_ETEMP)
 *   c  cut: begun, half sent, ended incomplete, fetch() fails PM_ETEMP
 *   p  the server breaks the protocol before it: fetch() fails PM_EPROTO
 *   l  begun and sent but never ended (a plugin bug)
 *   s  sent whole but discarded by the plugin (POP3: shorter than LIST
 *      said): ended incomplete, then missing(PM_ETEMP) with the reason
 */
static struct fake {
	const char *uids[16];
	uint64_t sizes[16];
	const char *how;	/* one behaviour per message */
	size_t n;
	int have_uids;
	const char *validity;
	unsigned flags;
	int open_rc, select_rc, list_rc, dispose_rc, close_rc;
	int begin_foreign;	/* fetch() also begins an idx not asked */

	/* the target */
	const char *fail_begin, *fail_write, *fail_finish;
	int fail_rc;		/* for fail_begin and fail_write */
	int finish_rc;		/* for fail_finish */
	int sync_rc;
	char finished[4096];	/* "mailbox/uid=body|" not yet synced */
	char durable[4096];	/* the same, synced */
	int open_msgs;
	/* sync_shows: a target like Maildir, whose sync() makes the
	 * finished messages visible one by one and reports each; else
	 * finish() makes a message visible (mbox, MDA, SMTP) */
	int sync_shows;
	char fin_keys[16][96];	/* finished, not yet synced (sync_shows) */
	size_t nfin;
	void (*visible)(void *arg, size_t nth);
	void *visible_arg;
	/* Kill the process (SIGKILL) once kill_at messages are visible:
	 * kill_late 0, before the next one becomes visible (or before the
	 * state is saved when none is left); 1, right after the kill_at-th
	 * became visible, before the engine heard of it. */
	int kill_at, kill_late;
	int nvisible;

	char log[8192];		/* events, one per line */
} F;

static void PM_PRINTF(1, 2)
ev(const char *fmt, ...)
{
	size_t n = strlen(F.log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(F.log + n, sizeof F.log - n, fmt, ap);
	va_end(ap);
	n = strlen(F.log);
	ck_assert_uint_lt(n + 1, sizeof F.log);
	F.log[n] = '\n';
	F.log[n + 1] = '\0';
}

/* A list of listing indexes as "a,b,c" of their uids. */
static void
uidlist(char *buf, size_t len, const size_t *idx, size_t n)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < n && o < len; i++)
		o += snprintf(buf + o, len - o, "%s%s", i ? "," : "",
		    F.uids[idx[i]]);
}

/* --- the fake plugin ------------------------------------------------------ */

static struct pm_entry entries[16];
static int conn_token;

static int
p_open(const struct pm_host *h, struct pm_session *s, struct pm_conn **c_r,
    char **err)
{
	(void)h;
	(void)s;
	ev("OPEN");
	if (F.open_rc != PM_OK)
		return errf(err, F.open_rc, "login refused");
	*c_r = (struct pm_conn *)&conn_token;
	return PM_OK;
}

static int
p_select(struct pm_conn *c, const char *folder, struct pm_folder *f_r,
    char **err)
{
	ck_assert_ptr_eq(c, &conn_token);
	ev("SELECT %s", folder);
	if (F.select_rc != PM_OK)
		return errf(err, F.select_rc, "SELECT failed: NO");
	f_r->validity = F.validity;
	f_r->count = F.n;
	return PM_OK;
}

static int
p_list(struct pm_conn *c, const struct pm_entry **e_r, size_t *n_r,
    int *have_uids_r, char **err)
{
	size_t i;

	(void)c;
	ev("LIST");
	if (F.list_rc != PM_OK)
		return errf(err, F.list_rc, "listing broken");
	for (i = 0; i < F.n; i++) {
		entries[i].uid = F.uids[i];
		entries[i].size = F.sizes[i];
	}
	*e_r = entries;
	*n_r = F.n;
	*have_uids_r = F.have_uids;
	return PM_OK;
}

static int
p_fetch(struct pm_conn *c, const size_t *idx, size_t n,
    const struct pm_sink *sink, struct pm_fetch *f, char **err)
{
	struct pm_msg *m;
	char buf[256], body[64];
	size_t i;
	int len;

	(void)c;
	uidlist(buf, sizeof buf, idx, n);
	ev("FETCH %s", buf);
	if (F.begin_foreign) {
		m = sink->begin(f, F.n - 1);
		sink->write(m, "foreign\r\n", 9);
		sink->end(m, 1);
	}
	for (i = 0; i < n; i++) {
		len = snprintf(body, sizeof body, "Subject: %s\r\n\r\nbody\r\n",
		    F.uids[idx[i]]);
		switch (F.how[idx[i]]) {
		case 'o':
			m = sink->begin(f, idx[i]);
			sink->write(m, body, 5);
			sink->write(m, body + 5, len - 5);
			sink->end(m, 1);
			break;
		case 'g':
			break;
		case 'x':
			sink->missing(f, idx[i], PM_ETEMP, "RETR refused");
			break;
		case 'c':
			m = sink->begin(f, idx[i]);
			sink->write(m, body, 5);
			sink->end(m, 0);
			return errf(err, PM_ETEMP, "connection cut");
		case 'p':
			return errf(err, PM_EPROTO, "broken response");
		case 'l':
			m = sink->begin(f, idx[i]);
			sink->write(m, body, len);
			break;
		case 's':
			m = sink->begin(f, idx[i]);
			sink->write(m, body, len);
			sink->end(m, 0);
			sink->missing(f, idx[i], PM_ETEMP, "shorter than LIST");
			break;
		}
	}
	return PM_OK;
}

static int
p_dispose(struct pm_conn *c, int action, const size_t *idx, size_t n,
    unsigned char *done_r, char **err)
{
	char buf[256];
	size_t i;

	(void)c;
	uidlist(buf, sizeof buf, idx, n);
	ev("DISPOSE %s %s", action == PM_DISPOSE_DELETE ? "delete" : "seen",
	    buf);
	if (F.dispose_rc != PM_OK)
		return errf(err, F.dispose_rc, "STORE failed");
	for (i = 0; i < n; i++)
		done_r[i] = 1;
	return PM_OK;
}

static int
p_close(struct pm_conn *c, char **err)
{
	ck_assert_ptr_eq(c, &conn_token);
	ev("CLOSE");
	if (F.close_rc != PM_OK)
		return errf(err, F.close_rc, "QUIT failed: -ERR");
	return PM_OK;
}

static struct pm_plugin fake_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "fake",
	.open = p_open,
	.select = p_select,
	.list = p_list,
	.fetch = p_fetch,
	.dispose = p_dispose,
	.close = p_close,
};

/* --- the fake target ------------------------------------------------------ */

/* "|mailbox/uid|..." of each message that became visible to the user, in
 * memory shared with a forked child, so it survives the child's kill. */
static char *shown;
#define SHOWN_SIZE 4096

/* Die here if the test says so (F.kill_at, F.kill_late). */
static void
maybe_kill(int late)
{
	if (F.kill_at > 0 && F.nvisible == F.kill_at && F.kill_late == late)
		raise(SIGKILL);
}

/* The message key became visible to the user. */
static void
show(const char *key)
{
	size_t n = strlen(shown);

	maybe_kill(0);
	ck_assert_uint_lt(n + strlen(key) + 1, SHOWN_SIZE);
	snprintf(shown + n, SHOWN_SIZE - n, "%s|", key);
	F.nvisible++;
	maybe_kill(1);
}

struct tmsg {
	char key[96];		/* "mailbox/uid" */
	char body[128];
	size_t len;
};

static int
t_begin(void *ctx, const struct deliver_info *info, void **m_r, char **err)
{
	struct tmsg *m;

	(void)ctx;
	ck_assert_str_eq(info->account, "acct");
	ck_assert_str_eq(info->protocol, "fake");
	if (F.fail_begin != NULL && strcmp(info->uid, F.fail_begin) == 0)
		return errf(err, F.fail_rc, "lock busy");
	m = calloc(1, sizeof *m);
	snprintf(m->key, sizeof m->key, "%s/%s", info->mailbox, info->uid);
	F.open_msgs++;
	*m_r = m;
	return PM_OK;
}

static int
t_write(void *vm, const void *buf, size_t len, char **err)
{
	struct tmsg *m = vm;

	if (F.fail_write != NULL &&
	    strcmp(strchr(m->key, '/') + 1, F.fail_write) == 0)
		return errf(err, F.fail_rc, "disk full");
	ck_assert_uint_lt(m->len + len, sizeof m->body);
	memcpy(m->body + m->len, buf, len);
	m->len += len;
	return PM_OK;
}

static int
t_finish(void *vm, char **err)
{
	struct tmsg *m = vm;
	size_t n = strlen(F.finished);
	int rc = PM_OK;

	F.open_msgs--;
	if (F.fail_finish != NULL &&
	    strcmp(strchr(m->key, '/') + 1, F.fail_finish) == 0)
		rc = errf(err, F.finish_rc, "MDA failed");
	else {
		snprintf(F.finished + n, sizeof F.finished - n, "%s=%.*s|",
		    m->key, (int)m->len, m->body);
		if (F.sync_shows)
			snprintf(F.fin_keys[F.nfin++], sizeof F.fin_keys[0],
			    "%s", m->key);
		else
			show(m->key);
	}
	free(m);
	return rc;
}

static void
t_abort(void *vm)
{
	ev("ABORT %s", ((struct tmsg *)vm)->key);
	F.open_msgs--;
	free(vm);
}

static int
t_sync(void *ctx, char **err)
{
	size_t i, n = strlen(F.durable);

	(void)ctx;
	ev("SYNC");
	if (F.sync_rc != PM_OK) {
		F.nfin = 0;
		return errf(err, F.sync_rc, "fsync failed");
	}
	snprintf(F.durable + n, sizeof F.durable - n, "%s", F.finished);
	F.finished[0] = '\0';
	for (i = 0; i < F.nfin; i++) {
		show(F.fin_keys[i]);
		ck_assert_ptr_nonnull(F.visible);
		F.visible(F.visible_arg, i);
	}
	F.nfin = 0;
	/* Everything is visible; the state is not saved yet. */
	maybe_kill(0);
	return PM_OK;
}

static int
t_on_visible(void *ctx, void (*visible)(void *arg, size_t nth), void *arg)
{
	(void)ctx;
	F.visible = visible;
	F.visible_arg = arg;
	return 1;
}

static const struct fetch_target fake_target = {
	.begin = t_begin,
	.write = t_write,
	.finish = t_finish,
	.abort = t_abort,
	.sync = t_sync,
};

/* --- running it ----------------------------------------------------------- */

static char *dir;
static const char *folders2[] = { "INBOX", "Archive" };
static struct fetch_policy pol;
static struct run_stats stats;

/* A listing of space-separated uids, each of size 100, behaving as how. */
static void
fake_reset(const char *uids, const char *how)
{
	static char copy[256];
	char *tok, *save;

	memset(&F, 0, sizeof F);
	snprintf(copy, sizeof copy, "%s", uids);
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		F.sizes[F.n] = 100;
		F.uids[F.n++] = tok;
	}
	ck_assert_uint_eq(strlen(how), F.n);
	F.how = how;
	F.have_uids = 1;
	F.validity = "7";
	F.flags = PM_PLUGIN_FOLDERS;
	memset(&pol, 0, sizeof pol);
	pol.account = "acct";
	pol.server = "mail.example";
	pol.protocol = "fake";
	pol.folders = folders2;
	pol.nfolders = 1;
	pol.keep = 0;
	pol.batch_msgs = FETCH_BATCH_MSGS;
	pol.batch_bytes = FETCH_BATCH_BYTES;
	memset(&stats, 0, sizeof stats);
}

/* The mailbox the test account's state is bound to. */
static const struct state_binding acct_binding = {
	"imap", "imap.example.org", 993, "alice"
};

/* One run of the engine; returns its status, *err_r its reason. */
static int
run(char **err_r)
{
	struct fetch_target t = fake_target;
	struct state *st;
	char *err = NULL;
	int rc;

	if (F.sync_shows)
		t.on_visible = t_on_visible;
	fake_plugin.flags = F.flags;
	ck_assert_int_eq(state_open(dir, "acct", &acct_binding, &st, &err), PM_OK);
	*err_r = NULL;
	rc = fetch_run(&pol, &t, st, &fake_plugin, NULL, NULL, &stats,
	    err_r);
	state_close(st);
	ck_assert_int_eq(F.open_msgs, 0);
	ck_assert_msg((rc == PM_OK) == (*err_r == NULL), "rc %d err %s", rc,
	    *err_r != NULL ? *err_r : "(null)");
	return rc;
}

/* 1 when the state file on disk records uid of mailbox. */
static int
recorded(const char *mailbox, const char *uid)
{
	struct state *st;
	char *err = NULL;
	int known;

	ck_assert_int_eq(state_open(dir, "acct", &acct_binding, &st, &err), PM_OK);
	known = state_known(st, mailbox, uid);
	state_close(st);
	return known;
}

/* Record uids of mailbox under validity as an earlier run would. */
static void
record(const char *mailbox, const char *validity, const char *uids)
{
	struct state *st;
	char *err = NULL, copy[256], *tok, *save;

	ck_assert_int_eq(state_open(dir, "acct", &acct_binding, &st, &err), PM_OK);
	if (validity != NULL)
		state_validity(st, mailbox, validity);
	snprintf(copy, sizeof copy, "%s", uids);
	for (tok = strtok_r(copy, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save))
		state_add(st, mailbox, tok);
	ck_assert_int_eq(state_save(st, &err), PM_OK);
	state_close(st);
}

/* Forget every run before: an empty state. */
static void
fresh_state(void)
{
	test_rm_rf(dir);
	free(dir);
	dir = test_tmpdir();
}

/* Position of needle in the event log; fails when absent. */
static size_t
at(const char *needle)
{
	const char *p = strstr(F.log, needle);

	ck_assert_msg(p != NULL, "\"%s\" not in log:\n%s", needle, F.log);
	return p - F.log;
}

static int
absent(const char *needle)
{
	return strstr(F.log, needle) == NULL;
}

static void
setup(void)
{
	dir = test_tmpdir();
	shown = mmap(NULL, SHOWN_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(shown != MAP_FAILED);
	strcpy(shown, "|");
}

static void
teardown(void)
{
	munmap(shown, SHOWN_SIZE);
	test_rm_rf(dir);
	free(dir);
}

/* Run the engine in a child that the fake target kills (F.kill_at);
 * fails when the child ends any other way. */
static void
run_killed(void)
{
	char *err;
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		run(&err);
		_exit(3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "the run was not killed (status %d)", status);
}

/* How many times key ("mailbox/uid") became visible. */
static int
times_shown(const char *key)
{
	char needle[128];
	const char *p;
	int n = 0;

	snprintf(needle, sizeof needle, "|%s|", key);
	for (p = shown; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The journal file beside the state file. */
static char *
journal_path(void)
{
	return xasprintf("%s/acct.state.journal", dir);
}

/* This machine's boot id, as the journal records it. */
static void
this_boot(char *buf, size_t len)
{
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");

	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(buf, (int)len, fp));
	fclose(fp);
	buf[strcspn(buf, "\n")] = '\0';
}

#define BODY(u) "Subject: " u "\r\n\r\nbody\r\n"

/* --- the cases ------------------------------------------------------------ */

/* New messages: fetched as one set, synced, recorded, then deleted. */
START_TEST(test_all_new_delete)
{
	char *err;

	fake_reset("5 7 9", "ooo");
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.durable, "INBOX/5=" BODY("5") "|INBOX/7="
	    BODY("7") "|INBOX/9=" BODY("9") "|");
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 5,7,9\n"
	    "SYNC\nDISPOSE delete 5,7,9\nCLOSE\n");
	ck_assert(recorded("INBOX", "5") && recorded("INBOX", "7") &&
	    recorded("INBOX", "9"));
	ck_assert_uint_eq(stats.delivered, 3);
	ck_assert_uint_eq(stats.bytes, 3 * strlen(BODY("5")));
}
END_TEST

/* keep = yes: nothing is disposed of; with mark_seen the new ones are
 * flagged, the known ones are left alone. */
START_TEST(test_keep_and_mark_seen)
{
	char *err;

	fake_reset("5 7", "oo");
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert(absent("DISPOSE"));
	ck_assert(recorded("INBOX", "5") && recorded("INBOX", "7"));

	fake_reset("5 7 9", "ooo");
	pol.keep = 1;
	pol.mark_seen = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 9\nSYNC\n"
	    "DISPOSE seen 9\nCLOSE\n");
	ck_assert_str_eq(F.durable, "INBOX/9=" BODY("9") "|");
}
END_TEST

/* Known messages with keep = no: an earlier run recorded them but did not
 * delete them; they are deleted first, undelivered. */
START_TEST(test_known_deleted_first)
{
	char *err;

	record("INBOX", "7", "5 7");
	fake_reset("5 7 9", "ooo");
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nDISPOSE delete "
	    "5,7\nFETCH 9\nSYNC\nDISPOSE delete 9\nCLOSE\n");
	ck_assert_str_eq(F.durable, "INBOX/9=" BODY("9") "|");
	ck_assert_uint_eq(stats.delivered, 1);
}
END_TEST

/* Messages over the size limit are skipped: not fetched, not recorded. */
START_TEST(test_size_limit)
{
	char *err;

	fake_reset("5 7 9", "ooo");
	F.sizes[1] = 5000;
	pol.size_limit = 4999;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 5,9\nSYNC\n"
	    "DISPOSE delete 5,9\nCLOSE\n");
	ck_assert(!recorded("INBOX", "7"));
	ck_assert_uint_eq(stats.skipped, 1);
	ck_assert_uint_eq(stats.delivered, 2);
}
END_TEST

/* Batches are bounded by count and by listed bytes; each is synced and
 * disposed of before the next is fetched. */
START_TEST(test_batches)
{
	char *err;

	fake_reset("1 2 3 4 5", "ooooo");
	pol.batch_msgs = 2;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\n"
	    "FETCH 1,2\nSYNC\nDISPOSE delete 1,2\n"
	    "FETCH 3,4\nSYNC\nDISPOSE delete 3,4\n"
	    "FETCH 5\nSYNC\nDISPOSE delete 5\nCLOSE\n");

	fresh_state();
	fake_reset("1 2 3 4 5", "ooooo");
	F.sizes[0] = 1000;
	pol.batch_bytes = 250;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\n"
	    "FETCH 1\nSYNC\nDISPOSE delete 1\n"
	    "FETCH 2,3\nSYNC\nDISPOSE delete 2,3\n"
	    "FETCH 4,5\nSYNC\nDISPOSE delete 4,5\nCLOSE\n");
}
END_TEST

/* When the token is about to expire (renew_at_ms passed), the run ends at
 * the next batch boundary after a batch of its own, closing the session,
 * with stats.renew set; the next run goes on where it stopped, nothing
 * delivered twice.  Not before a first batch, not when nothing is left. */
START_TEST(test_renew)
{
	char *err;

	fake_reset("1 2 3 4 5", "ooooo");
	pol.batch_msgs = 2;
	pol.renew_at_ms = 1;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "the access token is about to expire; the "
	    "session ends here to go on with a new one");
	free(err);
	ck_assert_int_eq(stats.renew, 1);
	ck_assert_uint_eq(stats.delivered, 2);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\n"
	    "FETCH 1,2\nSYNC\nDISPOSE delete 1,2\nCLOSE\n");
	ck_assert(recorded("INBOX", "2") && !recorded("INBOX", "3"));

	/* The next session: the rest, once; its deadline lies ahead. */
	fake_reset("3 4 5", "ooo");
	pol.batch_msgs = 2;
	pol.renew_at_ms = mono_ms() + 3600000;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_int_eq(stats.renew, 0);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\n"
	    "FETCH 3,4\nSYNC\nDISPOSE delete 3,4\n"
	    "FETCH 5\nSYNC\nDISPOSE delete 5\nCLOSE\n");
	ck_assert_str_eq(F.durable, "INBOX/3=" BODY("3") "|INBOX/4="
	    BODY("4") "|INBOX/5=" BODY("5") "|");

	/* Past the deadline with one batch: nothing is left after it. */
	fresh_state();
	fake_reset("1 2", "oo");
	pol.renew_at_ms = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_int_eq(stats.renew, 0);

	/* Between folders too, once a batch was committed. */
	fresh_state();
	fake_reset("1 2", "oo");
	pol.nfolders = 2;
	pol.renew_at_ms = 1;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	free(err);
	ck_assert_int_eq(stats.renew, 1);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 1,2\nSYNC\n"
	    "DISPOSE delete 1,2\nCLOSE\n");

	/* An empty first folder committed nothing: the second is fetched. */
	fresh_state();
	record("INBOX", "7", "1 2");
	fake_reset("1 2", "oo");
	pol.nfolders = 2;
	pol.keep = 1;
	pol.renew_at_ms = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	at("SELECT Archive");
}
END_TEST

/* A delivery failure of one message leaves it on the server while the
 * others are delivered; the worst failure is reported at the end. */
START_TEST(test_delivery_failures)
{
	char *err;

	fake_reset("1 2 3 4", "oooo");
	F.fail_write = "2";
	F.fail_finish = "3";
	F.fail_rc = PM_ETEMP;
	F.finish_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(F.durable, "INBOX/1=" BODY("1") "|INBOX/4="
	    BODY("4") "|");
	at("ABORT INBOX/2");
	at("DISPOSE delete 1,4\nCLOSE\n");
	ck_assert(recorded("INBOX", "1") && !recorded("INBOX", "2") &&
	    !recorded("INBOX", "3") && recorded("INBOX", "4"));
	ck_assert_uint_eq(stats.failed, 2);
	ck_assert_ptr_nonnull(strstr(err, "disk full"));
	free(err);

	/* A permanent failure outranks a temporary one, whatever the
	 * order. */
	fresh_state();
	fake_reset("1 2 3", "ooo");
	F.fail_begin = "1";
	F.fail_rc = PM_ETEMP;
	F.fail_finish = "3";
	F.finish_rc = PM_EDELIVER;
	ck_assert_int_eq(run(&err), PM_EDELIVER);
	ck_assert_str_eq(err, "MDA failed");
	free(err);
	fresh_state();
	fake_reset("1 2 3", "ooo");
	F.fail_finish = "1";
	F.finish_rc = PM_EDELIVER;
	F.fail_begin = "3";
	F.fail_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_EDELIVER);
	ck_assert_str_eq(err, "MDA failed");
	free(err);
	ck_assert(recorded("INBOX", "2") && !recorded("INBOX", "3"));
}
END_TEST

/* A message the server refuses counts as a failure and stays; one that is
 * gone is no failure; neither is recorded or disposed of. */
START_TEST(test_refused_and_gone)
{
	char *err;

	fake_reset("1 2 3", "gox");
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "RETR refused"));
	free(err);
	ck_assert_str_eq(F.durable, "INBOX/2=" BODY("2") "|");
	at("DISPOSE delete 2\n");
	ck_assert(!recorded("INBOX", "1") && !recorded("INBOX", "3"));

	fake_reset("1 2", "go");
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_uint_eq(stats.failed, 0);

	/* Discarded by the plugin with a reason: a failure that stays on
	 * the server, once, while the others go on. */
	fake_reset("4 5 6", "oso");
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "shorter than LIST");
	free(err);
	ck_assert_uint_eq(stats.failed, 1);
	ck_assert_str_eq(F.durable, "INBOX/4=" BODY("4") "|INBOX/6="
	    BODY("6") "|");
	at("DISPOSE delete 4,6\n");
	ck_assert(!recorded("INBOX", "5"));
}
END_TEST

/* The connection breaks in the middle of a set: what was complete is
 * synced and recorded, nothing is disposed of, the cut message is
 * dropped, the session is closed. */
START_TEST(test_cut_mid_set)
{
	char *err;

	fake_reset("1 2 3 4", "ooco");
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "connection cut");
	free(err);
	ck_assert_str_eq(F.durable, "INBOX/1=" BODY("1") "|INBOX/2="
	    BODY("2") "|");
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 1,2,3,4\n"
	    "ABORT INBOX/3\nSYNC\nCLOSE\n");
	ck_assert(recorded("INBOX", "2") && !recorded("INBOX", "3") &&
	    !recorded("INBOX", "4"));

	/* The next run fetches the rest and deletes everything. */
	fake_reset("1 2 3 4", "oooo");
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nDISPOSE delete "
	    "1,2\nFETCH 3,4\nSYNC\nDISPOSE delete 3,4\nCLOSE\n");

	/* A protocol error before anything arrived: nothing to sync. */
	fresh_state();
	fake_reset("1 2", "po");
	ck_assert_int_eq(run(&err), PM_EPROTO);
	free(err);
	ck_assert(absent("SYNC") && absent("DISPOSE"));
}
END_TEST

/* The session breaks and a delivery failed too: the session's failure is
 * what is reported. */
START_TEST(test_session_failure_outranks)
{
	char *err;

	fake_reset("1 2 3", "ooc");
	F.fail_finish = "1";
	F.finish_rc = PM_EDELIVER;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "connection cut");
	free(err);
	ck_assert(recorded("INBOX", "2") && !recorded("INBOX", "1"));
}
END_TEST

/* The sync fails: nothing is recorded, nothing disposed of. */
START_TEST(test_sync_fails)
{
	char *err;

	fake_reset("1 2", "oo");
	F.sync_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "fsync failed");
	free(err);
	ck_assert(absent("DISPOSE"));
	ck_assert(!recorded("INBOX", "1") && !recorded("INBOX", "2"));
	/* Nor does the next run take them from the journal. */
	fake_reset("1 2", "oo");
	ck_assert_int_eq(run(&err), PM_OK);
	at("FETCH 1,2\n");
	fresh_state();

	/* Also when the session broke first. */
	fake_reset("1 2", "oc");
	F.sync_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_str_eq(err, "connection cut");
	free(err);
	ck_assert(!recorded("INBOX", "1"));
}
END_TEST

/* Dispose fails: the messages stay recorded (the next run deletes
 * them), the failure is reported. */
START_TEST(test_dispose_fails)
{
	char *err;

	fake_reset("1 2", "oo");
	F.dispose_rc = PM_EPROTO;
	ck_assert_int_eq(run(&err), PM_EPROTO);
	ck_assert_str_eq(err, "STORE failed");
	free(err);
	ck_assert(recorded("INBOX", "1") && recorded("INBOX", "2"));
	at("CLOSE");
}
END_TEST

/* open, select and list failures: nothing is fetched; a failed open
 * leaves nothing to close. */
START_TEST(test_step_failures)
{
	char *err;

	fake_reset("1", "o");
	F.open_rc = PM_EAUTH;
	ck_assert_int_eq(run(&err), PM_EAUTH);
	free(err);
	ck_assert_str_eq(F.log, "OPEN\n");

	fake_reset("1", "o");
	F.select_rc = PM_EPROTO;
	ck_assert_int_eq(run(&err), PM_EPROTO);
	free(err);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nCLOSE\n");

	fake_reset("1", "o");
	F.list_rc = PM_EPROTO;
	ck_assert_int_eq(run(&err), PM_EPROTO);
	free(err);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nCLOSE\n");

	/* A close failure after a good run is reported. */
	fake_reset("1", "o");
	F.close_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	free(err);
	ck_assert(recorded("INBOX", "1"));
}
END_TEST

/* A new UIDVALIDITY drops what was recorded: everything is fetched
 * again; UIDs no longer on the server are forgotten. */
START_TEST(test_validity_and_prune)
{
	char *err;

	record("INBOX", "6", "1 2");
	fake_reset("1 2", "oo");
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	at("FETCH 1,2\n");

	record("INBOX", NULL, "99");
	ck_assert(recorded("INBOX", "99"));
	fake_reset("1 2", "oo");
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert(absent("FETCH"));
	ck_assert(!recorded("INBOX", "99") && recorded("INBOX", "1"));
}
END_TEST

/* Deletions that take effect at close (POP3): after a good close the
 * deleted UIDs are forgotten, so a new message reusing one is fetched;
 * after a failed close they stay recorded and are deleted next run. */
START_TEST(test_delete_at_close)
{
	char *err;

	fake_reset("a b", "oo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	F.validity = NULL;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT \nLIST\nFETCH a,b\nSYNC\n"
	    "DISPOSE delete a,b\nCLOSE\n");
	ck_assert_str_eq(F.durable, "/a=" BODY("a") "|/b=" BODY("b") "|");
	ck_assert(!recorded("", "a") && !recorded("", "b"));

	fake_reset("c d", "oo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	F.close_rc = PM_ETEMP;
	ck_assert_int_eq(run(&err), PM_ETEMP);
	ck_assert_ptr_nonnull(strstr(err, "QUIT failed"));
	free(err);
	ck_assert(recorded("", "c") && recorded("", "d"));

	fake_reset("c d e", "ooo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT \nLIST\nDISPOSE delete c,d\n"
	    "FETCH e\nSYNC\nDISPOSE delete e\nCLOSE\n");
	ck_assert(!recorded("", "c") && !recorded("", "e"));
}
END_TEST

/* One pass on a connection that stays open (the daemon's IDLE sessions):
 * no open, no close; a second pass after news fetches only the new
 * message; a plugin that deletes only at close is refused with keep = no. */
START_TEST(test_pass_open_connection)
{
	struct fetch_target t = fake_target;
	struct pm_conn *c = (struct pm_conn *)&conn_token;
	struct state *st;
	char *err = NULL;

	fake_reset("5 7", "oo");
	fake_plugin.flags = F.flags;
	ck_assert_int_eq(state_open(dir, "acct", &acct_binding, &st, &err),
	    PM_OK);
	ck_assert_int_eq(fetch_pass(&pol, &t, st, &fake_plugin, c, &stats,
	    &err), PM_OK);
	ck_assert_str_eq(F.log, "SELECT INBOX\nLIST\nFETCH 5,7\nSYNC\n"
	    "DISPOSE delete 5,7\n");
	state_close(st);
	ck_assert(recorded("INBOX", "5") && recorded("INBOX", "7"));

	/* News: 9 arrived, and the server still lists 7 (not expunged
	 * yet): 7 is deleted again, only 9 is fetched. */
	fake_reset("7 9", "oo");
	fake_plugin.flags = F.flags;
	ck_assert_int_eq(state_open(dir, "acct", &acct_binding, &st, &err),
	    PM_OK);
	ck_assert_int_eq(fetch_pass(&pol, &t, st, &fake_plugin, c, &stats,
	    &err), PM_OK);
	ck_assert_str_eq(F.log, "SELECT INBOX\nLIST\nDISPOSE delete 7\n"
	    "FETCH 9\nSYNC\nDISPOSE delete 9\n");
	ck_assert_str_eq(F.durable, "INBOX/9=" BODY("9") "|");

	/* A failing step is returned; the connection is the caller's. */
	fake_reset("11", "o");
	F.select_rc = PM_ETEMP;
	fake_plugin.flags = F.flags;
	ck_assert_int_eq(fetch_pass(&pol, &t, st, &fake_plugin, c, &stats,
	    &err), PM_ETEMP);
	ck_assert(absent("CLOSE"));
	free(err);
	err = NULL;

	fake_reset("a", "o");
	fake_plugin.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	ck_assert_int_eq(fetch_pass(&pol, &t, st, &fake_plugin, c, &stats,
	    &err), PM_EINTERNAL);
	ck_assert_str_eq(F.log, "");
	free(err);
	state_close(st);
}
END_TEST

/* Without stable UIDs: refused unless fetch_all; then everything is
 * fetched, and the state is neither pruned nor given the made-up keys. */
START_TEST(test_no_uids)
{
	char *err;

	record("", NULL, "old");
	fake_reset("n1 n2", "oo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	F.have_uids = 0;
	ck_assert_int_eq(run(&err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "fetch_all"));
	free(err);
	ck_assert(absent("FETCH"));

	fake_reset("n1 n2", "oo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	F.have_uids = 0;
	pol.fetch_all = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	at("FETCH n1,n2\nSYNC\nDISPOSE delete n1,n2\n");
	ck_assert(recorded("", "old"));

	fake_reset("n1 n2", "oo");
	F.flags = PM_PLUGIN_DELETE_AT_CLOSE;
	F.have_uids = 0;
	pol.fetch_all = 1;
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_uint_eq(stats.delivered, 2);
	ck_assert(!recorded("", "n1") && recorded("", "old"));
}
END_TEST

/* A plugin that leaves a message open or begins one not asked for: the
 * first is dropped as incomplete, the second never delivered. */
START_TEST(test_plugin_bugs)
{
	char *err;

	fake_reset("1 2", "lo");
	ck_assert_int_eq(run(&err), PM_OK);
	at("ABORT INBOX/1");
	ck_assert(!recorded("INBOX", "1") && recorded("INBOX", "2"));

	fresh_state();
	fake_reset("1 2 3", "ooo");
	F.begin_foreign = 1;
	pol.size_limit = 200;
	F.sizes[2] = 500;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.durable, "INBOX/1=" BODY("1") "|INBOX/2="
	    BODY("2") "|");
	ck_assert(!recorded("INBOX", "3"));
}
END_TEST

/* Several folders: each selected and listed; the state is per folder. */
START_TEST(test_folders)
{
	char *err;

	record("INBOX", "7", "1");
	fake_reset("1 2", "oo");
	pol.nfolders = 2;
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT INBOX\nLIST\nFETCH 2\nSYNC\n"
	    "SELECT Archive\nLIST\nFETCH 1,2\nSYNC\nCLOSE\n");
	ck_assert(recorded("Archive", "1") && recorded("INBOX", "2"));

	/* A failure in the first folder stops the run before the second. */
	fake_reset("3", "p");
	pol.nfolders = 2;
	ck_assert_int_eq(run(&err), PM_EPROTO);
	free(err);
	ck_assert(absent("SELECT Archive"));
}
END_TEST

/* "a,b,..." of the uids from..to (1-based, inclusive) of "1 2 3 4". */
static const char *
span(char *buf, size_t len, int from, int to)
{
	size_t o = 0;
	int i;

	buf[0] = '\0';
	for (i = from; i <= to && o < len; i++)
		o += snprintf(buf + o, len - o, "%s%d", i > from ? "," : "", i);
	return buf;
}

/*
 * A run killed once k of the batch's four messages became visible, for
 * every k, just before the next one would become visible and right after
 * the k-th did (before the engine heard of it): the next run records the
 * journalled ones before it even logs in, deletes them undelivered (keep
 * = no), and fetches only the rest.  A message is delivered twice only
 * when the kill fell between it becoming visible and its journal line.
 */
static void
kill_cases(int sync_shows)
{
	char want[512], a[64], b[64], key[16], *err;
	int k, late, i, journalled;

	for (k = 1; k <= 4; k++)
		for (late = 0; late <= 1; late++) {
			fresh_state();
			strcpy(shown, "|");
			fake_reset("1 2 3 4", "oooo");
			F.sync_shows = sync_shows;
			F.kill_at = k;
			F.kill_late = late;
			run_killed();
			journalled = k - late;

			fake_reset("1 2 3 4", "oooo");
			F.sync_shows = sync_shows;
			F.open_rc = PM_ETEMP;
			ck_assert_int_eq(run(&err), PM_ETEMP);
			free(err);
			for (i = 1; i <= 4; i++) {
				snprintf(key, sizeof key, "%d", i);
				ck_assert_msg(recorded("INBOX", key) ==
				    (i <= journalled), "k %d late %d: uid %d "
				    "%srecorded", k, late, i,
				    i <= journalled ? "not " : "");
			}

			fake_reset("1 2 3 4", "oooo");
			F.sync_shows = sync_shows;
			ck_assert_int_eq(run(&err), PM_OK);
			snprintf(want, sizeof want, "OPEN\nSELECT INBOX\nLIST\n"
			    "%s%s%s%s%s%s%s%sCLOSE\n",
			    journalled > 0 ? "DISPOSE delete " : "",
			    span(a, sizeof a, 1, journalled),
			    journalled > 0 ? "\n" : "",
			    journalled < 4 ? "FETCH " : "",
			    span(b, sizeof b, journalled + 1, 4),
			    journalled < 4 ? "\nSYNC\nDISPOSE delete " : "",
			    journalled < 4 ? b : "",
			    journalled < 4 ? "\n" : "");
			ck_assert_msg(strcmp(F.log, want) == 0, "k %d late %d: "
			    "log\n%swanted\n%s", k, late, F.log, want);
			for (i = 1; i <= 4; i++) {
				snprintf(key, sizeof key, "INBOX/%d", i);
				ck_assert_int_eq(times_shown(key),
				    late && i == k ? 2 : 1);
			}
		}
}

/* Killed with a target whose finish() makes a message visible (mbox,
 * MDA, SMTP, LMTP). */
START_TEST(test_killed_finish_shows)
{
	kill_cases(0);
}
END_TEST

/* Killed with a target whose sync() makes the messages visible one by
 * one (Maildir's renames into new/). */
START_TEST(test_killed_sync_shows)
{
	kill_cases(1);
}
END_TEST

/* A journal left under another boot is discarded: the machine went down,
 * its messages may not have reached the disk and are fetched again. */
START_TEST(test_journal_other_boot)
{
	char *err, *path = journal_path(), *data;
	size_t len;

	free(test_write_file(dir, "acct.state.journal", "pullmail-journal 1\n"
	    "B\t00000000-0000-0000-0000-000000000000\nV\tINBOX\t7\n"
	    "U\tINBOX\t1\nU\tINBOX\t2\n", 0600));
	fake_reset("1 2", "oo");
	pol.keep = 1;
	ck_assert_int_eq(run(&err), PM_OK);
	at("FETCH 1,2\n");
	ck_assert_int_eq(read_small_file(path, 4096, &data, &len), 0);
	ck_assert_ptr_null(strstr(data, "U\t"));
	free(data);
	free(path);
}
END_TEST

/* A journal line cut by the kill (no newline) is ignored: that message is
 * fetched again; the whole lines before it are recorded, their fields
 * decoded as in the state file. */
START_TEST(test_journal_torn_line)
{
	static const char *box[] = { "My Box" };
	char boot[64], *text, *err;

	this_boot(boot, sizeof boot);
	text = xasprintf("pullmail-journal 1\nB\t%s\nV\tMy%%20Box\t7\n"
	    "U\tMy%%20Box\t1\nU\tMy%%20Box\t2", boot);
	free(test_write_file(dir, "acct.state.journal", text, 0600));
	free(text);
	fake_reset("1 2", "oo");
	pol.folders = box;
	ck_assert_int_eq(run(&err), PM_OK);
	ck_assert_str_eq(F.log, "OPEN\nSELECT My Box\nLIST\nDISPOSE delete "
	    "1\nFETCH 2\nSYNC\nDISPOSE delete 2\nCLOSE\n");
	ck_assert(recorded("My Box", "1") && recorded("My Box", "2"));
}
END_TEST

Suite *
suite_fetch(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("engine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_all_new_delete);
	tcase_add_test(tc, test_keep_and_mark_seen);
	tcase_add_test(tc, test_known_deleted_first);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_batches);
	tcase_add_test(tc, test_renew);
	tcase_add_test(tc, test_delivery_failures);
	tcase_add_test(tc, test_refused_and_gone);
	tcase_add_test(tc, test_cut_mid_set);
	tcase_add_test(tc, test_session_failure_outranks);
	tcase_add_test(tc, test_sync_fails);
	tcase_add_test(tc, test_dispose_fails);
	tcase_add_test(tc, test_step_failures);
	tcase_add_test(tc, test_validity_and_prune);
	tcase_add_test(tc, test_delete_at_close);
	tcase_add_test(tc, test_no_uids);
	tcase_add_test(tc, test_plugin_bugs);
	tcase_add_test(tc, test_folders);
	tcase_add_test(tc, test_pass_open_connection);
	tcase_add_test(tc, test_killed_finish_shows);
	tcase_add_test(tc, test_killed_sync_shows);
	tcase_add_test(tc, test_journal_other_boot);
	tcase_add_test(tc, test_journal_torn_line);
	suite_add_tcase(s, tc);
	return s;
}
