/*
 * MDA delivery: the command line is split into an argv once, and each
 * message is spooled into an unlinked temporary file (mode 0600, in
 * $TMPDIR or /tmp) as it arrives.  Only when it is complete is a fresh
 * child started with that argv, never through a shell, and the file,
 * rewound, as its stdin: a message cut short (the server went away, a
 * read failed, pullmail was killed) never reaches the MDA, and once the
 * MDA runs it has the whole message whatever happens to pullmail.  %F and
 * %T are whole arguments; the same data is in the child's environment.
 * The child's stderr goes to the log.  Exit 0: delivered; 75
 * (EX_TEMPFAIL) or mda_timeout: temporary; anything else or a signal:
 * failed.  A spool that cannot be written (no room, not writable) is a
 * temporary failure.  mda_timeout bounds the MDA's own inactivity: the
 * clock restarts whenever it moves through its input (the file offset it
 * shares with us), so a slow mail server and a large message never count
 * against it.  The MDA's exit is the durability point, so finish() waits
 * for it and sync() has nothing left to do.
 *
 * Threads: no shared state; a target and its messages belong to one
 * thread.  The argv and the child's environment are built before fork(),
 * and the process helper keeps the child async-signal-safe; the spool and
 * every pipe are close-on-exec, so no descriptor of another thread reaches
 * the MDA.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deliver-int.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define MDA_ERRLINE 512		/* bytes of one stderr line kept */

struct mda {
	char **argv;		/* with %F and %T still in place */
	char *name;		/* argv[0], for messages */
	char *account;
	char *spool_dir;	/* $TMPDIR or /tmp */
	unsigned timeout;
};

struct mda_msg {
	int spool;		/* the unlinked spool file, -1 once closed */
	off_t size;		/* bytes spooled */
	char **argv;		/* the MDA's, %F and %T filled in */
	char **env;		/* the MDA's environment */
	pid_t pid;		/* the MDA once started, else -1 */
	int errfd;		/* its stderr, -1 at EOF */
	off_t seen;		/* its offset in the spool at the last look */
	long long deadline;	/* monotonic ms; re-armed on each progress */
	char line[MDA_ERRLINE];	/* the stderr line being collected */
	size_t llen;
	char last[MDA_ERRLINE];	/* the last complete stderr line */
};

/* Split an MDA command line by proc_split()'s rule; %F and %T must be
 * whole words.  NULL with *err set on a bad one. */
char **
deliver_mda_split(const char *cmd, char **err)
{
	char **argv;
	size_t i;

	if ((argv = proc_split(cmd, err)) == NULL)
		return NULL;
	for (i = 0; argv[i] != NULL; i++)
		if (strcmp(argv[i], "%F") != 0 && strcmp(argv[i], "%T") != 0 &&
		    (strstr(argv[i], "%F") != NULL ||
		    strstr(argv[i], "%T") != NULL)) {
			errf(err, PM_ECONFIG, "\"%s\": %%F and %%T must be "
			    "arguments of their own", argv[i]);
			proc_argv_free(argv);
			return NULL;
		}
	return argv;
}

/* mda: split the command into an argv once; the MDA runs per message. */
static int
mda_open(const struct deliver_config *cfg, void **ctx_r, char **err)
{
	struct mda *md;
	const char *tmp = getenv("TMPDIR");
	char **argv;

	if (cfg->target == NULL ||
	    (argv = deliver_mda_split(cfg->target, err)) == NULL) {
		err_prefix(err, "mda");
		return PM_ECONFIG;
	}
	md = xcalloc(1, sizeof *md);
	md->argv = argv;
	md->name = xstrdup(argv[0]);
	md->account = xstrdup(cfg->account);
	md->spool_dir = xstrdup(tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	md->timeout = cfg->mda_timeout;
	*ctx_r = md;
	return PM_OK;
}

/* Log one line the MDA wrote to stderr, control characters replaced. */
static void
err_line(struct mda *md, struct mda_msg *mm)
{
	size_t i;

	mm->line[mm->llen] = '\0';
	for (i = 0; i < mm->llen; i++)
		if ((unsigned char)mm->line[i] < 0x20 || mm->line[i] == 0x7f)
			mm->line[i] = '?';
	if (mm->llen > 0) {
		log_warnx("%s: %s: %s", md->account, md->name, mm->line);
		memcpy(mm->last, mm->line, mm->llen + 1);
	}
	mm->llen = 0;
}

/* Read what the child's stderr has (non-blocking); log whole lines. */
static void
drain_stderr(struct mda *md, struct mda_msg *mm)
{
	char buf[4096];
	ssize_t n, i;

	while (mm->errfd >= 0) {
		n = read(mm->errfd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			err_line(md, mm);
			close(mm->errfd);
			mm->errfd = -1;
			return;
		}
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				err_line(md, mm);
				continue;
			}
			if (mm->llen < sizeof mm->line - 1)
				mm->line[mm->llen++] = buf[i];
		}
	}
}

/* An environment for the child: ours plus the PULLMAIL_ variables. */
static char **
child_env(const struct deliver_info *info, const char *sender)
{
	char *set[7];
	char **env;
	size_t i;

	set[0] = xasprintf("PULLMAIL_SENDER=%s", sender);
	set[1] = xasprintf("PULLMAIL_RECIPIENT=%s", info->recipient);
	set[2] = xasprintf("PULLMAIL_ACCOUNT=%s", info->account);
	set[3] = xasprintf("PULLMAIL_SERVER=%s", info->server);
	set[4] = xasprintf("PULLMAIL_FOLDER=%s", info->mailbox);
	set[5] = xasprintf("PULLMAIL_UID=%s", info->uid);
	set[6] = NULL;
	env = proc_env((const char *const *)set);
	for (i = 0; set[i] != NULL; i++)
		free(set[i]);
	return env;
}

/* A spool that cannot be made or written is pullmail's own trouble, not
 * the message's: temporary, so the message stays on the server. */
static int
spool_error(struct mda *md, const char *what, int e, char **err)
{
	const char *hint = e == ENOSPC || e == EDQUOT || e == EFBIG ?
	    "it needs room for the largest message" :
	    "it must be a writable directory";

	return errf(err, PM_ETEMP, "mda: cannot %s the message in %s: %s "
	    "(%s; set TMPDIR to choose another)", what, md->spool_dir,
	    pm_strerror(e), hint);
}

/* An unlinked file (0600) in the spool directory, open for reading and
 * writing; -1 with errno set. */
static int
spool_open(const char *dir)
{
	char *path;
	int fd, e;

#ifdef O_TMPFILE
	/* O_EXCL: it can never be linked into the file system. */
	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
#endif
	/* A file system or kernel without O_TMPFILE: unlink at once. */
	path = xasprintf("%s/pullmail-mda.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0 && unlink(path) < 0) {
		e = errno;
		close(fd);
		errno = e;
		fd = -1;
	}
	free(path);
	return fd;
}

/* mda: open the spool for one message and prepare the MDA's argv (%F/%T
 * set) and environment; the MDA starts only when the message is whole. */
static int
mda_begin(void *ctx, const struct deliver_info *info, void **m_r,
    char **err)
{
	struct mda *md = ctx;
	struct mda_msg *mm;
	const char *sender = info->sender != NULL && *info->sender != '\0' ?
	    info->sender : "MAILER-DAEMON";
	size_t n, i;
	int fd;

	if ((fd = spool_open(md->spool_dir)) < 0)
		return spool_error(md, "spool", errno, err);
	mm = xcalloc(1, sizeof *mm);
	mm->spool = fd;
	mm->pid = -1;
	mm->errfd = -1;
	for (n = 0; md->argv[n] != NULL; n++)
		;
	mm->argv = xcalloc(n + 1, sizeof *mm->argv);
	for (i = 0; i < n; i++) {
		if (strcmp(md->argv[i], "%F") == 0)
			mm->argv[i] = xstrdup(sender);
		else if (strcmp(md->argv[i], "%T") == 0)
			mm->argv[i] = xstrdup(info->recipient);
		else
			mm->argv[i] = xstrdup(md->argv[i]);
	}
	mm->env = child_env(info, info->sender != NULL ? info->sender : "");
	*m_r = mm;
	return PM_OK;
}

/* mda: append the bytes to the spool. */
static int
mda_write(void *ctx, void *m, const void *buf, size_t len, char **err)
{
	struct mda_msg *mm = m;

	if (write_full(mm->spool, buf, len) < 0)
		return spool_error(ctx, "spool", errno, err);
	mm->size += (off_t)len;
	return PM_OK;
}

/* Start the MDA with the rewound spool as its stdin (its offset shared
 * with us) and a pipe for its stderr and stdout. */
static int
start_child(struct mda *md, struct mda_msg *mm, char **err)
{
	struct proc_spec spec = {
		.argv = mm->argv,
		.env = mm->env,
		.in = mm->spool,
		.out_pipe = 1,
		.err_to_out = 1,
	};
	int r;

	if (lseek(mm->spool, 0, SEEK_SET) != 0)
		return spool_error(md, "rewind", errno, err);
	if ((r = proc_spawn(&spec, &mm->pid, &mm->errfd, err)) != PM_OK) {
		/* Cannot run it: the MDA's fault, not the message's. */
		if (r == PM_ECONFIG)
			r = PM_EDELIVER;
		err_prefix(err, "mda");
		return r;
	}
	log_debug("deliver", "%s: started %s (pid %ld) on %lld bytes",
	    md->account, md->name, (long)mm->pid, (long long)mm->size);
	return PM_OK;
}

/* Start the mda_timeout clock for one wait on the MDA. */
static void
arm_deadline(struct mda *md, struct mda_msg *mm)
{
	mm->deadline = mono_ms() + (long long)md->timeout * 1000;
}

/* The MDA sat idle for mda_timeout: stop it; the message stays on the
 * server and is tried again, so the error is temporary. */
static int
timeout_error(struct mda *md, struct mda_msg *mm, const char *what,
    char **err)
{
	if (mm->pid >= 0)
		proc_stop(mm->pid);
	mm->pid = -1;
	return errf(err, PM_ETEMP, "mda: %s %s %u seconds (mda_timeout); "
	    "stopped it", md->name, what, md->timeout);
}

/* Note how far the MDA has read; progress restarts the clock. */
static void
check_progress(struct mda *md, struct mda_msg *mm)
{
	off_t off = lseek(mm->spool, 0, SEEK_CUR);

	if (off >= 0 && off != mm->seen) {
		mm->seen = off;
		arm_deadline(md, mm);
	}
}

/* Wait for the child to exit (logging its stderr), for mda_timeout
 * after its last move through its input. */
static int
wait_child(struct mda *md, struct mda_msg *mm, int *status_r, char **err)
{
	struct pollfd pfd;
	long long left;
	int w;

	arm_deadline(md, mm);
	for (;;) {
		if ((w = proc_wait(mm->pid, 0, status_r)) == 0) {
			mm->pid = -1;
			drain_stderr(md, mm);
			check_progress(md, mm);
			return PM_OK;
		}
		if (w < 0)
			return errf(err, PM_EINTERNAL, "mda: waitpid: %s",
			    pm_strerror(errno));
		check_progress(md, mm);
		left = mm->deadline - mono_ms();
		if (left <= 0)
			return timeout_error(md, mm, mm->seen < mm->size ?
			    "did not read its input for" :
			    "did not finish within", err);
		if (mm->errfd >= 0) {
			pfd.fd = mm->errfd;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, left > 50 ? 50 : (int)left) > 0)
				drain_stderr(md, mm);
		} else
			poll(NULL, 0, left > 20 ? 20 : (int)left);
	}
}

/* The delivery status for the child's wait status. */
static int
status_error(struct mda *md, struct mda_msg *mm, int status, char **err)
{
	const char *why = mm->last[0] != '\0' ? mm->last : "no message";

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return PM_OK;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 75)
		return errf(err, PM_ETEMP, "mda: %s exited with status 75 "
		    "(temporary failure: %s)", md->name, why);
	if (WIFEXITED(status))
		return errf(err, PM_EDELIVER, "mda: %s exited with status %d "
		    "(%s)", md->name, WEXITSTATUS(status), why);
	return errf(err, PM_EDELIVER, "mda: %s was killed by signal %d",
	    md->name, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Close the spool and the pipe still open to the MDA, free mm. */
static void
msg_free(struct mda_msg *mm)
{
	if (mm->spool >= 0)
		close(mm->spool);
	if (mm->errfd >= 0)
		close(mm->errfd);
	proc_argv_free(mm->argv);
	proc_argv_free(mm->env);
	free(mm);
}

/* mda: the message is whole: start the MDA on it and wait; its exit
 * status decides.  Exiting 0 without reading all of it is no delivery. */
static int
mda_finish(void *ctx, void *m, char **err)
{
	struct mda *md = ctx;
	struct mda_msg *mm = m;
	int status, r;

	if ((r = start_child(md, mm, err)) == PM_OK &&
	    (r = wait_child(md, mm, &status, err)) == PM_OK &&
	    (r = status_error(md, mm, status, err)) == PM_OK &&
	    mm->seen < mm->size)
		r = errf(err, PM_EDELIVER, "mda: %s exited before reading "
		    "the whole message", md->name);
	msg_free(mm);
	return r;
}

/* mda: a message cut short: the MDA was never started; drop the spool. */
static void
mda_abort(void *ctx, void *m)
{
	msg_free(m);
}

/* The MDA's exit status was the durability point. */
static int
mda_sync(void *ctx, char **err)
{
	return PM_OK;
}

/* mda: free the argv and the target's state. */
static void
mda_close(void *ctx)
{
	struct mda *md = ctx;

	proc_argv_free(md->argv);
	free(md->name);
	free(md->account);
	free(md->spool_dir);
	free(md);
}

const struct deliver_ops deliver_mda_ops = {
	.name = "mda",
	.open = mda_open,
	.begin = mda_begin,
	.write = mda_write,
	.finish = mda_finish,
	.abort = mda_abort,
	.sync = mda_sync,
	.close = mda_close,
};
