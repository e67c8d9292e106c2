/*
 * `pullmail import getmailrc`: read a getmail6 configuration (an INI file
 * as Python's RawConfigParser reads it, tuples written as Python literals)
 * and describe its retriever, destination and options as one pullmail
 * account.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "import.h"
#include "util.h"

struct ini_item {
	char		*key;		/* lowercased, as RawConfigParser does */
	char		*value;
	int		 line;
	struct ini_item	*next;
};

struct ini_section {
	char			*name;
	int			 line;
	struct ini_item		*items, **tail;
	struct ini_section	*next;
};

struct ini {
	struct arena		*ar;
	const char		*file;
	struct ini_section	*sections, **tail;
	char			*err;
	int			 last_line;
};

static int
ini_fail(struct ini *ini, int line, const char *fmt, ...) PM_PRINTF(3, 4);

/* Record the error as FILE:LINE: message; returns -1. */
static int
ini_fail(struct ini *ini, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ini->err = arena_printf(ini->ar, "%s:%d: %s", ini->file, line,
	    arena_vprintf(ini->ar, fmt, ap));
	va_end(ap);
	return -1;
}

/* s without leading and trailing blanks (and a CR). */
static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* The section named name, or NULL. */
static struct ini_section *
ini_section(const struct ini *ini, const char *name)
{
	struct ini_section *s;

	for (s = ini->sections; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Parse data as RawConfigParser does: [section] headers, key = value or
 * key: value, indented continuation lines, whole-line # and ; comments,
 * no duplicate sections or keys. */
static int
ini_parse(struct ini *ini, char *data)
{
	struct ini_section *cur = NULL;
	struct ini_item *last = NULL;
	char *line, *next, *p, *sep;
	int n = 0;

	ini->tail = &ini->sections;
	for (line = data; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		else if (*line == '\0')
			break;		/* after the last newline */
		n++;
		p = trim(line);
		if (*p == '#' || *p == ';') {
			continue;
		}
		if (*p == '\0') {
			last = NULL;
			continue;
		}
		if ((line[0] == ' ' || line[0] == '\t') && last != NULL) {
			last->value = arena_printf(ini->ar, "%s\n%s",
			    last->value, p);
			continue;
		}
		if (*p == '[') {
			char *e = strrchr(p, ']');

			if (e == NULL)
				return ini_fail(ini, n, "section header "
				    "without ']'");
			*e = '\0';
			if (ini_section(ini, p + 1) != NULL)
				return ini_fail(ini, n, "section [%s] appears "
				    "twice", p + 1);
			cur = arena_alloc(ini->ar, sizeof *cur);
			cur->name = arena_strdup(ini->ar, p + 1);
			cur->line = n;
			cur->tail = &cur->items;
			*ini->tail = cur;
			ini->tail = &cur->next;
			last = NULL;
			continue;
		}
		if (cur == NULL)
			return ini_fail(ini, n, "'%s' before the first [section]",
			    p);
		sep = strpbrk(p, "=:");
		if (sep == NULL || sep == p)
			return ini_fail(ini, n, "not 'key = value': '%s'", p);
		last = arena_alloc(ini->ar, sizeof *last);
		*sep = '\0';
		last->key = arena_strdup(ini->ar, trim(p));
		for (p = last->key; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		last->value = arena_strdup(ini->ar, trim(sep + 1));
		last->line = n;
		{
			struct ini_item *it;

			for (it = cur->items; it != NULL; it = it->next)
				if (strcmp(it->key, last->key) == 0)
					return ini_fail(ini, n, "'%s' appears "
					    "twice in [%s]", last->key,
					    cur->name);
		}
		*cur->tail = last;
		cur->tail = &last->next;
	}
	ini->last_line = n;
	return 0;
}

/* The item key of section s (which may be NULL), or NULL. */
static struct ini_item *
ini_item(struct ini_section *s, const char *key)
{
	struct ini_item *it;

	for (it = s != NULL ? s->items : NULL; it != NULL; it = it->next)
		if (strcmp(it->key, key) == 0)
			return it;
	return NULL;
}

static const char *
ini_get(struct ini_section *s, const char *key)
{
	struct ini_item *it = ini_item(s, key);

	return it != NULL ? it->value : NULL;
}

/* A Python boolean as RawConfigParser.getboolean reads it: 1 0 yes no
 * true false on off.  -1 when not one of them. */
static int
py_bool(const char *v)
{
	static const char *const t[] = { "1", "yes", "true", "on" };
	static const char *const f[] = { "0", "no", "false", "off" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, t[i]) == 0)
			return 1;
		if (strcasecmp(v, f[i]) == 0)
			return 0;
	}
	return -1;
}

/* A boolean item into *r, deflt when absent. */
static int
get_bool(struct ini *ini, struct ini_section *s, const char *key,
    int deflt, int *r)
{
	struct ini_item *it = ini_item(s, key);

	*r = deflt;
	if (it == NULL)
		return 0;
	if ((*r = py_bool(it->value)) < 0)
		return ini_fail(ini, it->line, "%s: '%s' is not a boolean "
		    "(true or false)", key, it->value);
	return 0;
}

/* A whole-number item into *r, deflt when absent. */
static int
get_int(struct ini *ini, struct ini_section *s, const char *key,
    long deflt, long *r)
{
	struct ini_item *it = ini_item(s, key);
	char *end;

	*r = deflt;
	if (it == NULL)
		return 0;
	errno = 0;
	*r = strtol(it->value, &end, 10);
	if (errno != 0 || end == it->value || *trim(end) != '\0')
		return ini_fail(ini, it->line, "%s: '%s' is not a whole "
		    "number", key, it->value);
	return 0;
}

/* A tuple of Python string literals, "('a', \"b\",)" or "()"; NULL-ended
 * list in *r.  The bare name ALL is returned as the one item "ALL" when
 * allow_all. */
static int
get_tuple(struct ini *ini, struct ini_section *s, const char *key,
    int allow_all, char ***r, size_t *n_r)
{
	struct ini_item *it = ini_item(s, key);
	const char *p;
	char **l = NULL, *buf;
	size_t n = 0, k;
	int paren = 0, need_comma = 0, commas = 0;

	*r = NULL;
	*n_r = 0;
	if (it == NULL || *it->value == '\0')
		return 0;
	p = it->value;
	if (allow_all && strcmp(p, "ALL") == 0) {
		*r = arena_alloc(ini->ar, 2 * sizeof **r);
		(*r)[0] = "ALL";
		*n_r = 1;
		return 0;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '(') {
		paren = 1;
		p++;
	}
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ')' && paren) {
			p++;
			break;
		}
		if (*p == '\0')
			break;
		if (need_comma) {
			if (*p != ',')
				goto bad;
			p++;
			need_comma = 0;
			commas++;
			continue;
		}
		if (*p != '\'' && *p != '"')
			goto bad;
		{
			char q = *p++;

			buf = arena_alloc(ini->ar, strlen(p) + 1);
			k = 0;
			while (*p != '\0' && *p != q) {
				if (*p == '\\' && p[1] != '\0') {
					p++;
					switch (*p) {
					case 'n': buf[k++] = '\n'; break;
					case 't': buf[k++] = '\t'; break;
					default: buf[k++] = *p;
					}
					p++;
				} else
					buf[k++] = *p++;
			}
			if (*p != q)
				goto bad;
			p++;
		}
		l = xrealloc(l, (n + 2) * sizeof *l);
		l[n++] = buf;
		need_comma = 1;
	}
	while (isspace((unsigned char)*p))
		p++;
	/* Python makes a tuple of a comma, or of () alone. */
	if (*p != '\0' || (commas == 0 && !(paren && n == 0)))
		goto bad;
	*r = arena_alloc(ini->ar, (n + 1) * sizeof **r);
	if (n > 0)
		memcpy(*r, l, n * sizeof *l);
	*n_r = n;
	free(l);
	return 0;
bad:
	free(l);
	return ini_fail(ini, it->line, "%s: not a tuple of quoted strings "
	    "such as (\"INBOX\", \"Sent\"): %s", key, it->value);
}

/* What the getmail file says, with getmail6's defaults. */
struct getmail {
	const char	*rtype, *server, *username, *password;
	long		 port, timeout;
	char	       **pwcmd, **mailboxes, **fingerprints;
	size_t		 npwcmd, nmailboxes, nfingerprints;
	int		 ssl, imap, xoauth2, use_peek, cram, kerberos, apop;
	const char	*ca_certs;
	const char	*dtype, *path, *host;
	char	       **arguments;
	size_t		 narguments;
	long		 dport;
	int		 read_all, delete, delivered_to, received;
	long		 delete_after, max_message_size, delete_bigger_than;
	int		 retriever_line, destination_line;
};

static const char *const retriever_types[] = {
	"SimpleIMAPSSLRetriever", "SimpleIMAPRetriever",
	"SimplePOP3SSLRetriever", "SimplePOP3Retriever",
	"BrokenUIDLPOP3SSLRetriever", "BrokenUIDLPOP3Retriever",
	"MultidropIMAPSSLRetriever", "MultidropIMAPRetriever",
	"MultidropPOP3SSLRetriever", "MultidropPOP3Retriever",
	"MultidropSDPSRetriever"
};
static const char *const destination_types[] = {
	"Maildir", "Mboxrd", "MDA_external", "MDA_lmtp", "MDA_qmaillocal",
	"MultiDestination", "MultiSorter", "MultiGuesser"
};

/* Whether v is one of the n strings of list. */
static int
one_of(const char *v, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v, list[i]) == 0)
			return 1;
	return 0;
}

/* The value of a key the section must have. */
static int
required(struct ini *ini, struct ini_section *s, const char *key,
    const char **r)
{
	if ((*r = ini_get(s, key)) == NULL)
		return ini_fail(ini, s->line, "[%s] needs %s", s->name, key);
	return 0;
}

/* The retriever, destination and options of the file, with getmail6's
 * defaults. */
static int
read_getmail(struct ini *ini, struct getmail *g)
{
	struct ini_section *r = ini_section(ini, "retriever");
	struct ini_section *d = ini_section(ini, "destination");
	struct ini_section *o = ini_section(ini, "options");
	int lmtp;

	memset(g, 0, sizeof *g);
	if (r == NULL)
		return ini_fail(ini, ini->last_line, "no [retriever] section");
	if (d == NULL)
		return ini_fail(ini, ini->last_line, "no [destination] "
		    "section");
	g->retriever_line = r->line;
	g->destination_line = d->line;
	if (required(ini, r, "type", &g->rtype) < 0)
		return -1;
	if (!one_of(g->rtype, retriever_types, sizeof retriever_types /
	    sizeof retriever_types[0]))
		return ini_fail(ini, ini_item(r, "type")->line, "unknown "
		    "retriever type '%s'", g->rtype);
	g->imap = strstr(g->rtype, "IMAP") != NULL;
	g->ssl = strstr(g->rtype, "SSL") != NULL;
	if (required(ini, r, "server", &g->server) < 0 ||
	    required(ini, r, "username", &g->username) < 0 ||
	    get_int(ini, r, "port", g->imap ? (g->ssl ? 993 : 143) :
	    (g->ssl ? 995 : 110), &g->port) < 0 ||
	    get_int(ini, r, "timeout", 180, &g->timeout) < 0 ||
	    get_tuple(ini, r, "password_command", 0, &g->pwcmd,
	    &g->npwcmd) < 0 ||
	    get_bool(ini, r, "use_xoauth2", 0, &g->xoauth2) < 0 ||
	    get_bool(ini, r, "use_cram_md5", 0, &g->cram) < 0 ||
	    get_bool(ini, r, "use_kerberos", 0, &g->kerberos) < 0 ||
	    get_bool(ini, r, "use_apop", 0, &g->apop) < 0 ||
	    get_bool(ini, r, "use_peek", 1, &g->use_peek) < 0 ||
	    get_tuple(ini, r, "ssl_fingerprints", 0, &g->fingerprints,
	    &g->nfingerprints) < 0)
		return -1;
	g->password = ini_get(r, "password");
	g->ca_certs = ini_get(r, "ca_certs");
	if (g->imap) {
		if (get_tuple(ini, r, "mailboxes", 1, &g->mailboxes,
		    &g->nmailboxes) < 0)
			return -1;
		if (ini_item(r, "mailboxes") == NULL) {
			g->mailboxes = arena_alloc(ini->ar, 2 * sizeof (char *));
			g->mailboxes[0] = "INBOX";
			g->nmailboxes = 1;
		}
	}
	if (required(ini, d, "type", &g->dtype) < 0)
		return -1;
	if (!one_of(g->dtype, destination_types, sizeof destination_types /
	    sizeof destination_types[0]))
		return ini_fail(ini, ini_item(d, "type")->line, "unknown "
		    "destination type '%s'", g->dtype);
	lmtp = strcmp(g->dtype, "MDA_lmtp") == 0;
	if (lmtp) {
		/* smtplib.LMTP_PORT, which getmail6 takes by default. */
		if (required(ini, d, "host", &g->host) < 0 ||
		    get_int(ini, d, "port", 2003, &g->dport) < 0)
			return -1;
	} else if (strcmp(g->dtype, "Maildir") == 0 ||
	    strcmp(g->dtype, "Mboxrd") == 0 ||
	    strcmp(g->dtype, "MDA_external") == 0) {
		if (required(ini, d, "path", &g->path) < 0)
			return -1;
		if (get_tuple(ini, d, "arguments", 0, &g->arguments,
		    &g->narguments) < 0)
			return -1;
	}
	if (get_bool(ini, o, "read_all", 1, &g->read_all) < 0 ||
	    get_bool(ini, o, "delete", 0, &g->delete) < 0 ||
	    get_bool(ini, o, "delivered_to", 1, &g->delivered_to) < 0 ||
	    get_bool(ini, o, "received", 1, &g->received) < 0 ||
	    get_int(ini, o, "delete_after", 0, &g->delete_after) < 0 ||
	    get_int(ini, o, "delete_bigger_than", 0,
	    &g->delete_bigger_than) < 0 ||
	    get_int(ini, o, "max_message_size", 0, &g->max_message_size) < 0)
		return -1;
	return 0;
}

/* A JSON list member of the facts. */
static void
facts_tuple(FILE *f, const char *key, char **l, size_t n)
{
	size_t i;

	fprintf(f, ", \"%s\": [", key);
	for (i = 0; i < n; i++) {
		fputs(i > 0 ? ", " : "", f);
		json_str(f, l[i]);
	}
	fputc(']', f);
}

/* The settings read, with getmail6's defaults, as JSON for the test. */
static void
getmail_facts(const struct getmail *g, FILE *f)
{
	fputs("{\"type\": ", f);
	json_str(f, g->rtype);
	fputs(", \"server\": ", f);
	json_str(f, g->server);
	fprintf(f, ", \"port\": %ld, \"timeout\": %ld", g->port, g->timeout);
	fputs(", \"username\": ", f);
	json_str(f, g->username);
	fprintf(f, ", \"has_password\": %s", g->password != NULL ? "true" :
	    "false");
	facts_tuple(f, "password_command", g->pwcmd, g->npwcmd);
	if (g->imap) {
		facts_tuple(f, "mailboxes", g->mailboxes, g->nmailboxes);
		fprintf(f, ", \"use_peek\": %s, \"use_xoauth2\": %s",
		    g->use_peek ? "true" : "false",
		    g->xoauth2 ? "true" : "false");
	}
	if (g->ssl) {
		fputs(", \"ca_certs\": ", f);
		json_str(f, g->ca_certs);
		facts_tuple(f, "ssl_fingerprints", g->fingerprints,
		    g->nfingerprints);
	}
	fputs(", \"destination\": ", f);
	json_str(f, g->dtype);
	if (g->path != NULL) {
		fputs(", \"path\": ", f);
		json_str(f, g->path);
	}
	if (strcmp(g->dtype, "MDA_external") == 0)
		facts_tuple(f, "arguments", g->arguments, g->narguments);
	if (g->host != NULL) {
		fputs(", \"host\": ", f);
		json_str(f, g->host);
		fprintf(f, ", \"dport\": %ld", g->dport);
	}
	fprintf(f, ", \"read_all\": %s, \"delete\": %s, \"delete_after\": %ld, "
	    "\"max_message_size\": %ld, \"delivered_to\": %s, "
	    "\"received\": %s}\n", g->read_all ? "true" : "false",
	    g->delete ? "true" : "false", g->delete_after,
	    g->max_message_size, g->delivered_to ? "true" : "false",
	    g->received ? "true" : "false");
}

/* One MDA argument as pullmail's mda: splits it back: getmail's
 * %(sender) and %(recipient) become %F and %T.  NULL: a substitution
 * pullmail does not make. */
static char *
mda_word(struct arena *ar, const char *arg)
{
	char *out = arena_alloc(ar, 2 * strlen(arg) + 3), *o = out;
	const char *p;
	int quote = *arg == '\0' || strpbrk(arg, " \t\"'\\") != NULL;

	if (quote)
		*o++ = '"';
	for (p = arg; *p != '\0'; p++) {
		if (strncmp(p, "%(sender)", 9) == 0) {
			memcpy(o, "%F", 2);
			o += 2;
			p += 8;
			continue;
		}
		if (strncmp(p, "%(recipient)", 12) == 0) {
			memcpy(o, "%T", 2);
			o += 2;
			p += 11;
			continue;
		}
		if (p[0] == '%' && p[1] == '(')
			return NULL;
		if (quote && (*p == '"' || *p == '\\'))
			*o++ = '\\';
		*o++ = *p;
	}
	if (quote)
		*o++ = '"';
	return out;
}

/* Where the mail goes: deliver. */
static void
emit_destination(struct imp_out *o, struct imp_acct *a,
    const struct getmail *g)
{
	size_t i;

	if (strcmp(g->dtype, "Maildir") == 0)
		imp_set(o, a, "deliver", "maildir:%s", g->path);
	else if (strcmp(g->dtype, "Mboxrd") == 0)
		imp_set(o, a, "deliver", "mbox:%s", g->path);
	else if (strcmp(g->dtype, "MDA_lmtp") == 0) {
		if (g->host[0] == '/')
			imp_set(o, a, "deliver", "lmtp:%s", g->host);
		else
			imp_set(o, a, "deliver", "lmtp:%s:%ld", g->host,
			    g->dport);
	} else if (strcmp(g->dtype, "MDA_external") == 0) {
		char *cmd = mda_word(&o->ar, g->path), *w;

		for (i = 0; cmd != NULL && i < g->narguments; i++) {
			if ((w = mda_word(&o->ar, g->arguments[i])) == NULL) {
				cmd = NULL;
				break;
			}
			cmd = arena_printf(&o->ar, "%s %s", cmd, w);
		}
		if (cmd != NULL)
			imp_set(o, a, "deliver", "mda:%s", cmd);
		else
			imp_note(o, a, 1, "MDA_external: an argument uses a "
			    "getmail substitution other than %%(sender) and "
			    "%%(recipient), which pullmail passes as %%F and "
			    "%%T: give the MDA what it needs another way");
	} else
		imp_note(o, a, 1, "destination %s: pullmail has one target "
		    "per account (maildir:, mbox:, mda:, smtp:, lmtp:); sort "
		    "with procmail or maildrop as the mda instead", g->dtype);
}

/* The login: password, password_command or a token command. */
static void
emit_login(struct imp_out *o, struct imp_acct *a, const struct getmail *g)
{
	char *cmd = NULL;
	size_t i;
	int plain = 1;

	for (i = 0; i < g->npwcmd; i++) {
		if (strpbrk(g->pwcmd[i], " \t") != NULL || *g->pwcmd[i] == '\0')
			plain = 0;
		cmd = cmd == NULL ? arena_strdup(&o->ar, g->pwcmd[i]) :
		    arena_printf(&o->ar, "%s %s", cmd, g->pwcmd[i]);
	}
	if (cmd != NULL && !plain) {
		imp_note(o, a, 1, "password_command: an argument holds a blank, "
		    "and pullmail splits the command at blanks; wrap it in a "
		    "script");
		cmd = NULL;
	}
	if (g->cram || g->kerberos || g->apop) {
		imp_note(o, a, 1, "%s: pullmail logs in with a password (PLAIN "
		    "or LOGIN) or OAuth 2.0 only", g->cram ? "use_cram_md5" :
		    g->kerberos ? "use_kerberos" : "use_apop");
		return;
	}
	if (g->xoauth2) {
		imp_set(o, a, "auth", "xoauth2");
		if (cmd != NULL) {
			imp_set(o, a, "oauth_token_command", "%s", cmd);
			imp_note(o, a, 0, "use_xoauth2: the password_command "
			    "printed the access token, and pullmail runs it "
			    "before every login; pullmail can also get tokens "
			    "itself (oauth_provider in pullmail.conf(5))");
		} else if (g->npwcmd == 0)
			imp_note(o, a, 1, "use_xoauth2 without password_command: "
			    "set oauth_provider, oauth_client_id (and for "
			    "Microsoft 365 oauth_tenant) and run `pullmail "
			    "authorize %s`, or name the command that prints "
			    "the token with oauth_token_command", a->name);
		return;
	}
	imp_check_password_host(o, a, g->server);
	if (cmd != NULL)
		imp_set(o, a, "password_command", "%s", cmd);
	else if (g->password != NULL)
		imp_secret(o, a, g->password);
	else if (g->npwcmd == 0)
		imp_note(o, a, 1, "no password in the file: getmail asked for "
		    "it (or read a keyring); give it with password_file, "
		    "password_command or password_credential");
}

/* Options with no pullmail equivalent, by section. */
struct gm_unmapped {
	const char	*section, *key;
	int		 dropped;
	const char	*why;
};

static const struct gm_unmapped gm_unmapped[] = {
	{ "retriever", "move_on_delete", 1, "pullmail deletes (keep = no) "
	    "or keeps; it does not move messages to another folder" },
	{ "retriever", "imap_search", 1, "pullmail fetches every message it "
	    "has not delivered, not a search" },
	{ "retriever", "imap_on_delete", 0, "pullmail flags deleted "
	    "messages \\Deleted and expunges (see expunge)" },
	{ "retriever", "record_mailbox", 0, "pullmail can add a Received: "
	    "line naming the folder (add_received)" },
	{ "retriever", "delete_dup_msgids", 0, "pullmail tracks messages by "
	    "UID, not Message-ID" },
	{ "retriever", "keyfile", 0, "pullmail presents no TLS client "
	    "certificate" },
	{ "retriever", "certfile", 0, "pullmail presents no TLS client "
	    "certificate" },
	{ "retriever", "ssl_version", 0, "pullmail takes GnuTLS's default "
	    "TLS versions" },
	{ "retriever", "ssl_ciphers", 0, "pullmail takes GnuTLS's default "
	    "ciphers" },
	{ "retriever", "ssl_cert_hostname", 0, "pullmail checks the "
	    "certificate against server: write the name it holds as "
	    "server" },
	{ "retriever", "getmaildir", 0, "pullmail keeps its state in "
	    "state_dir; what getmail already fetched is not imported" },
	{ "destination", "user", 0, "pullmail delivers as the user running "
	    "it" },
	{ "destination", "group", 0, "pullmail delivers as the user running "
	    "it" },
	{ "destination", "filemode", 0, "pullmail creates Maildir files "
	    "0600" },
	{ "destination", "locktype", 0, "pullmail takes a dotlock and an "
	    "fcntl lock together" },
	{ "destination", "allow_root_commands", 0, "pullmail runs the MDA "
	    "as the user running it" },
	{ "destination", "unixfrom", 0, "pullmail's MDA gets the message "
	    "without a From_ line" },
	{ "destination", "ignore_stderr", 0, "pullmail logs the MDA's error "
	    "output and goes by its exit status" },
	{ "destination", "pipe_stdout", 0, "pullmail logs the MDA's output" },
	{ "destination", "fallback", 0, "pullmail keeps the mail on the "
	    "server when the LMTP server refuses it" },
	{ "options", "delete_after", 1, "pullmail deletes a message once it "
	    "is delivered (keep = no) or never" },
	{ "options", "delete_bigger_than", 1, "pullmail leaves messages over "
	    "size_limit on the server" },
	{ "options", "max_messages_per_session", 0, "pullmail fetches every "
	    "new message in one run" },
	{ "options", "max_bytes_per_session", 0, "pullmail fetches every new "
	    "message in one run" },
	{ "options", "message_log", 0, "pullmail logs to standard error or "
	    "syslog (--syslog)" },
	{ "options", "message_log_syslog", 0, "run pullmail with --syslog" },
	{ "options", "message_log_verbose", 0, "run pullmail with -v" },
	{ "options", "verbose", 0, "run pullmail with -v or -q" },
	{ "options", "fingerprint", 0, "pullmail logs no fingerprints" },
	{ "options", "use_netrc", 1, "pullmail reads no .netrc: give the "
	    "password with password_file" },
	{ "options", "netrc_file", 0, "pullmail reads no .netrc" },
	{ "options", "skip_imap_fetch_size", 0, "pullmail takes the size "
	    "the server reports" },
	{ "options", "to_oldmail_on_each_mail", 0, "pullmail records every "
	    "batch as it is made durable" },
};

/* Keys the import carried over (or judged) itself. */
static const char *const gm_known[] = {
	"retriever:type", "retriever:server", "retriever:port",
	"retriever:username", "retriever:password",
	"retriever:password_command", "retriever:mailboxes",
	"retriever:use_peek", "retriever:use_xoauth2", "retriever:use_cram_md5",
	"retriever:use_kerberos", "retriever:use_apop", "retriever:timeout",
	"retriever:ca_certs", "retriever:ssl_fingerprints", "destination:type",
	"destination:path", "destination:arguments", "destination:host",
	"destination:port", "destination:override", "options:read_all",
	"options:delete", "options:max_message_size", "options:delivered_to",
	"options:received",
};

/* A note for every section and key not carried over yet. */
static void
emit_rest(struct imp_out *o, struct imp_acct *a, const struct ini *ini)
{
	const struct ini_section *s;
	const struct ini_item *it;
	size_t i;

	for (s = ini->sections; s != NULL; s = s->next) {
		if (strncasecmp(s->name, "filter", 6) == 0) {
			imp_note(o, a, 1, "[%s]: pullmail runs no filters; "
			    "filter with procmail or maildrop as the mda",
			    s->name);
			continue;
		}
		if (strcmp(s->name, "retriever") != 0 &&
		    strcmp(s->name, "destination") != 0 &&
		    strcmp(s->name, "options") != 0) {
			imp_note(o, a, 0, "[%s]: not a getmail section", s->name);
			continue;
		}
		for (it = s->items; it != NULL; it = it->next) {
			char *qk = arena_printf(&o->ar, "%s:%s", s->name,
			    it->key);

			if (one_of(qk, gm_known, sizeof gm_known /
			    sizeof gm_known[0]))
				continue;
			for (i = 0; i < sizeof gm_unmapped /
			    sizeof gm_unmapped[0]; i++)
				if (strcmp(gm_unmapped[i].section, s->name) ==
				    0 && strcmp(gm_unmapped[i].key, it->key) ==
				    0)
					break;
			if (i == sizeof gm_unmapped / sizeof gm_unmapped[0])
				imp_note(o, a, 0, "%s (line %d): not a getmail6 "
				    "option pullmail knows", it->key, it->line);
			else
				imp_note(o, a, gm_unmapped[i].dropped, "%s "
				    "(line %d): %s", it->key, it->line,
				    gm_unmapped[i].why);
		}
	}
}

/* The one account of a getmail file. */
static void
emit_getmail(struct imp_out *o, const struct getmail *g,
    struct ini *ini, const char *file)
{
	struct imp_acct *a;
	size_t i;
	const char *override;

	a = imp_account(o, arena_printf(&o->ar, "%s@%s", g->username,
	    g->server));
	imp_note(o, a, 0, "from %s: %s", file, g->rtype);
	if (strncmp(g->rtype, "Multidrop", 9) == 0)
		imp_note(o, a, 1, "%s: getmail sorted this mailbox to several "
		    "recipients by the envelope header; pullmail delivers an "
		    "account's mail to one recipient", g->rtype);
	if (strncmp(g->rtype, "BrokenUIDL", 10) == 0 && g->delete)
		imp_set(o, a, "fetch_all", "yes");
	else if (strncmp(g->rtype, "BrokenUIDL", 10) == 0)
		imp_note(o, a, 0, "%s: pullmail refuses a POP3 server without "
		    "UIDL unless fetch_all = yes, which needs delete = true to "
		    "fetch each message once", g->rtype);
	imp_set(o, a, "server", "%s", g->server);
	imp_set(o, a, "protocol", "%s", g->imap ? "imap" : "pop3");
	if (g->port != (g->imap ? (g->ssl ? 993 : 143) : (g->ssl ? 995 : 110)))
		imp_set(o, a, "port", "%ld", g->port);
	imp_set(o, a, "tls", "%s", g->ssl ? "implicit" : "none");
	if (!g->ssl)
		imp_note(o, a, 0, "%s speaks without TLS, and so does this "
		    "account; if the server offers STARTTLS, set tls = "
		    "starttls", g->rtype);
	if (g->ca_certs != NULL)
		imp_set(o, a, "ca_file", "%s", g->ca_certs);
	if (g->nfingerprints > 0) {
		const char *fp = g->fingerprints[0];
		char hex[65];
		size_t n = 0;

		for (; *fp != '\0' && n < 65; fp++)
			if (isxdigit((unsigned char)*fp))
				hex[n++] = (char)tolower((unsigned char)*fp);
			else if (*fp != ':')
				n = 65;
		if (n == 64) {
			hex[64] = '\0';
			imp_set(o, a, "tls_fingerprint", "sha256:%s", hex);
		} else
			imp_note(o, a, 0, "ssl_fingerprints: %s is not a "
			    "SHA-256 fingerprint, which tls_fingerprint takes",
			    g->fingerprints[0]);
		if (g->nfingerprints > 1)
			imp_note(o, a, 0, "ssl_fingerprints: pullmail pins one "
			    "certificate; the first is written");
	}
	imp_set(o, a, "user", "%s", g->username);
	emit_login(o, a, g);
	if (g->imap) {
		if (g->nmailboxes == 0)
			imp_note(o, a, 0, "mailboxes = (): getmail fetched no "
			    "folder; pullmail fetches INBOX");
		else if (g->nmailboxes == 1 && strcmp(g->mailboxes[0], "ALL") == 0)
			imp_note(o, a, 1, "mailboxes = ALL: pullmail fetches the "
			    "folders it is given; name each with folder");
		else
			for (i = 0; i < g->nmailboxes; i++)
				imp_set(o, a, "folder", "%s", g->mailboxes[i]);
		if (!g->use_peek)
			imp_set(o, a, "mark_seen", "yes");
	}
	imp_set(o, a, "keep", "%s", g->delete ? "no" : "yes");
	if (g->read_all && !g->delete)
		imp_note(o, a, 0, "read_all: getmail fetched every message on "
		    "each run; pullmail delivers each message once");
	else if (!g->read_all && !g->delete)
		imp_note(o, a, 0, "read_all = false: pullmail too fetches only "
		    "the messages it has not delivered, but has no record of "
		    "getmail's: its first run delivers the messages already on "
		    "the server");
	if (g->max_message_size > 0)
		imp_set(o, a, "size_limit", "%ld", g->max_message_size);
	emit_destination(o, a, g);
	override = ini_get(ini_section(ini, "destination"), "override");
	if (override != NULL && strcmp(g->dtype, "MDA_lmtp") == 0)
		imp_set(o, a, "recipient", "%s", override);
	if (g->delivered_to)
		imp_set(o, a, "add_delivered_to", "yes");
	if (g->received)
		imp_set(o, a, "add_received", "yes");
	if (g->timeout != 180 && g->timeout >= 1 && g->timeout <= 86400)
		imp_set(o, a, "timeout", "%ld", g->timeout);
	emit_rest(o, a, ini);
}

int
import_getmailrc(const char *path, const char *secrets_dir, int facts)
{
	struct imp_out o;
	struct ini ini;
	struct getmail g;
	char *data = NULL;
	size_t len;
	int code;

	if ((code = imp_read(path, &data, &len)) != 0)
		return code;
	imp_init(&o, "getmailrc", path);
	memset(&ini, 0, sizeof ini);
	ini.ar = &o.ar;
	ini.file = path;
	if (memchr(data, '\0', len) != NULL)
		code = ini_fail(&ini, 1, "NUL byte in the file");
	else
		code = ini_parse(&ini, data);
	if (code == 0)
		code = read_getmail(&ini, &g);
	if (code < 0) {
		fprintf(stderr, "%s\n", ini.err);
		code = EX_CONFIG;
	} else if (facts) {
		getmail_facts(&g, stdout);
		code = 0;
	} else {
		emit_getmail(&o, &g, &ini, path);
		code = imp_write(&o, secrets_dir, stdout);
	}
	explicit_bzero(data, len);
	free(data);
	imp_free(&o);
	return code;
}
