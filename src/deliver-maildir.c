/*
 * Maildir delivery: each message is written to tmp/ under a unique name
 * and closed when finished.  sync() makes the batch durable in two steps:
 * first the data of every finished file (one syncfs() of the file system
 * for a batch of several, an fsync() each for one or two), then the files
 * are renamed into new/ and new/ is fsync'd once.  A message is thus never
 * in new/ before its bytes are on disk, and one batch costs two flushes
 * instead of one per message.  Finished files that no sync covered are
 * removed from tmp/ at close: they were not recorded and will be fetched
 * again.  A rename is what shows a message to the user, so sync() reports
 * each one as it happens (on_visible) for the engine's delivery journal.
 *
 * Nothing is reached through a symbolic link: the Maildir's tmp/, new/
 * and cur/ are opened with O_NOFOLLOW, and so is the Maildir itself when
 * pullmail runs as root (the directories above it may be links, as those
 * above an mbox may; a user's own ~/Maildir link is followed for that
 * user, who could write behind it anyway), and the files are
 * created, synced and renamed relative to the descriptors of tmp/ and
 * new/, so a directory swapped for a link after the start cannot divert
 * a message, which matters when run as root.
 *
 * Early write-back: a batch can hold 64 MB, and its syncfs() would write
 * all of it while the fetch waits.  So every MAILDIR_EARLY_BYTES written
 * since the last hint, a background thread (one per process) calls
 * syncfs() on its own, and the disk works while the fetch goes on; the
 * batch's own syncfs() then has little left to write.  The hint changes
 * nothing about what sync() guarantees: that still flushes after the
 * last file is finished and before anything is renamed.
 *
 * Threads: a struct maildir belongs to one thread.  Shared between threads
 * are the early write-back request (under early_mu) and maildir_seq, the
 * counter in every file name, taken with an atomic increment: two threads
 * of one process delivering into one Maildir in the same microsecond still
 * never pick the same name (a repeated name would make the rename into
 * new/ replace a message).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deliver-int.h"
#include "util.h"

struct maildir_msg {
	int fd;			/* open while being written; then -1 */
	char *tmp;		/* path in tmp/ */
	char *name;		/* base name */
};

struct maildir {
	char *path;
	int tmpfd, newfd;	/* tmp/ and new/, opened without links */
	char *host;		/* host name part of file names, escaped */
	struct maildir_msg **done;	/* finished, not yet synced */
	size_t ndone;
	void (*visible)(void *arg, size_t nth);	/* see on_visible() */
	void *visible_arg;
	uint64_t unhinted;	/* bytes written since the last early hint */
};

/* The Q part of file names, unique within the process (see the top). */
static atomic_ulong maildir_seq;

/* From this many files on, one syncfs() beats an fsync() each. */
#define MAILDIR_SYNCFS_MIN 3

/* Bytes written between two early write-back hints (see the top). */
#define MAILDIR_EARLY_BYTES ((uint64_t)8 << 20)

#ifdef HAVE_SYNCFS
/* The early write-back thread: a descriptor on the file system to sync
 * (-1: nothing asked), taken by the thread, which closes it. */
static pthread_mutex_t early_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t early_cv = PTHREAD_COND_INITIALIZER;
static int early_fd = -1;
static int early_started;

static void *
early_thread(void *arg)
{
	int fd;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&early_mu);
		while (early_fd < 0)
			pthread_cond_wait(&early_cv, &early_mu);
		fd = early_fd;
		early_fd = -1;
		pthread_mutex_unlock(&early_mu);
		/* Only a hint: an error shows again in sync()'s own call. */
		(void)syncfs(fd);
		close(fd);
	}
	return NULL;
}

/* Ask for a background syncfs() of the file system of dirfd.  A hint
 * already waiting covers this one; failing to start the thread only
 * leaves the work to sync(). */
static void
early_hint(int dirfd)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int fd;

	pthread_mutex_lock(&early_mu);
	if (!early_started) {
		/* With every signal blocked: the thread never runs a
		 * handler. */
		early_started = -1;
		sigfillset(&all);
		if (pthread_attr_init(&attr) == 0) {
			pthread_attr_setdetachstate(&attr,
			    PTHREAD_CREATE_DETACHED);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			if (pthread_create(&t, &attr, early_thread,
			    NULL) == 0)
				early_started = 1;
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			pthread_attr_destroy(&attr);
		}
	}
	if (early_started == 1 && early_fd < 0 &&
	    (fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		early_fd = fd;
		pthread_cond_signal(&early_cv);
	}
	pthread_mutex_unlock(&early_mu);
}
#endif

/* A delivery error: running out of space is temporary, the rest final. */
static int
write_error(char **err, const char *what, const char *path, int e)
{
	int status = (e == ENOSPC || e == EDQUOT || e == EFBIG) ?
	    PM_ETEMP : PM_EDELIVER;

	return errf(err, status, "maildir: %s %s: %s", what, path,
	    pm_strerror(e));
}

/* The host name with '/' and ':' escaped as the Maildir convention says. */
static char *
maildir_hostname(void)
{
	char host[256], *out, *o;
	const char *s;

	if (gethostname(host, sizeof host) < 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	out = xmalloc(strlen(host) * 4 + 1);
	for (s = host, o = out; *s != '\0'; s++) {
		if (*s == '/') {
			memcpy(o, "\\057", 4);
			o += 4;
		} else if (*s == ':') {
			memcpy(o, "\\072", 4);
			o += 4;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return out;
}

/*
 * Open the directory name (shown as path) under at, following a symbolic
 * link only when nofollow is 0 (else O_NOFOLLOW); *fd_r is its descriptor.
 */
static int
open_dir_flags(int at, const char *name, const char *path, int nofollow,
    int *fd_r, char **err)
{
	struct stat st;
	int e;

	*fd_r = openat(at, name, O_RDONLY | O_DIRECTORY | nofollow |
	    O_CLOEXEC);
	if (*fd_r >= 0)
		return PM_OK;
	e = errno;
	if (nofollow && fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return errf(err, PM_EDELIVER, "maildir: %s is a symbolic "
		    "link; refusing to deliver through it (name the "
		    "directory itself in deliver)", path);
	return write_error(err, "cannot open", path, e);
}

/*
 * Open the directory name (shown as path) under at without following a
 * symbolic link; *fd_r is its descriptor.
 */
static int
open_dir(int at, const char *name, const char *path, int *fd_r, char **err)
{
	return open_dir_flags(at, name, path, O_NOFOLLOW, fd_r, err);
}

/* maildir: create the Maildir and its tmp/new/cur if missing and open
 * them without following links; keep tmp/ and new/ open. */
static int
maildir_open(const struct deliver_config *cfg, void **ctx_r, char **err)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	const char *arg = cfg->target;
	struct maildir *md;
	int dfd, fd[3], r = PM_OK, made = 0;
	size_t i, n = 0;
	char *p;

	if (arg == NULL || *arg == '\0')
		return errf(err, PM_ECONFIG, "maildir: no path given");
	if (mkdir_p(arg, 0700) < 0)
		return write_error(err, "cannot create", arg, errno);
	if ((r = open_dir_flags(AT_FDCWD, arg, arg,
	    geteuid() == 0 ? O_NOFOLLOW : 0, &dfd, err)) != PM_OK)
		return r;
	/* Whatever is missing is made first, then one fsync() makes the
	 * new entries durable. */
	for (i = 0; i < sizeof sub / sizeof sub[0] && r == PM_OK; i++) {
		if (mkdirat(dfd, sub[i], 0700) == 0)
			made = 1;
		else if (errno != EEXIST) {
			p = xasprintf("%s/%s", arg, sub[i]);
			r = write_error(err, "cannot create", p, errno);
			free(p);
		}
	}
	if (r == PM_OK && made && fsync(dfd) < 0)
		r = write_error(err, "cannot fsync", arg, errno);
	for (n = 0; n < sizeof sub / sizeof sub[0] && r == PM_OK; n++) {
		p = xasprintf("%s/%s", arg, sub[n]);
		r = open_dir(dfd, sub[n], p, &fd[n], err);
		free(p);
		if (r != PM_OK)
			break;
	}
	close(dfd);
	if (r != PM_OK) {
		for (i = 0; i < n; i++)
			close(fd[i]);
		return r;
	}
	close(fd[2]);	/* cur/: only checked */
	md = xcalloc(1, sizeof *md);
	md->path = xstrdup(arg);
	md->host = maildir_hostname();
	md->tmpfd = fd[0];
	md->newfd = fd[1];
	*ctx_r = md;
	return PM_OK;
}

/* maildir: create a uniquely named file in tmp/ for the message. */
static int
maildir_begin(void *ctx, const struct deliver_info *info, void **m_r,
    char **err)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm;
	struct timeval tv;
	int tries;

	mm = xcalloc(1, sizeof *mm);
	for (tries = 0; tries < 10; tries++) {
		gettimeofday(&tv, NULL);
		free(mm->name);
		free(mm->tmp);
		mm->name = xasprintf("%lld.M%06ldP%ldQ%lu.%s",
		    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
		    atomic_fetch_add(&maildir_seq, 1) + 1, md->host);
		mm->tmp = xasprintf("%s/tmp/%s", md->path, mm->name);
		mm->fd = openat(md->tmpfd, mm->name, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (mm->fd >= 0 || errno != EEXIST)
			break;
	}
	if (mm->fd < 0) {
		int r = write_error(err, "cannot create", mm->tmp, errno);

		free(mm->name);
		free(mm->tmp);
		free(mm);
		return r;
	}
	*m_r = mm;
	return PM_OK;
}

/* maildir: append the bytes to the message's file in tmp/. */
static int
maildir_write(void *ctx, void *m, const void *buf, size_t len, char **err)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm = m;

	if (write_full(mm->fd, buf, len) < 0)
		return write_error(err, "cannot write", mm->tmp, errno);
#ifdef HAVE_SYNCFS
	md->unhinted += len;
	if (md->unhinted >= MAILDIR_EARLY_BYTES) {
		md->unhinted = 0;
		early_hint(md->tmpfd);
	}
#else
	(void)md;
#endif
	return PM_OK;
}

/* maildir: close and unlink the file in tmp/ and free m. */
static void
maildir_abort(void *ctx, void *m)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm = m;

	if (mm->fd >= 0)
		close(mm->fd);
	unlinkat(md->tmpfd, mm->name, 0);
	free(mm->tmp);
	free(mm->name);
	free(mm);
}

/* maildir: close the file; it waits in tmp/ for the next sync. */
static int
maildir_finish(void *ctx, void *m, char **err)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm = m;
	int r, e;

	if (close(mm->fd) < 0) {
		e = errno;
		mm->fd = -1;
		r = write_error(err, "cannot close", mm->tmp, e);
		maildir_abort(ctx, m);
		return r;
	}
	mm->fd = -1;
	md->done = xrealloc(md->done, (md->ndone + 1) * sizeof *md->done);
	md->done[md->ndone++] = mm;
	return PM_OK;
}

/* Remove the finished files no sync covered from tmp/. */
static void
maildir_drop_done(struct maildir *md)
{
	size_t i;

	for (i = 0; i < md->ndone; i++)
		maildir_abort(md, md->done[i]);
	md->ndone = 0;
}

/* Flush the data of the finished files to disk. */
static int
maildir_flush_data(struct maildir *md, char **err)
{
	size_t i;
	int fd, r, e;

#ifdef HAVE_SYNCFS
	if (md->ndone >= MAILDIR_SYNCFS_MIN) {
		if (syncfs(md->tmpfd) < 0)
			return write_error(err, "cannot sync the file system "
			    "of", md->path, errno);
		return PM_OK;
	}
#endif
	for (i = 0; i < md->ndone; i++) {
		fd = openat(md->tmpfd, md->done[i]->name, O_RDONLY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return write_error(err, "cannot open", md->done[i]->tmp,
			    errno);
		r = fsync(fd);
		e = errno;
		close(fd);
		if (r < 0)
			return write_error(err, "cannot fsync",
			    md->done[i]->tmp, e);
	}
	return PM_OK;
}

/* maildir: make the finished files durable, move them into new/ and make
 * that durable too. */
static int
maildir_sync(void *ctx, char **err)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm;
	char *dir, *dst;
	size_t i;
	int r, e;

	if (md->ndone == 0)
		return PM_OK;
	if ((r = maildir_flush_data(md, err)) != PM_OK) {
		maildir_drop_done(md);
		return r;
	}
	for (i = 0; i < md->ndone; i++) {
		mm = md->done[i];
		if (renameat(md->tmpfd, mm->name, md->newfd, mm->name) < 0) {
			e = errno;
			dst = xasprintf("%s/new/%s", md->path, mm->name);
			r = write_error(err, "cannot move message to", dst, e);
			free(dst);
			break;
		}
		if (md->visible != NULL)
			md->visible(md->visible_arg, i);
		free(mm->tmp);
		free(mm->name);
		free(mm);
	}
	/* What did not move stays in tmp/ no longer. */
	memmove(md->done, md->done + i, (md->ndone - i) * sizeof *md->done);
	md->ndone -= i;
	maildir_drop_done(md);
	if (i > 0 && fsync(md->newfd) < 0 && r == PM_OK) {
		e = errno;
		dir = xasprintf("%s/new", md->path);
		r = write_error(err, "cannot fsync", dir, e);
		free(dir);
	}
	return r;
}

/* maildir: report each message sync() moves into new/. */
static void
maildir_on_visible(void *ctx, void (*visible)(void *arg, size_t nth),
    void *arg)
{
	struct maildir *md = ctx;

	md->visible = visible;
	md->visible_arg = arg;
}

/* maildir: free the target's state. */
static void
maildir_close(void *ctx)
{
	struct maildir *md = ctx;

	maildir_drop_done(md);
	close(md->tmpfd);
	close(md->newfd);
	free(md->done);
	free(md->path);
	free(md->host);
	free(md);
}

const struct deliver_ops deliver_maildir_ops = {
	.name = "maildir",
	.open = maildir_open,
	.begin = maildir_begin,
	.write = maildir_write,
	.finish = maildir_finish,
	.abort = maildir_abort,
	.sync = maildir_sync,
	.on_visible = maildir_on_visible,
	.close = maildir_close,
};
