/*
 * Maildir delivery: each message is written to tmp/ under a unique name,
 * fsync'd and renamed into new/ when finished; sync() fsyncs new/ so the
 * renames of every finished message are durable.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "util.h"

struct maildir {
	char *path;
	char *host;		/* host name part of file names, escaped */
	unsigned long seq;
	int dirty;		/* renamed into new/ since the last sync */
};

struct maildir_msg {
	int fd;
	char *tmp;		/* path in tmp/ */
	char *name;		/* base name */
};

/* A delivery error: running out of space is temporary, the rest final. */
static int
write_error(char **err, const char *what, const char *path, int e)
{
	int status = (e == ENOSPC || e == EDQUOT || e == EFBIG) ?
	    PM_ETEMP : PM_EDELIVER;

	return errf(err, status, "maildir: %s %s: %s", what, path,
	    strerror(e));
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

/* maildir: create tmp/new/cur under the path if missing. */
static int
maildir_open(const struct account *a, void **ctx_r, char **err)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	const char *arg = a->deliver_path;
	struct maildir *md;
	char *p;
	size_t i;

	if (arg == NULL || *arg == '\0')
		return errf(err, PM_ECONFIG, "maildir: no path given");
	for (i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		p = xasprintf("%s/%s", arg, sub[i]);
		if (mkdir_p(p, 0700) < 0) {
			int r = write_error(err, "cannot create", p, errno);

			free(p);
			return r;
		}
		free(p);
	}
	md = xcalloc(1, sizeof *md);
	md->path = xstrdup(arg);
	md->host = maildir_hostname();
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
		    ++md->seq, md->host);
		mm->tmp = xasprintf("%s/tmp/%s", md->path, mm->name);
		mm->fd = open(mm->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
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
	struct maildir_msg *mm = m;

	if (write_full(mm->fd, buf, len) < 0)
		return write_error(err, "cannot write", mm->tmp, errno);
	return PM_OK;
}

/* maildir: close and unlink the file in tmp/ and free m. */
static void
maildir_abort(void *ctx, void *m)
{
	struct maildir_msg *mm = m;

	if (mm->fd >= 0)
		close(mm->fd);
	unlink(mm->tmp);
	free(mm->tmp);
	free(mm->name);
	free(mm);
}

/* maildir: fsync and close the file, then rename it into new/. */
static int
maildir_finish(void *ctx, void *m, char **err)
{
	struct maildir *md = ctx;
	struct maildir_msg *mm = m;
	char *dst;
	int r, e;

	if (fsync(mm->fd) < 0) {
		e = errno;
		r = write_error(err, "cannot fsync", mm->tmp, e);
		maildir_abort(ctx, m);
		return r;
	}
	if (close(mm->fd) < 0) {
		e = errno;
		mm->fd = -1;
		r = write_error(err, "cannot close", mm->tmp, e);
		maildir_abort(ctx, m);
		return r;
	}
	mm->fd = -1;
	dst = xasprintf("%s/new/%s", md->path, mm->name);
	if (rename(mm->tmp, dst) < 0) {
		e = errno;
		r = write_error(err, "cannot move message to", dst, e);
		free(dst);
		maildir_abort(ctx, m);
		return r;
	}
	free(dst);
	md->dirty = 1;
	free(mm->tmp);
	free(mm->name);
	free(mm);
	return PM_OK;
}

/* maildir: fsync new/ so the renames since the last sync are durable. */
static int
maildir_sync(void *ctx, char **err)
{
	struct maildir *md = ctx;
	char *dir;
	int r = PM_OK;

	if (!md->dirty)
		return PM_OK;
	dir = xasprintf("%s/new", md->path);
	if (fsync_dir(dir) < 0)
		r = write_error(err, "cannot fsync", dir, errno);
	else
		md->dirty = 0;
	free(dir);
	return r;
}

/* maildir: free the target's state. */
static void
maildir_close(void *ctx)
{
	struct maildir *md = ctx;

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
	.close = maildir_close,
};
