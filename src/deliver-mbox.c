/*
 * mbox delivery (mboxrd): each message is appended under a dotlock and an
 * fcntl lock (the pair procmail, mutt and Dovecot use), behind a
 * "From sender date" line, with every line matching ^>*From  quoted by one
 * more '>', and followed by a blank line.  On any failure the file is cut
 * back to its size before the message, so no half message is ever left
 * behind; when pullmail is killed instead, its dotlock tells the next run
 * where that message began, and that run cuts it away (see lock_judge()
 * and mbox_repair()).
 *
 * Durability is grouped: finish() writes the whole message out and lets go
 * of the locks, and sync() makes every message finished since the last
 * sync durable with one fsync of the file.  The locks are taken and
 * released per message, not held from the first message to the sync: a
 * batch lasts as long as the server takes to send it, and other programs
 * give up on a lock held that long or break it as stale (Dovecot after two
 * minutes without a change of the dotlock, procmail after 17 minutes, our
 * own dotlock() after five), and mutt and procmail would be kept waiting.
 * Releasing early is safe: the message is complete in the file before the
 * lock goes (readers see it whole, other writers append after it), an
 * fsync() of the file makes all of it durable whoever wrote the bytes
 * after ours, and the caller counts nothing as delivered before sync()
 * returns, so a crash in between only means fetching the batch again.
 *
 * The file is never reached through a symbolic link, nor appended to
 * when it has other hard links or belongs to another user (see
 * mbox_check()): run as root (the system unit), a link planted where the
 * mbox is expected would otherwise make us append mail text to any file.
 *
 * The file stays open from the first message to close(), so sync()
 * fsyncs the very file the messages went into, and no second descriptor
 * is ever closed while a message holds the fcntl lock (closing any
 * descriptor of a file drops all of the process's fcntl locks on it).
 *
 * Threads: a struct mbox and its messages belong to one thread, but two
 * threads (two accounts) may deliver into the same file.  Neither lock
 * tells them apart: the dotlock names the process, and the fcntl locks of
 * a process never conflict with each other.  So every append first takes
 * the file's gate, an in-process lock (gates, guarded by gates_lock) keyed
 * by the directory's device and inode and the file's name, and lets go of
 * it after both other locks; a second thread waits there for the first,
 * within the same lock timeout.  Where the kernel has them, the fcntl lock
 * is an open file description lock (F_OFD_SETLK), which another thread
 * closing its own descriptor of the file cannot drop.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver-int.h"
#include "log.h"
#include "util.h"

#define MBOX_BUF 65536
#define MBOX_STALE_LOCK 300	/* seconds: older dotlocks are stale */
#define MBOX_LOCK_POLL_MS 100

static const char from_[] = "From ";

struct mbox {
	char *path;
	char *lockpath;
	char *dir;		/* the directory holding the mbox */
	unsigned lock_timeout;
	uid_t uid;		/* who must own the file (see mbox_owner()) */
	gid_t gid;
	char *owner;		/* that user, for messages */
	char host[256];		/* this host's name for the dotlock, or "" */
	int broken;		/* a lock timed out: fail fast from now on */
	char *broken_err;

	int fd;			/* the mbox, open from the first begin(); or -1 */
	int locked;		/* we hold the fcntl lock on fd */
	int setlk;		/* F_OFD_SETLK, or F_SETLK where there is none */
	unsigned unsynced;	/* messages finished since the last sync */
	int dirsync;		/* the file may be new: fsync its directory */
	int sync_status;	/* an fsync failed (PM_OK: none did) ... */
	char *sync_err;		/* ... and why: nothing counts from then on */
};

/* What a dotlock of ours says about the append it guards (see dotlock()). */
struct lock_append {
	int valid;		/* the lock named its mbox and offset */
	long pid;		/* the pullmail process that wrote it */
	unsigned long long dev, ino;	/* the mbox */
	long long offset;	/* its size before the message */
};

/* The in-process lock of one mbox file (see the top of the file). */
struct mbox_gate {
	struct mbox_gate *next;
	dev_t		 dev;		/* the directory holding the file */
	ino_t		 ino;
	char		*name;		/* the file's name in it */
	unsigned	 users;		/* threads holding or awaiting it */
	int		 held;
	pthread_cond_t	 free;		/* signalled when let go */
};

static pthread_mutex_t gates_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mbox_gate *gates;

struct mbox_msg {
	struct mbox_gate *gate;	/* held from begin to finish or abort */
	int dotlocked;
	int lockfd;		/* our dotlock, open while dotlocked */
	struct lock_append repair;	/* left by a dead pullmail: check it */
	off_t orig;		/* size before this message */
	int bol;		/* at the start of a line */
	size_t gt;		/* '>' held back at the start of the line */
	size_t fm;		/* bytes of "From " matched after them */
	char last;		/* last byte written of the message */
	size_t len;
	char buf[MBOX_BUF];
};

/* A delivery error: running out of space is temporary, the rest final. */
static int
mbox_error(char **err, const char *what, const char *path, int e)
{
	int status = (e == ENOSPC || e == EDQUOT || e == EFBIG) ?
	    PM_ETEMP : PM_EDELIVER;

	return errf(err, status, "mbox: %s %s: %s", what, path, pm_strerror(e));
}

/* Sleep for ms milliseconds, resuming after signals. */
static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The gate of mb's file, made when missing; gates_lock held. */
static struct mbox_gate *
gate_find(const struct mbox *mb)
{
	struct mbox_gate *g;
	struct stat st;
	const char *name = strrchr(mb->path, '/');

	/* Without the directory (it may not exist yet) the path is the key. */
	if (stat(mb->dir, &st) < 0) {
		st.st_dev = 0;
		st.st_ino = 0;
		name = mb->path;
	} else
		name = name != NULL ? name + 1 : mb->path;
	for (g = gates; g != NULL; g = g->next)
		if (g->dev == st.st_dev && g->ino == st.st_ino &&
		    strcmp(g->name, name) == 0)
			return g;
	g = xcalloc(1, sizeof *g);
	g->dev = st.st_dev;
	g->ino = st.st_ino;
	g->name = xstrdup(name);
	pthread_cond_init(&g->free, NULL);
	g->next = gates;
	gates = g;
	return g;
}

/* Drop a gate no thread uses any more; gates_lock held. */
static void
gate_forget(struct mbox_gate *g)
{
	struct mbox_gate **pp;

	if (g->users > 0)
		return;
	for (pp = &gates; *pp != g; pp = &(*pp)->next)
		;
	*pp = g->next;
	pthread_cond_destroy(&g->free);
	free(g->name);
	free(g);
}

/* Take the gate of mb's file before deadline (see the top of the file). */
static int
gate_enter(struct mbox *mb, struct mbox_msg *mm, long long deadline,
    char **err)
{
	struct mbox_gate *g;
	struct timespec ts;
	long long left;

	pthread_mutex_lock(&gates_lock);
	g = gate_find(mb);
	g->users++;
	while (g->held) {
		if ((left = deadline - mono_ms()) <= 0) {
			g->users--;
			gate_forget(g);
			pthread_mutex_unlock(&gates_lock);
			return errf(err, PM_ETEMP, "mbox: cannot lock %s "
			    "within %u seconds: another account of this "
			    "pullmail is appending to it", mb->path,
			    mb->lock_timeout);
		}
		/* The condition runs on the real-time clock: wait in short
		 * steps so that a clock change costs at most one. */
		clock_gettime(CLOCK_REALTIME, &ts);
		if (left > MBOX_LOCK_POLL_MS)
			left = MBOX_LOCK_POLL_MS;
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		ts.tv_sec += (time_t)(left / 1000) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		(void)pthread_cond_timedwait(&g->free, &gates_lock, &ts);
	}
	g->held = 1;
	pthread_mutex_unlock(&gates_lock);
	mm->gate = g;
	return PM_OK;
}

/* Let go of the gate mm holds, if any. */
static void
gate_leave(struct mbox_msg *mm)
{
	struct mbox_gate *g = mm->gate;

	if (g == NULL)
		return;
	pthread_mutex_lock(&gates_lock);
	g->held = 0;
	g->users--;
	pthread_cond_signal(&g->free);
	gate_forget(g);
	pthread_mutex_unlock(&gates_lock);
	mm->gate = NULL;
}

/*
 * Who must own the mbox: the user running pullmail; when that is root,
 * the local user named by recipient (root when recipient is not set or is
 * no local user name).  This is the rule of mail.local and procmail, which
 * append only to a mailbox owned by the user the mail is for: root
 * appending to a file owned by someone else, and above all to a root-owned
 * file reached through a directory someone swapped, would let the sender
 * of a message write into that file.  A file pullmail creates as root is
 * given to that user.
 */
static void
mbox_owner(struct mbox *mb, const struct deliver_config *cfg)
{
	struct passwd pwbuf, *pw = NULL;
	char buf[4096];

	mb->uid = geteuid();
	mb->gid = getegid();
	if (mb->uid == 0 && cfg->recipient != NULL &&
	    getpwnam_r(cfg->recipient, &pwbuf, buf, sizeof buf, &pw) == 0 &&
	    pw != NULL) {
		mb->uid = pw->pw_uid;
		mb->gid = pw->pw_gid;
		mb->owner = xasprintf("%s (uid %lu, the recipient)",
		    cfg->recipient, (unsigned long)mb->uid);
	} else if (mb->uid == 0)
		mb->owner = xstrdup("root (uid 0; set recipient to a local "
		    "user to deliver into that user's mbox)");
	else
		mb->owner = xasprintf("the user running pullmail (uid %lu)",
		    (unsigned long)mb->uid);
}

/*
 * The dotlock PATH.lock says who holds it: "pullmail PID HOST\n", and once
 * the holder has locked the mbox and learnt its size, a second line
 * "append DEV INO OFFSET\n" (the mbox's device and inode, its size before
 * the message).  A SIGKILL, an OOM kill or a crash of pullmail leaves the
 * lock behind with no one to remove it.  The next run sees from the first
 * line that its holder is gone (same host, kill(pid, 0) fails with ESRCH)
 * and takes the lock at once instead of waiting the five minutes after
 * which any dotlock counts as stale (the rule kept for the locks of other
 * programs and other hosts, whose holders we cannot ask).  The second
 * line tells it that the dead run may have left part of a message after
 * OFFSET: it is cut away before the next message (see mbox_repair()).
 */

/* Fill mb->host with this host's name, blanks and control bytes replaced
 * so that it stays one word; "" when there is none (then no lock of ours
 * is ever judged by its PID). */
static void
lock_hostname(struct mbox *mb)
{
	char *p;

	if (gethostname(mb->host, sizeof mb->host) < 0)
		mb->host[0] = '\0';
	mb->host[sizeof mb->host - 1] = '\0';
	for (p = mb->host; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 127 ||
		    *p == '/')
			*p = '?';
}

/*
 * Remove the files a killed pullmail of this host left on its way to the
 * dotlock (see lock_create()): PATH.lock.HOST.PID whose process no longer
 * exists, or older than a stale lock.  A live process keeps its file for
 * a few system calls only.
 */
static void
lock_clean(struct mbox *mb)
{
	const char *base = strrchr(mb->lockpath, '/');
	struct dirent *de;
	struct stat st;
	char *prefix, *end, *path;
	size_t plen;
	long pid;
	DIR *d;

	if (mb->host[0] == '\0' || (d = opendir(mb->dir)) == NULL)
		return;
	prefix = xasprintf("%s.%s.", base != NULL ? base + 1 : mb->lockpath,
	    mb->host);
	plen = strlen(prefix);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0 ||
		    de->d_name[plen] < '1' || de->d_name[plen] > '9')
			continue;
		errno = 0;
		pid = strtol(de->d_name + plen, &end, 10);
		if (errno != 0 || *end != '\0' || pid == (long)getpid())
			continue;
		path = xasprintf("%s/%s", mb->dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    ((kill((pid_t)pid, 0) < 0 && errno == ESRCH) ||
		    time(NULL) - st.st_mtime > MBOX_STALE_LOCK) &&
		    unlink(path) == 0)
			log_debug("deliver", "mbox: removed %s, left by a "
			    "pullmail that died", path);
		free(path);
	}
	closedir(d);
	free(prefix);
}

/* mbox: note the path, its dotlock and directory; nothing is opened yet. */
static int
mbox_open(const struct deliver_config *cfg, void **ctx_r, char **err)
{
	struct mbox *mb;
	char *slash;

	if (cfg->target == NULL || *cfg->target == '\0')
		return errf(err, PM_ECONFIG, "mbox: no path given");
	/* A file size limit must fail the write (EFBIG), not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	mb = xcalloc(1, sizeof *mb);
	mb->path = xstrdup(cfg->target);
	mb->lockpath = xasprintf("%s.lock", cfg->target);
	mb->dir = xstrdup(cfg->target);
	if ((slash = strrchr(mb->dir, '/')) == NULL)
		strcpy(mb->dir, ".");
	else if (slash == mb->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	mb->lock_timeout = cfg->lock_timeout;
#ifdef F_OFD_SETLK
	mb->setlk = F_OFD_SETLK;
#else
	mb->setlk = F_SETLK;
#endif
	mbox_owner(mb, cfg);
	lock_hostname(mb);
	lock_clean(mb);
	mb->fd = -1;
	*ctx_r = mb;
	return PM_OK;
}

/* Parse a decimal number ending at a blank or a newline; 0 on success. */
static int
lock_number(const char **p, unsigned long long *n_r)
{
	char *end;

	if (**p < '0' || **p > '9')
		return -1;
	errno = 0;
	*n_r = strtoull(*p, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\n'))
		return -1;
	*p = end;
	return 0;
}

/*
 * Parse the text of a dotlock.  1 when it is ours ("pullmail PID HOST"),
 * with *pid_r and host_r (of hostlen bytes) set and *app_r filled when a
 * complete "append" line follows; 0 for anything else (another program's
 * lock, or ours cut short).
 */
static int
lock_parse(const char *text, long *pid_r, char *host_r, size_t hostlen,
    struct lock_append *app_r)
{
	const char *p = text, *h;
	unsigned long long pid, dev, ino, off;

	memset(app_r, 0, sizeof *app_r);
	if (strncmp(p, "pullmail ", 9) != 0)
		return 0;
	p += 9;
	if (lock_number(&p, &pid) < 0 || *p++ != ' ' || pid < 2 ||
	    pid > (unsigned long long)LONG_MAX)
		return 0;
	h = p;
	p += strcspn(p, " \n");
	if (*p != '\n' || p == h || (size_t)(p - h) >= hostlen)
		return 0;
	memcpy(host_r, h, (size_t)(p - h));
	host_r[p - h] = '\0';
	*pid_r = (long)pid;
	p++;
	if (strncmp(p, "append ", 7) == 0) {
		p += 7;
		if (lock_number(&p, &dev) == 0 && *p++ == ' ' &&
		    lock_number(&p, &ino) == 0 && *p++ == ' ' &&
		    lock_number(&p, &off) == 0 && *p == '\n' &&
		    off <= (unsigned long long)LLONG_MAX) {
			app_r->valid = 1;
			app_r->pid = *pid_r;
			app_r->dev = dev;
			app_r->ino = ino;
			app_r->offset = (long long)off;
		}
	}
	return 1;
}

/*
 * Whether a process holds an fcntl lock on the mbox.  A lock of ours with
 * an "append" line was written under the fcntl lock, which the kernel
 * lets go when its holder dies: while it is held, the holder lives,
 * whatever kill() said (a pullmail in another PID namespace, or on
 * another machine of the same name sharing the file).  Checked before a
 * dead holder's partial message is cut away, so that no live writer's
 * message is ever cut.  We hold no fcntl lock on the file here, so
 * closing this descriptor drops none of ours.
 */
static int
mbox_fcntl_held(struct mbox *mb)
{
	struct flock fl;
	int fd, held;

	fd = open(mb->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	held = fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type != F_UNLCK;
	close(fd);
	return held;
}

enum { LOCK_HELD, LOCK_GONE };

/*
 * Judge the dotlock another process holds: LOCK_GONE when it has gone or
 * was stale and is removed now (try again at once), LOCK_HELD when it
 * stands.  A stale lock of a dead pullmail that was appending leaves its
 * record in *app_r for mbox_repair().
 */
static int
lock_judge(struct mbox *mb, struct lock_append *app_r)
{
	struct stat st, now;
	struct lock_append app;
	char text[512], host[256], *tmp;
	long pid = 0;
	ssize_t n;
	int fd, ours, dead;

	/* Anything but a regular file we can read (a symbolic link, a lock
	 * we may not read) is judged by its age alone. */
	fd = open(mb->lockpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return LOCK_GONE;
	n = 0;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, text, sizeof text - 1);
	else if (lstat(mb->lockpath, &st) < 0)
		n = -1;
	if (fd >= 0)
		close(fd);
	if (n < 0)
		return errno == ENOENT ? LOCK_GONE : LOCK_HELD;
	text[n] = '\0';
	ours = lock_parse(text, &pid, host, sizeof host, &app);
	dead = ours && mb->host[0] != '\0' && strcmp(host, mb->host) == 0 &&
	    kill((pid_t)pid, 0) < 0 && errno == ESRCH &&
	    !(app.valid && mbox_fcntl_held(mb));
	if (!dead && time(NULL) - st.st_mtime <= MBOX_STALE_LOCK)
		return LOCK_HELD;
	/*
	 * Remove it only if it is still the very file judged: another
	 * process may have removed it and taken the lock afresh meanwhile.
	 * A new file may get the freed inode number, not the same change
	 * time (nanoseconds).  What is left is the instant between this
	 * lstat() and the unlink(), which no dotlock scheme can close.
	 */
	if (lstat(mb->lockpath, &now) < 0)
		return LOCK_GONE;
	if (now.st_dev != st.st_dev || now.st_ino != st.st_ino ||
	    now.st_ctim.tv_sec != st.st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != st.st_ctim.tv_nsec ||
	    now.st_size != st.st_size)
		return LOCK_GONE;
	if (unlink(mb->lockpath) < 0)
		return errno == ENOENT ? LOCK_GONE : LOCK_HELD;
	if (!dead) {
		log_warnx("mbox: removed the stale lock %s (more than five "
		    "minutes old)", mb->lockpath);
		return LOCK_GONE;
	}
	log_warnx("mbox: removed the lock %s left by pullmail process %ld, "
	    "which no longer exists%s", mb->lockpath, pid, app.valid ?
	    " (it died while appending a message)" : "");
	*app_r = app;
	/* Its link source too, if it died before removing that. */
	tmp = xasprintf("%s.%s.%ld", mb->lockpath, host, pid);
	(void)unlink(tmp);
	free(tmp);
	return LOCK_GONE;
}

/*
 * Create the dotlock holding text: written to a file of our own, then
 * linked to PATH.lock, so the lock never exists without its first line
 * (an empty lock left by a kill between create and write would count as
 * another program's and block the mbox for five minutes).  Where hard
 * links are not supported, O_EXCL and a write.  0 with *fd_r open on the
 * lock; -1 with errno (EEXIST: someone holds it).
 */
static int
lock_create(struct mbox *mb, const char *text, int *fd_r)
{
	char *tmp;
	int fd, e, tries;

	tmp = xasprintf("%s.%s.%ld", mb->lockpath, mb->host, (long)getpid());
	for (tries = 0; tries < 2; tries++) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0644);
		/* Ours: a process of our PID died before removing it. */
		if (fd < 0 && errno == EEXIST && tries == 0 &&
		    unlink(tmp) == 0)
			continue;
		break;
	}
	if (fd < 0) {
		e = errno;
		free(tmp);
		errno = e;
		return -1;
	}
	if (write_full(fd, text, strlen(text)) < 0) {
		e = errno;
		close(fd);
		(void)unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	e = link(tmp, mb->lockpath) < 0 ? errno : 0;
	(void)unlink(tmp);
	free(tmp);
	if (e == 0) {
		*fd_r = fd;
		return 0;
	}
	close(fd);
	if (e != EPERM && e != ENOTSUP && e != EOPNOTSUPP && e != EMLINK &&
	    e != ENOSYS) {
		errno = e;
		return -1;
	}
	fd = open(mb->lockpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	(void)write_full(fd, text, strlen(text));
	*fd_r = fd;
	return 0;
}

/*
 * Take the dotlock PATH.lock before deadline.  mm->dotlocked stays 0 when
 * the directory does not let us create one (then the fcntl lock alone
 * protects the file, as with mutt without dotlock rights).
 */
static int
dotlock(struct mbox *mb, struct mbox_msg *mm, long long deadline, char **err)
{
	char *text;
	int fd, e;

	text = xasprintf("pullmail %ld %s\n", (long)getpid(),
	    mb->host[0] != '\0' ? mb->host : "?");
	for (;;) {
		if (lock_create(mb, text, &fd) == 0) {
			mm->lockfd = fd;
			mm->dotlocked = 1;
			free(text);
			return PM_OK;
		}
		e = errno;
		if (e == EACCES || e == EPERM || e == EROFS) {
			log_debug("deliver", "mbox: cannot create %s (%s); "
			    "using the fcntl lock alone", mb->lockpath,
			    pm_strerror(e));
			free(text);
			return PM_OK;
		}
		if (e != EEXIST) {
			free(text);
			return mbox_error(err, "cannot create", mb->lockpath,
			    e);
		}
		if (lock_judge(mb, &mm->repair) == LOCK_GONE)
			continue;
		if (mono_ms() >= deadline) {
			free(text);
			return errf(err, PM_ETEMP, "mbox: cannot lock %s "
			    "within %u seconds: %s is held by another "
			    "program", mb->path, mb->lock_timeout,
			    mb->lockpath);
		}
		sleep_ms(MBOX_LOCK_POLL_MS);
	}
}

/* Take the fcntl write lock on fd before deadline. */
static int
fcntl_lock(struct mbox *mb, int fd, long long deadline, char **err)
{
	struct flock fl;

	for (;;) {
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, mb->setlk, &fl) == 0) {
			mb->locked = 1;
			return PM_OK;
		}
		if (errno == EINVAL && mb->setlk != F_SETLK) {
			mb->setlk = F_SETLK;	/* a kernel before 3.15 */
			continue;
		}
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			return mbox_error(err, "cannot lock", mb->path, errno);
		if (mono_ms() >= deadline)
			return errf(err, PM_ETEMP, "mbox: cannot lock %s "
			    "within %u seconds: another program holds its "
			    "fcntl lock", mb->path, mb->lock_timeout);
		sleep_ms(MBOX_LOCK_POLL_MS);
	}
}

/* Let go of both locks and then the gate; the file stays open. */
static void
mbox_unlock(struct mbox *mb, struct mbox_msg *mm)
{
	struct stat lst, st;
	struct flock fl;

	/* The dotlock goes first: while it names our append, the fcntl lock
	 * shows that we live (see mbox_fcntl_held()).  It is removed only
	 * if it is still ours: another program may have broken it as stale
	 * and taken its own. */
	if (mm->dotlocked && lstat(mb->lockpath, &lst) == 0 &&
	    fstat(mm->lockfd, &st) == 0 && lst.st_dev == st.st_dev &&
	    lst.st_ino == st.st_ino)
		(void)unlink(mb->lockpath);
	if (mm->lockfd >= 0)
		close(mm->lockfd);
	mm->lockfd = -1;
	mm->dotlocked = 0;
	if (mb->locked) {
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(mb->fd, mb->setlk, &fl) < 0)
			log_warn("mbox: cannot unlock %s", mb->path);
		mb->locked = 0;
	}
	gate_leave(mm);
}

/*
 * A failed fsync sticks: the kernel may have dropped the pages it could
 * not write, and a later fsync can succeed without them, so no later
 * sync() may report the unsynced messages durable.  Takes e (an errno).
 */
static int
fsync_failed(struct mbox *mb, const char *path, int e, char **err)
{
	int r = mbox_error(err, "cannot fsync", path, e);

	if (mb->sync_err == NULL) {
		mb->sync_status = r;
		mb->sync_err = xstrdup(*err);
	}
	return r;
}

/* Cut the file back to its size before the message. */
static void
rollback(struct mbox *mb, struct mbox_msg *mm)
{
	char *err = NULL;

	if (!mb->locked)
		return;
	if (ftruncate(mb->fd, mm->orig) < 0)
		log_warn("mbox: cannot cut %s back to %lld bytes", mb->path,
		    (long long)mm->orig);
	else if (fsync(mb->fd) < 0) {
		fsync_failed(mb, mb->path, errno, &err);
		log_warnx("%s", err);
		free(err);
	}
}

/* fsync the file and, when it may be new, its directory, unless an
 * fsync failed before (see fsync_failed()). */
static int
mbox_fsync(struct mbox *mb, char **err)
{
	if (mb->sync_err != NULL)
		return errf(err, mb->sync_status, "%s", mb->sync_err);
	if (mb->unsynced == 0)
		return PM_OK;
	if (fsync(mb->fd) < 0)
		return fsync_failed(mb, mb->path, errno, err);
	if (mb->dirsync && fsync_dir(mb->dir) < 0)
		return fsync_failed(mb, mb->dir, errno, err);
	log_debug("deliver", "mbox: %u messages made durable in %s",
	    mb->unsynced, mb->path);
	mb->unsynced = 0;
	mb->dirsync = 0;
	return PM_OK;
}

/* PM_OK when st (of the path, or of the file opened) is an mbox we may
 * append to: a regular file, no other hard link, owned by mb->uid. */
static int
mbox_check(struct mbox *mb, const struct stat *st, char **err)
{
	if (S_ISLNK(st->st_mode))
		return errf(err, PM_EDELIVER, "mbox: %s is a symbolic link; "
		    "refusing to deliver through it (name the file itself "
		    "in deliver)", mb->path);
	if (!S_ISREG(st->st_mode))
		return errf(err, PM_EDELIVER, "mbox: %s is not a regular file",
		    mb->path);
	if (st->st_nlink != 1)
		return errf(err, PM_EDELIVER, "mbox: %s has %lu hard links; "
		    "refusing to append to a file that is also elsewhere "
		    "(remove the other links)", mb->path,
		    (unsigned long)st->st_nlink);
	if (st->st_uid != mb->uid)
		return errf(err, PM_EDELIVER, "mbox: %s is owned by uid %lu, "
		    "not by %s; refusing to append to it", mb->path,
		    (unsigned long)st->st_uid, mb->owner);
	return PM_OK;
}

/*
 * Open the mbox without following a symbolic link: a missing file is
 * created with O_EXCL (as root, for its owner), an existing one is
 * checked before (lstat) and after (fstat) it is opened, and must be the
 * same file both times.  If the path changes in between (created or
 * removed by another program), look again, a few times.
 */
static int
mbox_open_file(struct mbox *mb, char **err)
{
	struct stat lst, st;
	int fd, e, r, tries;

	for (tries = 0; tries < 5; tries++) {
		if (lstat(mb->path, &lst) < 0) {
			if (errno != ENOENT)
				return mbox_error(err, "cannot stat", mb->path,
				    errno);
			fd = open(mb->path, O_RDWR | O_APPEND | O_CREAT |
			    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0 && errno == EEXIST)
				continue;
			if (fd < 0)
				return mbox_error(err, "cannot create",
				    mb->path, errno);
			if (geteuid() == 0 && mb->uid != 0 &&
			    fchown(fd, mb->uid, mb->gid) < 0) {
				e = errno;
				close(fd);
				(void)unlink(mb->path);
				return mbox_error(err, "cannot give the new "
				    "mbox to its owner:", mb->path, e);
			}
			mb->fd = fd;
			return PM_OK;
		}
		if ((r = mbox_check(mb, &lst, err)) != PM_OK)
			return r;
		/* O_NONBLOCK: a FIFO or device put there meanwhile must not
		 * hang the open; fstat refuses it below. */
		fd = open(mb->path, O_RDWR | O_APPEND | O_NOFOLLOW |
		    O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 && (errno == ENOENT || errno == ELOOP))
			continue;
		if (fd < 0)
			return mbox_error(err, "cannot open", mb->path, errno);
		if (fstat(fd, &st) < 0) {
			e = errno;
			close(fd);
			return mbox_error(err, "cannot stat", mb->path, e);
		}
		if (st.st_dev != lst.st_dev || st.st_ino != lst.st_ino) {
			close(fd);
			continue;
		}
		if ((r = mbox_check(mb, &st, err)) != PM_OK ||
		    fcntl(fd, F_SETFL, O_APPEND) < 0) {
			if (r == PM_OK)
				r = mbox_error(err, "cannot set up", mb->path,
				    errno);
			close(fd);
			return r;
		}
		mb->fd = fd;
		return PM_OK;
	}
	return errf(err, PM_ETEMP, "mbox: %s kept changing while it was "
	    "being opened", mb->path);
}

/*
 * Have mb->fd open on the file the path names now.  A file renamed or
 * removed since the last message (an mbox rotated away, one mutt removed
 * when it became empty) keeps what we wrote to it: it is fsync'd before
 * it is let go, then the path is opened (created) afresh.
 */
static int
mbox_reopen(struct mbox *mb, char **err)
{
	struct stat st, cur;

	if (mb->fd >= 0) {
		if (lstat(mb->path, &st) == 0 && fstat(mb->fd, &cur) == 0 &&
		    st.st_dev == cur.st_dev && st.st_ino == cur.st_ino)
			return PM_OK;
		log_debug("deliver", "mbox: %s was replaced; opening it again",
		    mb->path);
		if (mbox_fsync(mb, err) != PM_OK)
			return mb->sync_status;
		close(mb->fd);
		mb->fd = -1;
	}
	return mbox_open_file(mb, err);
}

/* Write the buffered bytes to the mbox, remembering the last one. */
static int
out_flush(struct mbox *mb, struct mbox_msg *mm, char **err)
{
	if (mm->len == 0)
		return PM_OK;
	if (write_full(mb->fd, mm->buf, mm->len) < 0) {
		mm->len = 0;
		return mbox_error(err, "cannot write", mb->path, errno);
	}
	mm->last = mm->buf[mm->len - 1];
	mm->len = 0;
	return PM_OK;
}

/* Buffer one byte for the mbox, flushing when the buffer is full. */
static int
out_byte(struct mbox *mb, struct mbox_msg *mm, char c, char **err)
{
	int r;

	if (mm->len == sizeof mm->buf && (r = out_flush(mb, mm, err)) != 0)
		return r;
	mm->buf[mm->len++] = c;
	return PM_OK;
}

/* Emit the held-back start of a line: gt '>' then fm bytes of "From ". */
static int
out_held(struct mbox *mb, struct mbox_msg *mm, char **err)
{
	size_t i;
	int r;

	for (i = 0; i < mm->gt; i++)
		if ((r = out_byte(mb, mm, '>', err)) != PM_OK)
			return r;
	for (i = 0; i < mm->fm; i++)
		if ((r = out_byte(mb, mm, from_[i], err)) != PM_OK)
			return r;
	mm->gt = mm->fm = 0;
	return PM_OK;
}

/* The separator a message appended at size needs so that the message
 * before it ends with a blank line: "", "\n" or "\n\n"; NULL (errno set)
 * when the file cannot be read. */
static const char *
mbox_sep(struct mbox *mb, off_t size)
{
	char tail[2];
	ssize_t n;

	if (size == 0)
		return "";
	n = pread(mb->fd, tail, 2, size >= 2 ? size - 2 : 0);
	if (n < 0)
		return NULL;
	if (n == 0) {
		errno = EIO;
		return NULL;
	}
	if (n == 2 && tail[0] == '\n' && tail[1] == '\n')
		return "";
	return tail[n - 1] == '\n' ? "\n" : "\n\n";
}

/*
 * A pullmail process died while appending to the mbox after the offset
 * its lock names (see lock_judge()): cut the file back to that offset,
 * so that no partial message stays in it for ever, and fsync.  The
 * message was not counted as delivered (that waits for sync()), so it is
 * fetched again and nothing is lost; the cut also saves a duplicate when
 * the message was whole but the lock not yet removed.
 *
 * Only when what follows the offset can be nothing but that one message:
 * the same file (device and inode), at least that long, and the bytes
 * after the offset are what mbox_begin() writes there (the separator the
 * bytes before the offset call for, then "From "), or the start of it,
 * with no further line beginning with "From ".  mboxrd quoting keeps such
 * lines out of our messages, so one means another writer (one that
 * ignored our dotlock but waited for the fcntl lock the dead process
 * held, or one that ignored both) appended its own message after the
 * partial one: cutting would lose it.  The same goes for a file replaced,
 * shortened or rewritten meanwhile.  When in doubt the file is left alone
 * and a warning names the offset, for the admin to look.  *st is updated.
 */
static void
mbox_repair(struct mbox *mb, struct mbox_msg *mm, struct stat *st)
{
	const struct lock_append *rec = &mm->repair;
	const char *sep, *why = NULL;
	char want[8];
	size_t wlen, matched = 0, fm = 0, i;
	off_t pos, had;
	ssize_t n;
	int bol = 0;

	mm->repair.valid = 0;
	if ((unsigned long long)st->st_dev != rec->dev ||
	    (unsigned long long)st->st_ino != rec->ino) {
		log_warnx("mbox: pullmail process %ld died while appending a "
		    "message at offset %lld of the file that was %s then; "
		    "%s has been replaced since: the old file may end with "
		    "part of a message", rec->pid, rec->offset, mb->path,
		    mb->path);
		return;
	}
	if (st->st_size == rec->offset)
		return;
	if (st->st_size < rec->offset)
		why = "the file is shorter now than it was then";
	else if ((sep = mbox_sep(mb, rec->offset)) == NULL)
		why = pm_strerror(errno);
	else {
		wlen = (size_t)snprintf(want, sizeof want, "%sFrom ", sep);
		for (pos = rec->offset; why == NULL && pos < st->st_size;
		    pos += n) {
			n = pread(mb->fd, mm->buf, sizeof mm->buf, pos);
			if (n <= 0) {
				why = n < 0 ? pm_strerror(errno) :
				    "the file ended early";
				break;
			}
			for (i = 0; i < (size_t)n; i++) {
				char c = mm->buf[i];

				if (matched < wlen) {
					if (c != want[matched++]) {
						why = "what follows the offset "
						    "is not a message of ours";
						break;
					}
					continue;
				}
				if (bol && c == from_[fm]) {
					if (++fm < sizeof from_ - 1)
						continue;
					why = "another message follows the "
					    "partial one";
					break;
				}
				fm = 0;
				bol = c == '\n';
			}
		}
	}
	if (why != NULL) {
		log_warnx("mbox: pullmail process %ld died while appending a "
		    "message to %s at offset %lld; not cutting the %lld bytes "
		    "after that offset away, because %s: look at the file "
		    "from that offset on", rec->pid, mb->path, rec->offset,
		    (long long)(st->st_size - rec->offset), why);
		return;
	}
	had = st->st_size;
	mm->orig = rec->offset;
	rollback(mb, mm);
	if (fstat(mb->fd, st) < 0 || st->st_size != rec->offset)
		return;
	log_warnx("mbox: cut %s back to %lld bytes: removed the %lld bytes "
	    "of a message that pullmail process %ld was appending when it "
	    "died (it is fetched again)", mb->path, rec->offset,
	    (long long)(had - rec->offset), rec->pid);
}

/* Add to our dotlock the mbox and its size before this message, for the
 * next run if this one dies while appending (see mbox_repair()). */
static void
lock_note(struct mbox *mb, struct mbox_msg *mm, const struct stat *st)
{
	char line[128];

	snprintf(line, sizeof line, "append %llu %llu %lld\n",
	    (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
	    (long long)st->st_size);
	if (write_full(mm->lockfd, line, strlen(line)) < 0)
		log_debug("deliver", "mbox: cannot write to %s: %s",
		    mb->lockpath, pm_strerror(errno));
}

/* mbox: take both locks, note the size and write the "From " line;
 * a lock timeout makes later messages fail fast. */
static int
mbox_begin(void *ctx, const struct deliver_info *info, void **m_r,
    char **err)
{
	struct mbox *mb = ctx;
	struct mbox_msg *mm;
	struct stat st;
	long long deadline;
	char date[64], *line;
	const char *sep, *sender = info->sender;
	time_t now;
	struct tm tm;
	int r;

	if (mb->broken)
		return errf(err, PM_ETEMP, "%s", mb->broken_err);
	if (mb->sync_err != NULL)
		return errf(err, mb->sync_status, "%s", mb->sync_err);
	mm = xcalloc(1, sizeof *mm);
	deadline = mono_ms() + (long long)mb->lock_timeout * 1000;
	mm->lockfd = -1;
	if ((r = gate_enter(mb, mm, deadline, err)) != PM_OK ||
	    (r = dotlock(mb, mm, deadline, err)) != PM_OK)
		goto fail;
	if ((r = mbox_reopen(mb, err)) != PM_OK)
		goto fail;
	if ((r = fcntl_lock(mb, mb->fd, deadline, err)) != PM_OK)
		goto fail;
	if (fstat(mb->fd, &st) < 0) {
		r = mbox_error(err, "cannot stat", mb->path, errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = errf(err, PM_EDELIVER, "mbox: %s is not a regular file",
		    mb->path);
		goto fail;
	}
	if (mm->repair.valid)
		mbox_repair(mb, mm, &st);
	mm->orig = st.st_size;
	if (mm->dotlocked)
		lock_note(mb, mm, &st);

	/* The previous message must end with a blank line. */
	if ((sep = mbox_sep(mb, st.st_size)) == NULL) {
		r = mbox_error(err, "cannot read", mb->path, errno);
		goto fail;
	}
	if (sender == NULL || *sender == '\0' || strpbrk(sender, " \t") != NULL)
		sender = "MAILER-DAEMON";
	now = time(NULL);
	localtime_r(&now, &tm);
	if (strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm) == 0)
		strcpy(date, "Thu Jan  1 00:00:00 1970");
	line = xasprintf("%sFrom %s %s\n", sep, sender, date);
	if (write_full(mb->fd, line, strlen(line)) < 0) {
		r = mbox_error(err, "cannot write", mb->path, errno);
		free(line);
		rollback(mb, mm);
		goto fail;
	}
	free(line);
	mm->bol = 1;
	mm->last = '\n';
	*m_r = mm;
	return PM_OK;

fail:
	if (r == PM_ETEMP && strstr(*err, "cannot lock") != NULL) {
		mb->broken = 1;
		mb->broken_err = xstrdup(*err);
	}
	mbox_unlock(mb, mm);
	free(mm);
	return r;
}

/* mbox: append the bytes, quoting ^>*From  lines with one more '>'. */
static int
mbox_write(void *ctx, void *m, const void *buf, size_t len, char **err)
{
	struct mbox *mb = ctx;
	struct mbox_msg *mm = m;
	const char *p = buf;
	size_t i;
	int r;

	for (i = 0; i < len; i++) {
		char c = p[i];

		if (mm->bol) {
			if (mm->fm == 0 && c == '>') {
				mm->gt++;
				continue;
			}
			if (c == from_[mm->fm]) {
				if (++mm->fm < sizeof from_ - 1)
					continue;
				/* ^>*From : one more '>'. */
				if ((r = out_byte(mb, mm, '>', err)) != PM_OK ||
				    (r = out_held(mb, mm, err)) != PM_OK)
					return r;
				mm->bol = 0;
				continue;
			}
			if ((r = out_held(mb, mm, err)) != PM_OK)
				return r;
			mm->bol = 0;
		}
		if ((r = out_byte(mb, mm, c, err)) != PM_OK)
			return r;
		if (c == '\n')
			mm->bol = 1;
	}
	return PM_OK;
}

/* mbox: cut the file back to its old size, unlock and free m. */
static void
mbox_abort(void *ctx, void *m)
{
	struct mbox *mb = ctx;
	struct mbox_msg *mm = m;

	rollback(mb, mm);
	mbox_unlock(mb, mm);
	free(mm);
}

/* mbox: end with a blank line, write it all out and unlock (sync() makes
 * it durable); on failure roll back. */
static int
mbox_finish(void *ctx, void *m, char **err)
{
	struct mbox *mb = ctx;
	struct mbox_msg *mm = m;
	int r;

	r = out_held(mb, mm, err);
	if (r == PM_OK)
		r = out_flush(mb, mm, err);
	/* End the last line, then the blank line that ends the message. */
	if (r == PM_OK && mm->last != '\n')
		r = out_byte(mb, mm, '\n', err);
	if (r == PM_OK)
		r = out_byte(mb, mm, '\n', err);
	if (r == PM_OK)
		r = out_flush(mb, mm, err);
	if (r != PM_OK) {
		mbox_abort(ctx, m);
		return r;
	}
	/* An mbox that was empty may have just been created: its directory
	 * entry must be made durable too. */
	if (mm->orig == 0)
		mb->dirsync = 1;
	mb->unsynced++;
	mbox_unlock(mb, mm);
	free(mm);
	return PM_OK;
}

/* mbox: one fsync makes every message finished since the last sync
 * durable; after a failed one, nothing ever is again (see mbox_fsync()). */
static int
mbox_sync(void *ctx, char **err)
{
	return mbox_fsync(ctx, err);
}

/* mbox: close the file and free the target's state.  Messages finished
 * but not synced are not made durable: the caller never counted them. */
static void
mbox_close(void *ctx)
{
	struct mbox *mb = ctx;

	if (mb->fd >= 0)
		close(mb->fd);
	free(mb->path);
	free(mb->lockpath);
	free(mb->dir);
	free(mb->owner);
	free(mb->broken_err);
	free(mb->sync_err);
	free(mb);
}

const struct deliver_ops deliver_mbox_ops = {
	.name = "mbox",
	.open = mbox_open,
	.begin = mbox_begin,
	.write = mbox_write,
	.finish = mbox_finish,
	.abort = mbox_abort,
	.sync = mbox_sync,
	.close = mbox_close,
};
