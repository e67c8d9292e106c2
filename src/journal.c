/*
 * The delivery journal (journal.h): an append-only list of the keys of
 * messages made visible since the state file last recorded them, replayed
 * into the state by the next run when a run was killed.
 *
 * Threads: no shared state.  A journal belongs to the account whose state
 * lock (state.c) its thread holds, so no two threads ever use one file.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "state.h"
#include "util.h"

#define JOURNAL_MAGIC "pullmail-journal 1"
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
/* A journal holds one batch (FETCH_BATCH_MSGS keys); anything this big
 * is not one of ours. */
#define JOURNAL_MAX ((size_t)64 << 20)

struct journal {
	char *path;
	const char *account;
	int fd;			/* -1: off for this run */
	off_t hdr_len;		/* the header's length */
	off_t len;		/* what is written: header and whole lines */
	char *mailbox;		/* of the keys added next */
	char *validity;		/* NULL: none */
	int validity_written;	/* its V line is in the journal */
};

/* This boot's id (malloc'd), or NULL when the system does not tell. */
static char *
boot_id(void)
{
	char *data;
	size_t len;

	if (read_small_file(BOOT_ID_PATH, 256, &data, &len) < 0)
		return NULL;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == ' '))
		data[--len] = '\0';
	if (len == 0 || strpbrk(data, "\t\n") != NULL) {
		free(data);
		return NULL;
	}
	return data;
}

/* Read the whole journal from its descriptor into a NUL-terminated
 * buffer; -1 + errno. */
static int
read_fd(int fd, char **data_r, size_t *len_r)
{
	struct stat sb;
	size_t len = 0;
	char *data;
	ssize_t r;

	if (fstat(fd, &sb) < 0)
		return -1;
	if ((size_t)sb.st_size > JOURNAL_MAX) {
		errno = EFBIG;
		return -1;
	}
	data = xmalloc((size_t)sb.st_size + 1);
	while (len < (size_t)sb.st_size) {
		r = pread(fd, data + len, (size_t)sb.st_size - len,
		    (off_t)len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(data);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 0;
}

/* Split a record "T\tF2\tF3" in place and decode its fields; the type, or
 * 0 when the line is malformed. */
static int
record_split(char *line, char **f2_r, char **f3_r)
{
	char *f2, *f3;

	if ((line[0] != 'V' && line[0] != 'U') || line[1] != '\t')
		return 0;
	f2 = line + 2;
	if ((f3 = strchr(f2, '\t')) == NULL)
		return 0;
	*f3++ = '\0';
	if (strchr(f3, '\t') != NULL || state_field_decode(f2) < 0 ||
	    state_field_decode(f3) < 0 || *f3 == '\0')
		return 0;
	*f2_r = f2;
	*f3_r = f3;
	return line[0];
}

/*
 * Replay the records of data (modified) into st.  *keys_r is how many keys
 * it holds, *added_r how many of them were not recorded yet; *boot_r is 1
 * when it was written under boot, and only then is anything replayed.
 */
static int
journal_replay(struct journal *j, struct state *st, const char *boot,
    char *data, size_t *keys_r, size_t *added_r, int *boot_r, char **err)
{
	static const char head[] = JOURNAL_MAGIC "\nB\t";
	char *line, *next, *f2, *f3;
	int type, lineno = 2;

	*keys_r = *added_r = 0;
	*boot_r = 0;
	if (strncmp(data, head, strlen(head)) != 0)
		return PM_OK;
	line = data + strlen(head);
	if ((next = strchr(line, '\n')) == NULL)
		return PM_OK;
	*next = '\0';
	*boot_r = boot != NULL && strcmp(line, boot) == 0;
	/* A last line without its newline was cut by the kill: its message
	 * is fetched again. */
	for (line = next + 1; (next = strchr(line, '\n')) != NULL;
	    line = next + 1) {
		*next = '\0';
		lineno++;
		type = record_split(line, &f2, &f3);
		if (type == 0)
			log_warnx("%s: %s:%d: malformed line ignored",
			    j->account, j->path, lineno);
		else if (type == 'U')
			++*keys_r;
		if (!*boot_r || type == 0)
			continue;
		if (type == 'V')
			state_validity(st, f2, f3);
		else if (!state_known(st, f2, f3)) {
			state_add(st, f2, f3);
			++*added_r;
		}
	}
	if (!*boot_r || *keys_r == 0)
		return PM_OK;
	/* Their bytes are in the page cache at least: put them on disk
	 * before the state says they are delivered. */
	sync();
	return state_save(st, err);
}

/* Write a fresh header; 0, or -1 + errno. */
static int
journal_reset(struct journal *j, const char *boot)
{
	char *hdr = xasprintf("%s\nB\t%s\n", JOURNAL_MAGIC, boot);
	size_t n = strlen(hdr);
	int r = 0;

	if (ftruncate(j->fd, 0) < 0 || write_full(j->fd, hdr, n) < 0)
		r = -1;
	free(hdr);
	if (r == 0)
		j->hdr_len = j->len = (off_t)n;
	return r;
}

/* Turn the journal off for the rest of the run after a failure to write
 * it (errno e), leaving no key in it: a journal that cannot follow the
 * engine must not vouch for anything. */
static void
journal_off(struct journal *j, const char *what, int e)
{
	log_warnx("%s: cannot %s journal %s: %s; until the next run a crash "
	    "may deliver up to a batch of messages again", j->account, what,
	    j->path, pm_strerror(e));
	if (ftruncate(j->fd, j->hdr_len) < 0)
		unlink(j->path);
	close(j->fd);
	j->fd = -1;
}

int
journal_open(struct state *st, const char *account, struct journal **j_r,
    char **err)
{
	struct journal *j = xcalloc(1, sizeof *j);
	struct stat sb;
	char *data = NULL, *boot;
	size_t len, keys, added;
	int r, same_boot, e;

	j->account = account;
	j->path = xasprintf("%s.journal", state_path(st));
	j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (j->fd < 0) {
		e = errno;
		r = errf(err, e == ENOSPC || e == EDQUOT ? PM_ETEMP :
		    PM_EDELIVER, "cannot open journal %s: %s%s", j->path,
		    pm_strerror(e), e == ELOOP ? " (a symbolic link; remove "
		    "it)" : "");
		journal_close(j);
		return r;
	}
	if (fstat(j->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		r = errf(err, PM_EDELIVER, "journal %s is not a regular file; "
		    "remove it", j->path);
		journal_close(j);
		return r;
	}
	if (read_fd(j->fd, &data, &len) < 0) {
		r = errf(err, PM_EDELIVER, "cannot read journal %s: %s; "
		    "remove it to fetch its messages again", j->path,
		    pm_strerror(errno));
		journal_close(j);
		return r;
	}
	boot = boot_id();
	if (memchr(data, '\0', len) != NULL)
		data[0] = '\0';
	r = journal_replay(j, st, boot, data, &keys, &added, &same_boot, err);
	free(data);
	if (r != PM_OK) {
		free(boot);
		journal_close(j);
		return r;
	}
	if (keys > 0 && same_boot)
		log_warnx("%s: %zu message%s delivered by an interrupted "
		    "run recorded", account, added, added == 1 ? "" : "s");
	else if (keys > 0)
		log_warnx("%s: the journal %s was written before the system "
		    "went down: its %zu messages may not have reached the "
		    "disk and are fetched again (some may be delivered "
		    "twice)", account, j->path, keys);
	if (boot == NULL) {
		/* Without a boot id a journal cannot be trusted after a
		 * reboot: run without one. */
		log_debug("state", "%s: no boot id in %s; running without a "
		    "delivery journal", account, BOOT_ID_PATH);
		if (ftruncate(j->fd, 0) < 0)
			unlink(j->path);
		close(j->fd);
		j->fd = -1;
	} else if (journal_reset(j, boot) < 0) {
		e = errno;
		j->hdr_len = 0;
		journal_off(j, "write", e);
	}
	free(boot);
	*j_r = j;
	return PM_OK;
}

void
journal_folder(struct journal *j, const char *mailbox, const char *validity)
{
	free(j->mailbox);
	free(j->validity);
	j->mailbox = state_field_encode(mailbox);
	j->validity = validity != NULL ? state_field_encode(validity) : NULL;
	j->validity_written = 0;
}

void
journal_add(struct journal *j, const char *uid)
{
	char *key, *line;
	size_t n;
	ssize_t r;
	int e;

	if (j->fd < 0 || j->mailbox == NULL)
		return;
	key = state_field_encode(uid);
	if (j->validity != NULL && !j->validity_written)
		line = xasprintf("V\t%s\t%s\nU\t%s\t%s\n", j->mailbox,
		    j->validity, j->mailbox, key);
	else
		line = xasprintf("U\t%s\t%s\n", j->mailbox, key);
	free(key);
	n = strlen(line);
	/* One write(2): a kill leaves the line whole or cut, never mixed
	 * with the next. */
	do
		r = write(j->fd, line, n);
	while (r < 0 && errno == EINTR);
	e = r < 0 ? errno : ENOSPC;
	free(line);
	if (r != (ssize_t)n) {
		journal_off(j, "write", e);
		return;
	}
	j->len += (off_t)n;
	j->validity_written = 1;
}

void
journal_clear(struct journal *j)
{
	if (j->fd < 0 || j->len == j->hdr_len)
		return;
	if (ftruncate(j->fd, j->hdr_len) < 0) {
		journal_off(j, "empty", errno);
		return;
	}
	j->len = j->hdr_len;
	j->validity_written = 0;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j->mailbox);
	free(j->validity);
	free(j);
}
