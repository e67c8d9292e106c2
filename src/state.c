/*
 * UID state: the UIDs of an account's messages that were delivered durably.
 *
 * File format, one record per line, fields separated by a tab, mailbox names
 * and UIDs percent-encoded where they hold bytes below 0x21, '%' or 0x7f:
 *
 *	pullmail-state 1
 *	V <mailbox> <validity>
 *	U <mailbox> <uid>
 *
 * The file is rewritten whole: temp file, fsync, rename, fsync of the
 * directory.  A lock file held with flock() for the life of the state keeps
 * two pullmail processes from fetching the same account at once.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

#define STATE_MAGIC "pullmail-state 1"

/* A set of strings: open addressing with linear probing. */
struct strset {
	char **slots;
	size_t cap;	/* power of two or 0 */
	size_t n;
};

struct mailbox {
	char *name;
	char *validity;		/* NULL: none recorded */
	struct strset uids;
};

struct state {
	char *path;
	char *dir;
	int lock_fd;
	struct mailbox *boxes;
	size_t nboxes;
	int dirty;
};

/* FNV-1a hash of s, for choosing a set slot. */
static uint64_t
str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Slot of s in set: where it is, or the empty slot where it would go. */
static size_t
strset_find(const struct strset *set, const char *s)
{
	size_t i = (size_t)str_hash(s) & (set->cap - 1);

	while (set->slots[i] != NULL && strcmp(set->slots[i], s) != 0)
		i = (i + 1) & (set->cap - 1);
	return i;
}

/* 1 when set holds s. */
static int
strset_has(const struct strset *set, const char *s)
{
	if (set->cap == 0)
		return 0;
	return set->slots[strset_find(set, s)] != NULL;
}

static void strset_add(struct strset *set, const char *s);

/* Double the set's capacity (64 to start) and rehash its strings. */
static void
strset_grow(struct strset *set)
{
	struct strset bigger;
	size_t i;

	bigger.cap = set->cap == 0 ? 64 : set->cap * 2;
	bigger.n = 0;
	bigger.slots = xcalloc(bigger.cap, sizeof *bigger.slots);
	for (i = 0; i < set->cap; i++) {
		if (set->slots[i] == NULL)
			continue;
		bigger.slots[strset_find(&bigger, set->slots[i])] =
		    set->slots[i];
		bigger.n++;
	}
	free(set->slots);
	*set = bigger;
}

/* Add a copy of s (no-op when present). */
static void
strset_add(struct strset *set, const char *s)
{
	size_t i;

	if ((set->n + 1) * 2 > set->cap)
		strset_grow(set);
	i = strset_find(set, s);
	if (set->slots[i] != NULL)
		return;
	set->slots[i] = xstrdup(s);
	set->n++;
}

/* Free every string of set and leave it empty. */
static void
strset_free(struct strset *set)
{
	size_t i;

	for (i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	set->slots = NULL;
	set->cap = set->n = 0;
}

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

/* Value of hex digit c, or -1. */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
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
		hi = hexval(s[1]);
		lo = hi < 0 ? -1 : hexval(s[2]);
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

/* Load the records of a state file read into data (modified in place). */
static int
state_parse(struct state *st, char *data, char **err)
{
	char *line, *next, *f1, *f2, *f3;
	int lineno = 0;
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
			if (strcmp(line, STATE_MAGIC) != 0)
				return errf(err, PM_EINTERNAL,
				    "%s: not a pullmail state file", st->path);
			continue;
		}
		f1 = line;
		f2 = strchr(f1, '\t');
		f3 = f2 == NULL ? NULL : strchr(f2 + 1, '\t');
		if (f3 == NULL || strchr(f3 + 1, '\t') != NULL ||
		    f1 + 1 != f2 || (*f1 != 'V' && *f1 != 'U'))
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
		box = box_get(st, f2, 1);
		if (*f1 == 'V') {
			free(box->validity);
			box->validity = xstrdup(f3);
		} else
			strset_add(&box->uids, f3);
	}
	return PM_OK;
}

/* Lock the account's state file exclusively and load it; missing is empty. */
int
state_open(const char *state_dir, const char *account, struct state **st_r,
    char **err)
{
	struct state *st;
	char *comp, *lockpath, *data;
	size_t len;
	int r;

	if (mkdir_p(state_dir, 0700) < 0)
		return errf(err, PM_EDELIVER, "cannot create state directory "
		    "%s: %s", state_dir, strerror(errno));
	st = xcalloc(1, sizeof *st);
	st->dir = xstrdup(state_dir);
	comp = file_component(account);
	st->path = xasprintf("%s/%s.state", state_dir, comp);
	lockpath = xasprintf("%s/%s.lock", state_dir, comp);
	free(comp);

	st->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		r = errf(err, PM_EDELIVER, "cannot open %s: %s", lockpath,
		    strerror(errno));
		free(lockpath);
		state_close(st);
		return r;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errf(err, PM_ETEMP, "another pullmail is fetching this "
		    "account (lock %s is held)", lockpath);
		free(lockpath);
		state_close(st);
		return r;
	}
	free(lockpath);

	if (read_small_file(st->path, (size_t)1 << 30, &data, &len) < 0) {
		if (errno == ENOENT) {
			*st_r = st;
			return PM_OK;
		}
		r = errf(err, PM_EDELIVER, "cannot read %s: %s", st->path,
		    strerror(errno));
		state_close(st);
		return r;
	}
	if (memchr(data, '\0', len) != NULL)
		r = errf(err, PM_EINTERNAL, "%s: contains NUL bytes (state "
		    "file damaged)", st->path);
	else
		r = state_parse(st, data, err);
	free(data);
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
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nboxes; i++) {
		free(st->boxes[i].name);
		free(st->boxes[i].validity);
		strset_free(&st->boxes[i].uids);
	}
	free(st->boxes);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
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
		strset_free(&box->uids);
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
			return strset_has(&st->boxes[i].uids, uid);
	return 0;
}

/* Record uid of mailbox as delivered, in memory until state_save(). */
void
state_add(struct state *st, const char *mailbox, const char *uid)
{
	struct mailbox *box = box_get(st, mailbox, 1);

	if (strset_has(&box->uids, uid))
		return;
	strset_add(&box->uids, uid);
	st->dirty = 1;
}

/* Forget mailbox's UIDs not in present[0..n); returns how many went. */
int
state_prune(struct state *st, const char *mailbox, const char *const *present,
    size_t n)
{
	struct mailbox *box = box_get(st, mailbox, 0);
	struct strset kept = { NULL, 0, 0 };
	size_t i, before;

	if (box == NULL || box->uids.n == 0)
		return 0;
	before = box->uids.n;
	for (i = 0; i < n; i++)
		if (strset_has(&box->uids, present[i]))
			strset_add(&kept, present[i]);
	strset_free(&box->uids);
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
	struct strset drop = { NULL, 0, 0 }, kept = { NULL, 0, 0 };
	size_t i, before;

	if (box == NULL || box->uids.n == 0 || n == 0)
		return 0;
	before = box->uids.n;
	for (i = 0; i < n; i++)
		strset_add(&drop, gone[i]);
	for (i = 0; i < box->uids.cap; i++)
		if (box->uids.slots[i] != NULL &&
		    !strset_has(&drop, box->uids.slots[i]))
			strset_add(&kept, box->uids.slots[i]);
	strset_free(&drop);
	strset_free(&box->uids);
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

	fprintf(f, "%s\n", STATE_MAGIC);
	for (i = 0; i < st->nboxes; i++) {
		const struct mailbox *box = &st->boxes[i];

		name = field_encode(box->name);
		if (box->validity != NULL) {
			val = field_encode(box->validity);
			fprintf(f, "V\t%s\t%s\n", name, val);
			free(val);
		}
		for (j = 0; j < box->uids.cap; j++) {
			if (box->uids.slots[j] == NULL)
				continue;
			val = field_encode(box->uids.slots[j]);
			fprintf(f, "U\t%s\t%s\n", name, val);
			free(val);
		}
		free(name);
	}
	return ferror(f) ? -1 : 0;
}

/* Write the state to a temp file, fsync, rename over it and fsync the
 * directory; no-op when nothing changed. */
int
state_save(struct state *st, char **err)
{
	char *tmp;
	FILE *f;
	int fd, saved, status;

	if (!st->dirty)
		return PM_OK;
	tmp = xasprintf("%s.tmpXXXXXX", st->path);
	fd = mkstemp(tmp);
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
	    strerror(saved));
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
