/*
 * `pullmail import`: the command line and the output builder shared by
 * the fetchmail and getmail importers.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "import.h"
#include "util.h"

struct imp_line {
	char		*key;		/* NULL: a comment */
	char		*text;		/* the value, or the comment */
	int		 dropped;
	struct imp_line	*next;
};

void *
arena_alloc(struct arena *ar, size_t n)
{
	void *p = xcalloc(1, n == 0 ? 1 : n);

	if (ar->n == ar->cap) {
		ar->cap = ar->cap == 0 ? 64 : ar->cap * 2;
		ar->ptrs = xrealloc(ar->ptrs, ar->cap * sizeof *ar->ptrs);
	}
	ar->ptrs[ar->n++] = p;
	return p;
}

char *
arena_strndup(struct arena *ar, const char *s, size_t n)
{
	char *p = arena_alloc(ar, n + 1);

	memcpy(p, s, n);
	return p;
}

char *
arena_strdup(struct arena *ar, const char *s)
{
	return s == NULL ? NULL : arena_strndup(ar, s, strlen(s));
}

char *
arena_vprintf(struct arena *ar, const char *fmt, va_list ap)
{
	char *s = xvasprintf(fmt, ap), *p;

	p = arena_strdup(ar, s);
	free(s);
	return p;
}

char *
arena_printf(struct arena *ar, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = arena_vprintf(ar, fmt, ap);
	va_end(ap);
	return p;
}

int
imp_read(const char *path, char **data_r, size_t *len_r)
{
	if (read_small_file(path, 16 * 1024 * 1024, data_r, len_r) < 0) {
		fprintf(stderr, "pullmail: %s: %s\n", path, strerror(errno));
		return EX_NOINPUT;
	}
	return 0;
}

void
arena_free(struct arena *ar)
{
	size_t i;

	for (i = 0; i < ar->n; i++)
		free(ar->ptrs[i]);
	free(ar->ptrs);
	memset(ar, 0, sizeof *ar);
}

void
imp_init(struct imp_out *o, const char *kind, const char *source)
{
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->source = source;
	o->top_tail = &o->top;
	o->defaults_tail = &o->defaults;
	o->acct_tail = &o->accounts;
}

void
imp_free(struct imp_out *o)
{
	struct imp_acct *a;

	/* Passwords do not linger in freed memory. */
	for (a = o->accounts; a != NULL; a = a->next)
		if (a->secret != NULL)
			explicit_bzero(a->secret, strlen(a->secret));
	arena_free(&o->ar);
}

/* Whether c may stand in an account name (pullmail.conf(5)). */
static int
name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	    c == '+' || c == '@';
}

struct imp_acct *
imp_account(struct imp_out *o, const char *hint)
{
	struct imp_acct *a, *b;
	char *base, *name;
	size_t i;
	int n = 1, clash;

	base = arena_strdup(&o->ar, hint != NULL && *hint != '\0' ? hint :
	    "account");
	for (i = 0; base[i] != '\0'; i++)
		if (!name_char((unsigned char)base[i]))
			base[i] = '-';
	if (base[0] == '.')
		base[0] = '_';
	name = base;
	do {
		clash = 0;
		for (b = o->accounts; b != NULL; b = b->next)
			if (strcmp(b->name, name) == 0)
				clash = 1;
		if (clash)
			name = arena_printf(&o->ar, "%s-%d", base, ++n);
	} while (clash);
	a = arena_alloc(&o->ar, sizeof *a);
	a->name = name;
	a->tail = &a->lines;
	*o->acct_tail = a;
	o->acct_tail = &a->next;
	return a;
}

/* Append l to a, to the notes at the top, or to [defaults]. */
static void
add_line(struct imp_out *o, struct imp_acct *a, struct imp_line *l,
    int comment_at_top)
{
	struct imp_line ***tail;

	if (a != NULL)
		tail = &a->tail;
	else if (comment_at_top)
		tail = &o->top_tail;
	else
		tail = &o->defaults_tail;
	**tail = l;
	*tail = &l->next;
}

void
imp_set(struct imp_out *o, struct imp_acct *a, const char *key,
    const char *fmt, ...)
{
	struct imp_line *l = arena_alloc(&o->ar, sizeof *l);
	va_list ap;

	l->key = arena_strdup(&o->ar, key);
	va_start(ap, fmt);
	l->text = arena_vprintf(&o->ar, fmt, ap);
	va_end(ap);
	if (strpbrk(l->text, "\r\n") != NULL) {
		imp_note(o, a, 1, "%s: the value holds a line break, which a "
		    "pullmail.conf line cannot", key);
		return;
	}
	add_line(o, a, l, 0);
}

void
imp_note(struct imp_out *o, struct imp_acct *a, int dropped,
    const char *fmt, ...)
{
	struct imp_line *l = arena_alloc(&o->ar, sizeof *l);
	va_list ap;

	va_start(ap, fmt);
	l->text = arena_vprintf(&o->ar, fmt, ap);
	va_end(ap);
	l->dropped = dropped;
	if (dropped)
		o->dropped++;
	add_line(o, a, l, 1);
}

void
imp_check_password_host(struct imp_out *o, struct imp_acct *a,
    const char *server)
{
	if (strstr(server, "office365.com") == NULL &&
	    strstr(server, "outlook.office.com") == NULL)
		return;
	imp_note(o, a, 1, "%s (Microsoft 365) refuses passwords: register "
	    "an app in Microsoft Entra ID, give it IMAP.AccessAsApp or "
	    "POP.AccessAsApp with admin consent, register its service "
	    "principal in Exchange (New-ServicePrincipal) with FullAccess to "
	    "the mailbox, and set oauth_provider = microsoft, oauth_tenant, "
	    "oauth_client_id and oauth_client_secret_file instead of the "
	    "password (see pullmail.conf(5))", server);
}

void
imp_secret(struct imp_out *o, struct imp_acct *a, const char *secret)
{
	a->secret = arena_strdup(&o->ar, secret);
}

/* A value as pullmail.conf reads it back: quoted when it has edge blanks
 * or starts with a quote. */
static void
put_value(FILE *f, const char *v)
{
	size_t n = strlen(v);

	if (n > 0 && v[0] != '"' && v[0] != ' ' && v[0] != '\t' &&
	    v[n - 1] != ' ' && v[n - 1] != '\t') {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

/* Comment text, folded at blanks to lines of at most 76 columns. */
static void
put_comment(FILE *f, const char *prefix, const struct imp_line *l)
{
	const char *p = l->text, *q, *cut;
	int first = 1;
	size_t width;

	while (*p != '\0') {
		width = 74 - (first && l->dropped ? 9 : 0);
		cut = p + strlen(p);
		if (strlen(p) > width) {
			/* The last blank that fits, else the first after. */
			for (q = p + width; q > p && *q != ' '; q--)
				;
			if (q == p && (q = strchr(p + width, ' ')) == NULL)
				q = p + strlen(p);
			cut = q;
		}
		fprintf(f, "%s# %s%.*s\n", prefix, first && l->dropped ?
		    "DROPPED: " : "", (int)(cut - p), p);
		first = 0;
		p = cut;
		while (*p == ' ')
			p++;
	}
}

/* The lines of a section, each behind prefix ("#" when disabled). */
static void
put_lines(FILE *f, const char *prefix, const struct imp_line *l)
{
	for (; l != NULL; l = l->next) {
		if (l->key == NULL) {
			put_comment(f, prefix, l);
			continue;
		}
		fprintf(f, "%s%s = ", prefix, l->key);
		put_value(f, l->text);
		fputc('\n', f);
	}
}

/* Write a's password to DIR/NAME.password, created 0600; the path, or
 * NULL with a message on standard error. */
static char *
write_secret(struct imp_out *o, const char *dir, struct imp_acct *a)
{
	char *path = arena_printf(&o->ar, "%s/%s.password", dir, a->name);
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		fprintf(stderr, "pullmail: %s: %s%s\n", path, strerror(errno),
		    errno == EEXIST ? " (remove it or choose another "
		    "--secrets-dir: an existing file is never overwritten)" :
		    "");
		return NULL;
	}
	if (write_full(fd, a->secret, strlen(a->secret)) < 0 ||
	    write_full(fd, "\n", 1) < 0 || fsync(fd) < 0) {
		fprintf(stderr, "pullmail: %s: %s\n", path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	close(fd);
	return path;
}

int
imp_write(struct imp_out *o, const char *secrets_dir, FILE *f)
{
	struct imp_acct *a;
	char **paths;
	size_t n = 0, i;
	int code = 0;

	for (a = o->accounts; a != NULL; a = a->next)
		n++;
	paths = xcalloc(n + 1, sizeof *paths);
	/* Secrets first: no configuration naming files that failed. */
	for (a = o->accounts, i = 0; a != NULL; a = a->next, i++) {
		if (a->secret == NULL || secrets_dir == NULL)
			continue;
		if ((paths[i] = write_secret(o, secrets_dir, a)) == NULL) {
			free(paths);
			return EX_CANTCREAT;
		}
	}
	fprintf(f, "# pullmail configuration imported from %s %s by "
	    "`pullmail import %s`.\n# Check it with `pullmail -c FILE "
	    "--check-config`; see pullmail.conf(5).\n", o->kind, o->source,
	    o->kind);
	if (o->dropped > 0)
		fprintf(f, "# %u setting%s had no pullmail equivalent and "
		    "change%s which mail is fetched,\n# where it goes or whether "
		    "it is deleted: see the lines marked DROPPED.\n", o->dropped,
		    o->dropped == 1 ? "" : "s", o->dropped == 1 ? "s" : "");
	if (o->top != NULL) {
		fputc('\n', f);
		put_lines(f, "", o->top);
	}
	if (o->defaults != NULL) {
		fputs("\n[defaults]\n", f);
		put_lines(f, "", o->defaults);
	}
	for (a = o->accounts, i = 0; a != NULL; a = a->next, i++) {
		const char *pre = a->disabled ? "#" : "";

		fprintf(f, "\n%s[account %s]\n", pre, a->name);
		put_lines(f, pre, a->lines);
		if (a->secret == NULL)
			continue;
		if (paths[i] != NULL) {
			fprintf(f, "%spassword_file = ", pre);
			put_value(f, paths[i]);
			fputc('\n', f);
		} else
			fprintf(f, "%s# The password was not exported: write it "
			    "to a file only you can read\n%s# (chmod 600) and "
			    "name it with password_file, or run the import\n%s# "
			    "again with --secrets-dir DIR.\n", pre, pre, pre);
	}
	free(paths);
	if (fflush(f) != 0 || ferror(f)) {
		fprintf(stderr, "pullmail: writing the configuration: %s\n",
		    strerror(errno));
		return EX_IOERR;
	}
	if (o->dropped > 0) {
		fprintf(stderr, "pullmail: %u important setting%s of %s could "
		    "not be carried over: see the lines marked DROPPED\n",
		    o->dropped, o->dropped == 1 ? "" : "s", o->source);
		code = IMPORT_EXIT_DROPPED;
	}
	return code;
}

void
json_str(FILE *f, const char *s)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char import_usage[] =
    "usage: pullmail import fetchmailrc [--secrets-dir DIR] [FILE]\n"
    "       pullmail import getmailrc [--secrets-dir DIR] FILE\n";

int
import_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "secrets-dir", required_argument, NULL, 's' },
		{ "dump-facts", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *secrets_dir = NULL, *kind, *file;
	char *deflt = NULL;
	int ch, facts = 0, code;

	if (argc < 2) {
		fputs(import_usage, stderr);
		return EX_USAGE;
	}
	kind = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			secrets_dir = optarg;
			break;
		case 'F':
			facts = 1;
			break;
		case 'h':
			fputs(import_usage, stdout);
			return 0;
		default:
			fputs(import_usage, stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1) {
		fputs(import_usage, stderr);
		return EX_USAGE;
	}
	file = argc == 1 ? argv[0] : NULL;
	if (strcmp(kind, "fetchmailrc") == 0) {
		if (file == NULL) {
			const char *home = getenv("HOME");

			if (home == NULL || *home == '\0') {
				fputs("pullmail: HOME is not set: name the "
				    "fetchmailrc to import\n", stderr);
				return EX_USAGE;
			}
			file = deflt = xasprintf("%s/.fetchmailrc", home);
		}
		code = import_fetchmailrc(file, secrets_dir, facts);
	} else if (strcmp(kind, "getmailrc") == 0 && file != NULL)
		code = import_getmailrc(file, secrets_dir, facts);
	else {
		fputs(import_usage, stderr);
		code = EX_USAGE;
	}
	free(deflt);
	return code;
}
