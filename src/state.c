/*
 * UID state: the UIDs of an account's messages that were delivered durably.
 *
 * File format, one record per line, fields separated by a tab, values
 * percent-encoded where they hold bytes below 0x21, '%' or 0x7f:
 *
 *	pullmail-state 2
 *	B protocol <imap|pop3>
 *	B server <host name as configured, lower-cased>
 *	B port <port>
 *	B user <login name>
 *	V <mailbox> <validity>
 *	U <mailbox> <uid>
 *
 * The B records bind the UIDs to the mailbox they were read from: a UIDL,
 * or a UID under one UIDVALIDITY, says nothing about another server's or
 * another user's messages, and taking it for "delivered" there would have
 * them deleted undelivered (keep = no).  A file bound to anything else is
 * set aside at the first save (renamed NAME.state.replaced-STAMP, never
 * over an earlier one) and the state starts empty.  A version 1 file (no
 * B records, from before the binding) is adopted: bound to the account as
 * it is now, with a notice, since that is the only way to upgrade without
 * fetching every kept message again.
 *
 * The file is rewritten whole: a new temp file (O_EXCL, O_NOFOLLOW), fsync,
 * rename, fsync of the directory.  The state and lock files are opened with
 * O_NOFOLLOW and must be regular files of the running user, in a directory
 * others cannot write to (or a sticky one).  A lock file held with flock()
 * for the life of the state keeps two pullmail processes from fetching the
 * same account at once.
 *
 * Threads: no shared state.  The flock also keeps two threads of one
 * process apart: each state_open opens the lock file itself, and flock
 * locks of separate open file descriptions conflict even within a
 * process.  Only the holder writes the state and its temp file.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "state.h"
#include "util.h"

#define STATE_MAGIC_PREFIX "pullmail-state "
#define STATE_VERSION 2

/* The binding's fields, in file order. */
enum { B_PROTOCOL, B_SERVER, B_PORT, B_USER, B__COUNT };
static const char *const bind_names[B__COUNT] = {
	"protocol", "server", "port", "user"
};

struct mailbox {
	char *name;
	char *validity;		/* NULL: none recorded */
	struct strmap uids;	/* a set: values unused */
};

struct state {
	char *account;		/* for log lines */
	char *path;
	char *dir;
	int lock_fd;
	char *bind[B__COUNT];	/* the account's binding, as written */
	char *aside;		/* keep the file read under this name at the
				 * next save; NULL: nothing to keep */
	struct mailbox *boxes;
	size_t nboxes;
	int dirty;
};

/* The record of mailbox name; added empty when create is set, else NULL. */
static struct mailbox *
box_get(struct state *st, const char *name, int create)
{
	size_t i;

	for (i = 0; i < st->nboxes; i++)
		if (strcmp(st->boxes[i].name, name) == 0)
			return &st->boxes[i];
	if (!create)
		return NULL;
	st->boxes = xrealloc(st->boxes, (st->nboxes + 1) * sizeof *st->boxes);
	memset(&st->boxes[st->nboxes], 0, sizeof *st->boxes);
	st->boxes[st->nboxes].name = xstrdup(name);
	return &st->boxes[st->nboxes++];
}

/* 1 when c must be percent-encoded in a state file field. */
static int
needs_escape(unsigned char c)
{
	return c <= 0x20 || c == '%' || c == 0x7f;
}

/* Percent-encode s into a malloc'd string. */
static char *
field_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (needs_escape(c)) {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

/* Decode in place; -1 on a malformed escape or an encoded NUL. */
static int
field_decode(char *s)
{
	char *o = s;
	int hi, lo;

	while (*s != '\0') {
		if (*s != '%') {
			*o++ = *s++;
			continue;
		}
		hi = hex_value((unsigned char)s[1]);
		lo = hi < 0 ? -1 : hex_value((unsigned char)s[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		*o++ = (char)(hi * 16 + lo);
		s += 3;
	}
	*o = '\0';
	return 0;
}

/* Account names become file names: keep [A-Za-z0-9._@+-], encode the rest,
 * and never start with a dot. */
static char *
file_component(const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(name) * 3 + 1), *o = out;
	const char *s;

	for (s = name; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '@' ||
		    c == '+' || c == '-' || (c == '.' && s != name))
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Load the records of a state file read into data (modified in place):
 * mailboxes into st, the binding's values (malloc'd) into found.  A file of
 * version 1 has no binding. */
static int
state_parse(struct state *st, char *data, char *found[B__COUNT], char **err)
{
	char *line, *next, *f1, *f2, *f3;
	int lineno = 0, version = 0, i;
	struct mailbox *box;

	for (line = data; line != NULL && *line != '\0'; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next == NULL)
			return errf(err, PM_EINTERNAL,
			    "%s:%d: truncated line (state file damaged; "
			    "move it away to fetch everything again)",
			    st->path, lineno);
		*next++ = '\0';
		if (lineno == 1) {
			if (strncmp(line, STATE_MAGIC_PREFIX,
			    strlen(STATE_MAGIC_PREFIX)) != 0)
				return errf(err, PM_EINTERNAL,
				    "%s: not a pullmail state file", st->path);
			line += strlen(STATE_MAGIC_PREFIX);
			if (strcmp(line, "1") == 0 || strcmp(line, "2") == 0)
				version = *line - '0';
			else
				return errf(err, PM_EINTERNAL, "%s: state file "
				    "format \"%.20s\" is not one this pullmail "
				    "reads (1 or %d); a newer pullmail wrote "
				    "it?", st->path, line, STATE_VERSION);
			continue;
		}
		f1 = line;
		f2 = strchr(f1, '\t');
		f3 = f2 == NULL ? NULL : strchr(f2 + 1, '\t');
		if (f3 == NULL || strchr(f3 + 1, '\t') != NULL ||
		    f1 + 1 != f2 || (*f1 != 'V' && *f1 != 'U' &&
		    (*f1 != 'B' || version < 2)))
			return errf(err, PM_EINTERNAL,
			    "%s:%d: malformed record (state file damaged)",
			    st->path, lineno);
		*f2++ = '\0';
		*f3++ = '\0';
		if (field_decode(f2) < 0 || field_decode(f3) < 0 ||
		    *f3 == '\0')
			return errf(err, PM_EINTERNAL,
			    "%s:%d: malformed field (state file damaged)",
			    st->path, lineno);
		if (*f1 == 'B') {
			for (i = 0; i < B__COUNT; i++)
				if (strcmp(f2, bind_names[i]) == 0)
					break;
			if (i == B__COUNT || found[i] != NULL)
				return errf(err, PM_EINTERNAL,
				    "%s:%d: malformed record (state file "
				    "damaged)", st->path, lineno);
			found[i] = xstrdup(f3);
			continue;
		}
		box = box_get(st, f2, 1);
		if (*f1 == 'V') {
			free(box->validity);
			box->validity = xstrdup(f3);
		} else
			strmap_put(&box->uids, f3, NULL);
	}
	for (i = 0; version >= 2 && i < B__COUNT; i++)
		if (found[i] == NULL)
			return errf(err, PM_EINTERNAL, "%s: no %s record "
			    "(state file damaged)", st->path, bind_names[i]);
	return PM_OK;
}

/* The binding's values as the file holds them; malloc'd into out. */
static void
binding_values(const struct state_binding *b, char *out[B__COUNT])
{
	char *p;

	out[B_PROTOCOL] = xstrdup(b->protocol);
	out[B_SERVER] = xstrdup(b->server);
	out[B_PORT] = xasprintf("%u", b->port);
	out[B_USER] = xstrdup(b->user);
	for (p = out[B_PROTOCOL]; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (p = out[B_SERVER]; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

/* "imap user alice at host port 993" for a log line, values encoded so
 * that no control byte reaches the log; malloc'd. */
static char *
binding_describe(char *const v[B__COUNT])
{
	char *e[B__COUNT], *out;
	int i;

	for (i = 0; i < B__COUNT; i++)
		e[i] = field_encode(v[i]);
	out = xasprintf("%s user %s at %s port %s", e[B_PROTOCOL], e[B_USER],
	    e[B_SERVER], e[B_PORT]);
	for (i = 0; i < B__COUNT; i++)
		free(e[i]);
	return out;
}

/* A name to keep a replaced state file under that no file has yet:
 * PATH.replaced-YYYYMMDDTHHMMSS (UTC), then with -2, -3, ...  malloc'd. */
static char *
aside_name(const char *path)
{
	struct stat sb;
	struct tm tm;
	time_t now = time(NULL);
	char stamp[32], *name;
	unsigned n;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm) == 0)
		snprintf(stamp, sizeof stamp, "%lld", (long long)now);
	name = xasprintf("%s.replaced-%s", path, stamp);
	for (n = 2; lstat(name, &sb) == 0; n++) {
		free(name);
		name = xasprintf("%s.replaced-%s-%u", path, stamp, n);
	}
	return name;
}

/* Free st's mailboxes. */
static void
boxes_free(struct state *st)
{
	size_t i;

	for (i = 0; i < st->nboxes; i++) {
		free(st->boxes[i].name);
		free(st->boxes[i].validity);
		strmap_free(&st->boxes[i].uids);
	}
	free(st->boxes);
	st->boxes = NULL;
	st->nboxes = 0;
}

/* Apply the binding read from the file (found) to st, bound to the account
 * as it is now: adopt a version 1 file, set aside one bound elsewhere. */
static void
state_bind(struct state *st, char *found[B__COUNT])
{
	char changed[64], *was, *now;
	int i, j, n = 0, idx[B__COUNT];

	if (found[0] == NULL) {		/* version 1: no binding */
		now = binding_describe(st->bind);
		log_warnx("%s: the state file %s does not say which server it "
		    "was recorded for (an older pullmail wrote it); it is "
		    "now bound to %s.  If the account named another server "
		    "or user when the file was written, move it away: its "
		    "UIDs would hide this mailbox's messages", st->account,
		    st->path, now);
		free(now);
		st->dirty = 1;
		return;
	}
	for (i = 0; i < B__COUNT; i++)
		if (strcmp(found[i], st->bind[i]) != 0)
			idx[n++] = i;
	if (n == 0)
		return;
	changed[0] = '\0';
	for (j = 0; j < n; j++)
		snprintf(changed + strlen(changed),
		    sizeof changed - strlen(changed), "%s%s",
		    j == 0 ? "" : j == n - 1 ? " and " : ", ",
		    bind_names[idx[j]]);
	st->aside = aside_name(st->path);
	was = binding_describe(found);
	now = binding_describe(st->bind);
	log_warnx("%s: %s changed: the state file %s was recorded for %s, "
	    "the account now fetches as %s.  Its UIDs say nothing about "
	    "this mailbox, so every message there counts as new; the old "
	    "file is kept as %s", st->account, changed, st->path, was, now,
	    st->aside);
	free(was);
	free(now);
	boxes_free(st);
	st->dirty = 1;
}

/* Check that fd (opened as path) is a regular file of this user. */
static int
check_own_file(int fd, const char *path, char **err)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return errf(err, PM_EDELIVER, "cannot stat %s: %s", path,
		    pm_strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return errf(err, PM_EDELIVER, "%s is not a regular file; "
		    "remove it (pullmail creates its state files itself)",
		    path);
	if (sb.st_uid != geteuid())
		return errf(err, PM_EDELIVER, "%s belongs to uid %lu, not to "
		    "this user (uid %lu); remove it or fix its owner", path,
		    (unsigned long)sb.st_uid, (unsigned long)geteuid());
	return PM_OK;
}

/* The error for a failed open of a state or lock file. */
static int
open_error(const char *path, int errnum, char **err)
{
	if (errnum == ELOOP || errnum == EMLINK)
		return errf(err, PM_EDELIVER, "%s is a symbolic link; "
		    "refusing to follow it (remove it: pullmail creates its "
		    "state files itself)", path);
	return errf(err, PM_EDELIVER, "cannot open %s: %s", path,
	    pm_strerror(errnum));
}

/* Refuse a state directory that others can write to (unless sticky):
 * they could swap the state file for one that lists every UID. */
static int
check_dir(const char *dir, char **err)
{
	struct stat sb;

	if (stat(dir, &sb) < 0)
		return errf(err, PM_EDELIVER, "cannot stat state directory "
		    "%s: %s", dir, pm_strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return errf(err, PM_EDELIVER, "state directory %s is not a "
		    "directory", dir);
	if ((sb.st_mode & S_IWOTH) != 0 && (sb.st_mode & S_ISVTX) == 0)
		return errf(err, PM_EDELIVER, "state directory %s is "
		    "writable by every user; run chmod o-w on it", dir);
	return PM_OK;
}

/*
 * Remove the temp files "<state file>.tmpXXXXXXXXXXXX" a killed run left
 * in dir (tmp_create()'s names).  Only under the account's lock: no live
 * pullmail writes one then.
 */
static void
remove_stale_tmp(const char *dir, const char *path)
{
	const char *base = strrchr(path, '/') + 1;
	size_t n = strlen(base), i;
	struct dirent *de;
	DIR *d;
	int dfd;

	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, n) != 0 ||
		    strncmp(de->d_name + n, ".tmp", 4) != 0 ||
		    strlen(de->d_name + n + 4) != 12)
			continue;
		for (i = 0; i < 12; i++)
			if (strchr("0123456789abcdef",
			    de->d_name[n + 4 + i]) == NULL)
				break;
		if (i == 12 && unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_debug("state", "removed %s/%s, left by an "
			    "interrupted run",
			    dir, de->d_name);
	}
	closedir(d);
}

/* Lock the account's state file exclusively and load it; missing is empty.
 * A file bound to another protocol, server, port or user is not loaded. */
int
state_open(const char *state_dir, const char *account,
    const struct state_binding *b, struct state **st_r, char **err)
{
	struct state *st;
	char *comp, *lockpath, *data, *found[B__COUNT] = { NULL };
	size_t len;
	int fd, i, r;

	*st_r = NULL;
	if (mkdir_p(state_dir, 0700) < 0)
		return errf(err, PM_EDELIVER, "cannot create state directory "
		    "%s: %s", state_dir, pm_strerror(errno));
	if ((r = check_dir(state_dir, err)) != PM_OK)
		return r;
	st = xcalloc(1, sizeof *st);
	st->account = xstrdup(account);
	st->dir = xstrdup(state_dir);
	binding_values(b, st->bind);
	comp = file_component(account);
	st->path = xasprintf("%s/%s.state", state_dir, comp);
	lockpath = xasprintf("%s/%s.lock", state_dir, comp);
	free(comp);

	st->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0600);
	if (st->lock_fd < 0)
		r = open_error(lockpath, errno, err);
	else
		r = check_own_file(st->lock_fd, lockpath, err);
	if (r == PM_OK && flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0)
		r = errf(err, PM_ETEMP, "another pullmail is fetching this "
		    "account (lock %s is held)", lockpath);
	free(lockpath);
	if (r != PM_OK) {
		state_close(st);
		return r;
	}
	remove_stale_tmp(state_dir, st->path);

	fd = open(st->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		*st_r = st;
		return PM_OK;
	}
	if (fd < 0)
		r = open_error(st->path, errno, err);
	else if ((r = check_own_file(fd, st->path, err)) == PM_OK &&
	    read_small_fd(fd, (size_t)1 << 30, &data, &len) < 0)
		r = errf(err, PM_EDELIVER, "cannot read %s: %s", st->path,
		    pm_strerror(errno));
	if (fd >= 0)
		close(fd);
	if (r != PM_OK) {
		state_close(st);
		return r;
	}
	if (memchr(data, '\0', len) != NULL)
		r = errf(err, PM_EINTERNAL, "%s: contains NUL bytes (state "
		    "file damaged)", st->path);
	else
		r = state_parse(st, data, found, err);
	free(data);
	if (r == PM_OK)
		state_bind(st, found);
	for (i = 0; i < B__COUNT; i++)
		free(found[i]);
	if (r != PM_OK) {
		state_close(st);
		return r;
	}
	*st_r = st;
	return PM_OK;
}

/* Free st and release its lock; NULL is fine. */
void
state_close(struct state *st)
{
	int i;

	if (st == NULL)
		return;
	boxes_free(st);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	for (i = 0; i < B__COUNT; i++)
		free(st->bind[i]);
	free(st->aside);
	free(st->account);
	free(st->path);
	free(st->dir);
	free(st);
}

/* Record mailbox's UIDVALIDITY; 1 when it changed and its UIDs went. */
int
state_validity(struct state *st, const char *mailbox, const char *validity)
{
	struct mailbox *box = box_get(st, mailbox, 1);
	int changed = 0;

	if (validity == NULL) {
		if (box->validity == NULL)
			return 0;
		changed = 1;
	} else if (box->validity != NULL &&
	    strcmp(box->validity, validity) == 0)
		return 0;
	else if (box->validity != NULL)
		changed = 1;
	if (changed)
		strmap_free(&box->uids);
	free(box->validity);
	box->validity = validity == NULL ? NULL : xstrdup(validity);
	st->dirty = 1;
	return changed;
}

/* 1 when uid of mailbox is recorded as delivered. */
int
state_known(const struct state *st, const char *mailbox, const char *uid)
{
	size_t i;

	for (i = 0; i < st->nboxes; i++)
		if (strcmp(st->boxes[i].name, mailbox) == 0)
			return strmap_get(&st->boxes[i].uids, uid) != NULL;
	return 0;
}

/* Record uid of mailbox as delivered, in memory until state_save(). */
void
state_add(struct state *st, const char *mailbox, const char *uid)
{
	struct mailbox *box = box_get(st, mailbox, 1);

	if (strmap_get(&box->uids, uid) != NULL)
		return;
	strmap_put(&box->uids, uid, NULL);
	st->dirty = 1;
}

/* Forget mailbox's UIDs not in present[0..n); returns how many went. */
int
state_prune(struct state *st, const char *mailbox, const char *const *present,
    size_t n)
{
	struct mailbox *box = box_get(st, mailbox, 0);
	struct strmap kept = { NULL, 0, 0 };
	size_t i, before;

	if (box == NULL || box->uids.n == 0)
		return 0;
	before = box->uids.n;
	for (i = 0; i < n; i++)
		if (strmap_get(&box->uids, present[i]) != NULL)
			strmap_put(&kept, present[i], NULL);
	strmap_free(&box->uids);
	box->uids = kept;
	if (kept.n != before)
		st->dirty = 1;
	return (int)(before - kept.n);
}

/* Forget the UIDs gone[0..n) of mailbox; returns how many went. */
int
state_forget(struct state *st, const char *mailbox, const char *const *gone,
    size_t n)
{
	struct mailbox *box = box_get(st, mailbox, 0);
	struct strmap drop = { NULL, 0, 0 }, kept = { NULL, 0, 0 };
	size_t i, before;

	if (box == NULL || box->uids.n == 0 || n == 0)
		return 0;
	before = box->uids.n;
	for (i = 0; i < n; i++)
		strmap_put(&drop, gone[i], NULL);
	for (i = 0; i < box->uids.cap; i++)
		if (box->uids.slots[i].key != NULL &&
		    strmap_get(&drop, box->uids.slots[i].key) == NULL)
			strmap_put(&kept, box->uids.slots[i].key, NULL);
	strmap_free(&drop);
	strmap_free(&box->uids);
	box->uids = kept;
	if (kept.n != before)
		st->dirty = 1;
	return (int)(before - kept.n);
}

/* Write every record to f; -1 on a write error. */
static int
state_write(const struct state *st, FILE *f)
{
	size_t i, j;
	char *name, *val;

	fprintf(f, "%s%d\n", STATE_MAGIC_PREFIX, STATE_VERSION);
	for (i = 0; i < B__COUNT; i++) {
		val = field_encode(st->bind[i]);
		fprintf(f, "B\t%s\t%s\n", bind_names[i], val);
		free(val);
	}
	for (i = 0; i < st->nboxes; i++) {
		const struct mailbox *box = &st->boxes[i];

		name = field_encode(box->name);
		if (box->validity != NULL) {
			val = field_encode(box->validity);
			fprintf(f, "V\t%s\t%s\n", name, val);
			free(val);
		}
		for (j = 0; j < box->uids.cap; j++) {
			if (box->uids.slots[j].key == NULL)
				continue;
			val = field_encode(box->uids.slots[j].key);
			fprintf(f, "U\t%s\t%s\n", name, val);
			free(val);
		}
		free(name);
	}
	return ferror(f) ? -1 : 0;
}

/* Create a new temp file beside path (O_EXCL, never through a link) and
 * return its descriptor, its name in *tmp_r; -1 + errno. */
static int
tmp_create(const char *path, char **tmp_r)
{
	unsigned char rnd[6];
	unsigned tries;
	int fd, saved;

	for (tries = 0; tries < 100; tries++) {
		if (crypto_random(rnd, sizeof rnd) < 0) {
			errno = EIO;
			return -1;
		}
		*tmp_r = xasprintf("%s.tmp%02x%02x%02x%02x%02x%02x", path,
		    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = open(*tmp_r, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		saved = errno;
		free(*tmp_r);
		*tmp_r = NULL;
		if (saved != EEXIST) {
			errno = saved;
			return -1;
		}
	}
	errno = EEXIST;
	return -1;
}

/* Keep the file bound to another account's mailbox under st->aside before
 * the first save replaces it; never over an existing file. */
static int
keep_aside(struct state *st, char **err)
{
	char *name;

	while (link(st->path, st->aside) < 0) {
		if (errno == ENOENT)
			break;		/* gone meanwhile: nothing to keep */
		if (errno != EEXIST) {
			/* No hard links on this file system: move it (the
			 * name was free when chosen, the directory is not
			 * others'). */
			if (rename(st->path, st->aside) == 0)
				break;
			return errf(err, PM_EDELIVER, "cannot keep the "
			    "replaced state file %s as %s: %s", st->path,
			    st->aside, pm_strerror(errno));
		}
		name = aside_name(st->path);
		log_warnx("%s: %s was taken meanwhile; the old state file is "
		    "kept as %s instead", st->account, st->aside, name);
		free(st->aside);
		st->aside = name;
	}
	free(st->aside);
	st->aside = NULL;
	return PM_OK;
}

/* Write the state to a temp file, fsync, rename over it and fsync the
 * directory; no-op when nothing changed. */
int
state_save(struct state *st, char **err)
{
	char *tmp = NULL;
	FILE *f;
	int fd, saved, status, r;

	if (!st->dirty)
		return PM_OK;
	if (st->aside != NULL && (r = keep_aside(st, err)) != PM_OK)
		return r;
	fd = tmp_create(st->path, &tmp);
	if (fd < 0) {
		saved = errno;
		goto fail_noclose;
	}
	if (fchmod(fd, 0600) < 0) {
		saved = errno;
		close(fd);
		goto fail;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		saved = errno;
		close(fd);
		goto fail;
	}
	if (state_write(st, f) < 0 || fflush(f) != 0 || fsync(fd) < 0) {
		saved = errno;
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		saved = errno;
		goto fail;
	}
	if (rename(tmp, st->path) < 0) {
		saved = errno;
		goto fail;
	}
	if (fsync_dir(st->dir) < 0) {
		saved = errno;
		free(tmp);
		goto fail_noclose_nounlink;
	}
	free(tmp);
	st->dirty = 0;
	return PM_OK;

fail:
	unlink(tmp);
fail_noclose:
	free(tmp);
fail_noclose_nounlink:
	status = (saved == ENOSPC || saved == EDQUOT) ? PM_ETEMP : PM_EDELIVER;
	return errf(err, status, "cannot write state file %s: %s", st->path,
	    pm_strerror(saved));
}

/* The state file's path, for the files kept beside it (journal.c). */
const char *
state_path(const struct state *st)
{
	return st->path;
}

/* The state file's escaping of a field, for the journal. */
char *
state_field_encode(const char *s)
{
	return field_encode(s);
}

int
state_field_decode(char *s)
{
	return field_decode(s);
}
