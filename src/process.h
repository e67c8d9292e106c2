/*
 * Child processes: one rule for splitting a command line into an argv,
 * spawning with an explicit environment and chosen descriptors, waiting
 * with a deadline and stopping what overran.  Used for password_command,
 * oauth_*_command, notify_command and the MDA.
 *
 * Threads: no shared state.  Everything the child needs (the program's
 * path, argv, environment, descriptors) is built before fork(); the child
 * makes only async-signal-safe calls, as the child of a threaded process
 * must.  Every descriptor of ours is close-on-exec, so only the ones
 * chosen here reach the command.
 */
#ifndef PM_PROCESS_H
#define PM_PROCESS_H

#include <sys/types.h>

#include <stddef.h>

/* Milliseconds between SIGTERM and SIGKILL when a command is stopped. */
#define PROC_KILL_GRACE_MS 2000

/*
 * Split cmd into a NULL-terminated argv (malloc'd; free with
 * proc_argv_free()).  The one rule for every command in the
 * configuration: words are separated by blanks (space, tab); "..." and
 * '...' quote blanks and each other, and may make part of a word or an
 * empty word; inside "...", \" and \\ stand for " and \ (any other
 * backslash is itself); outside quotes a backslash is an ordinary
 * character.  A word starting with an unquoted ~/ has it replaced by
 * $HOME/ (when $HOME is an absolute path).  No shell is involved: $, `,
 * *, |, ; and the like are ordinary characters.  NULL with *err set
 * (PM_ECONFIG) for an empty command or an unterminated quote.
 */
char **proc_split(const char *cmd, char **err);

/* Free a NULL-terminated array of malloc'd strings and the array; NULL is
 * fine. */
void proc_argv_free(char **argv);

/*
 * A copy of this process's environment in which each "NAME=value" of set
 * (NULL-terminated) replaces the variable of that name or is added;
 * malloc'd, free with proc_argv_free().
 */
char **proc_env(const char *const *set);

/* What the command gets as its standard descriptors. */
struct proc_spec {
	char *const *argv;	/* argv[0] is looked up in $PATH */
	char *const *env;	/* the whole environment; NULL: ours */
	int in;			/* becomes its stdin; -1: /dev/null */
	int out_pipe;		/* stdout into a pipe for us, else ours */
	int err_to_out;		/* stderr into that pipe too, else ours */
};

/*
 * Start the command of spec.  *pid_r is its pid; *out_r the read end of
 * its stdout pipe (non-blocking, close-on-exec; -1 without out_pipe),
 * which the caller closes.  SIGPIPE and SIGXFSZ are reset to their
 * default and no signal is blocked in the child.  Errors (*err names
 * argv[0]): PM_ECONFIG "cannot run NAME: reason" (not found, not
 * executable: exec failed), PM_ETEMP (no pipe, no process).
 */
int proc_spawn(const struct proc_spec *spec, pid_t *pid_r, int *out_r,
    char **err);

/*
 * Reap pid into *status_r, waiting until deadline (mono_ms(); 0: look
 * once).  0 when reaped; 1 when it is still running at the deadline; -1
 * with errno when waitpid() fails.
 */
int proc_wait(pid_t pid, long long deadline, int *status_r);

/* Stop pid: SIGTERM, PROC_KILL_GRACE_MS to exit, then SIGKILL; reaped. */
void proc_stop(pid_t pid);

/*
 * Read fd (non-blocking) into buf until EOF, keeping at most max bytes;
 * past that *too_big_r is set and the rest is read and dropped, so the
 * writer can finish.  *len_r is the number kept.  0 at EOF, 1 when the
 * deadline (mono_ms()) came first.
 */
int proc_read(int fd, char *buf, size_t max, size_t *len_r,
    int *too_big_r, long long deadline);

/*
 * Run spec to its end within timeout seconds: spawn, capture its stdout
 * into buf (when spec->out_pipe; at most max bytes, as proc_read) and
 * reap it into *status_r.  A command still running at the deadline is
 * stopped (proc_stop).  Errors: PM_ETEMP "NAME did not finish within N
 * seconds; stopped it", and those of proc_spawn.
 */
int proc_run(const struct proc_spec *spec, unsigned timeout, char *buf,
    size_t max, size_t *len_r, int *too_big_r, int *status_r, char **err);

/* "NAME exited with status N" or "NAME was killed by signal N"
 * (malloc'd), or NULL for a status of 0. */
char *proc_status_text(const char *name, int status);

#endif
