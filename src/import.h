/*
 * `pullmail import`: turn another fetcher's configuration (fetchmail's
 * rc file, getmail6's INI file) into a pullmail configuration on standard
 * output.  Each importer parses its format into its own model, then
 * describes every account through the builder below; the builder names
 * the accounts, quotes values, keeps secrets off standard output and
 * counts what could not be carried over.
 */
#ifndef PM_IMPORT_H
#define PM_IMPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* The exit status when something important (which mail is fetched, where
 * it goes, whether it is deleted) had no pullmail equivalent. */
#define IMPORT_EXIT_DROPPED 1

/* Allocations of one import, freed together by arena_free. */
struct arena {
	void	**ptrs;
	size_t	  n, cap;
};

void *arena_alloc(struct arena *ar, size_t n);
char *arena_strdup(struct arena *ar, const char *s);
char *arena_strndup(struct arena *ar, const char *s, size_t n);
char *arena_printf(struct arena *ar, const char *fmt, ...) PM_PRINTF(2, 3);
char *arena_vprintf(struct arena *ar, const char *fmt, va_list ap)
    PM_PRINTF(2, 0);
void arena_free(struct arena *ar);

struct imp_line;

/* One [account NAME] section being built. */
struct imp_acct {
	char		 *name;
	int		  disabled;	/* written commented out */
	char		 *secret;	/* the password, to a file or dropped */
	struct imp_line	 *lines, **tail;
	struct imp_acct	 *next;
};

/* The whole output: notes at the top, [defaults], the accounts. */
struct imp_out {
	struct arena	  ar;
	const char	 *source;	/* the file imported, for the header */
	const char	 *kind;		/* "fetchmailrc", "getmailrc" */
	struct imp_line	 *top, **top_tail;
	struct imp_line	 *defaults, **defaults_tail;
	struct imp_acct	 *accounts, **acct_tail;
	unsigned	  dropped;	/* important settings left behind */
};

void imp_init(struct imp_out *o, const char *kind, const char *source);
void imp_free(struct imp_out *o);

/* A new account named after hint (user@server), made unique and valid. */
struct imp_acct *imp_account(struct imp_out *o, const char *hint);

/* key = value in a (NULL: the [defaults] section). */
void imp_set(struct imp_out *o, struct imp_acct *a, const char *key,
    const char *fmt, ...) PM_PRINTF(4, 5);

/* A comment in a (NULL: at the top).  dropped: an important setting that
 * has no equivalent; counted for the exit status and marked DROPPED. */
void imp_note(struct imp_out *o, struct imp_acct *a, int dropped,
    const char *fmt, ...) PM_PRINTF(4, 5);

/* A password login to a server known to refuse passwords (Microsoft
 * 365): a DROPPED note with the steps to OAuth. */
void imp_check_password_host(struct imp_out *o, struct imp_acct *a,
    const char *server);

/* The account's password: written to secrets_dir by imp_write, never to
 * standard output. */
void imp_secret(struct imp_out *o, struct imp_acct *a, const char *secret);

/* Write the secret files into secrets_dir (may be NULL) and the
 * configuration to out; returns the exit status: 0, IMPORT_EXIT_DROPPED,
 * or EX_CANTCREAT with a message on standard error. */
int imp_write(struct imp_out *o, const char *secrets_dir, FILE *out);

/* Read the file to import, whole: 0, or EX_NOINPUT with a message on
 * standard error. */
int imp_read(const char *path, char **data_r, size_t *len_r);

/* s as a JSON string, for the facts dumps the tests compare. */
void json_str(FILE *f, const char *s);

/* The importers.  path is the file to read; facts: print the parsed
 * settings as JSON instead of a configuration.  They return the exit
 * status (78 on a syntax error, printed as FILE:LINE: message). */
int import_fetchmailrc(const char *path, const char *secrets_dir,
    int facts);
int import_getmailrc(const char *path, const char *secrets_dir, int facts);

/* `pullmail import ...`: argv[0] is "import". */
int import_main(int argc, char **argv);

#endif
