/*
 * `pullmail import fetchmailrc`: read a fetchmail run control file with
 * fetchmail's own grammar (poll/skip/defaults entries, set lines, noise
 * words, NAME state after user/password/is/to) and describe each
 * server/user pair as a pullmail account.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "import.h"
#include "util.h"

enum tok {
	T_EOF, T_STRING, T_NUMBER, T_MAP, T_PROTO, T_AUTHTYPE, T_NOISE,
	K_SET, K_LOGFILE, K_IDFILE, K_PIDFILE, K_DAEMON, K_SYSLOG,
	K_INVISIBLE, K_SHOWDOTS, K_POSTMASTER, K_BOUNCEMAIL, K_SPAMBOUNCE,
	K_SOFTBOUNCE, K_WARNINGS, K_TRACEPOLLS, K_DEFAULTS, K_POLL, K_SKIP,
	K_VIA, K_AKA, K_LOCALDOMAINS, K_PROTOCOL, K_SERVICE, K_PORT,
	K_INTERVAL, K_AUTH, K_TIMEOUT, K_ENVELOPE, K_QVIRTUAL, K_PRINCIPAL,
	K_ESMTPNAME, K_ESMTPPASSWORD, K_BADHEADER, K_ACCEPT, K_REJECT,
	K_USER, K_PASSWORD, K_PASSWORDFILE, K_FOLDER, K_SMTPHOST,
	K_FETCHDOMAINS, K_SMTPADDRESS, K_SMTPNAME, K_ANTISPAM, K_MDA, K_BSMTP,
	K_LMTP, K_PRECONNECT, K_POSTCONNECT, K_INTERFACE, K_MONITOR,
	K_PLUGIN, K_PLUGOUT, K_BATCHLIMIT, K_FETCHLIMIT, K_FETCHSIZELIMIT,
	K_FASTUIDL, K_EXPUNGE, K_PROPERTIES, K_IS, K_HERE, K_THERE, K_TO,
	K_NO, K_KEEP, K_FLUSH, K_LIMITFLUSH, K_FETCHALL, K_REWRITE,
	K_FORCECR, K_STRIPCR, K_PASS8BITS, K_DROPSTATUS, K_DROPDELIVERED,
	K_MIMEDECODE, K_IDLE, K_DNS, K_UIDL, K_SSL, K_SSLKEY, K_SSLCERT,
	K_SSLPROTO, K_SSLCERTCK, K_SSLCERTFILE, K_SSLCERTPATH,
	K_SSLCOMMONNAME, K_SSLFINGERPRINT, K_CHECKALIAS, K_LIMIT, K_KPOP,
	K_SDPS,
	T_MAX
};

/* The protocols and login methods fetchmail names. */
static const char *const proto_names[] = {
	"auto", "pop2", "pop3", "imap", "apop", "rpop", "etrn", "odmr",
	"kpop", "sdps"
};
enum { P_AUTO, P_POP2, P_POP3, P_IMAP, P_APOP, P_RPOP, P_ETRN, P_ODMR,
	P_KPOP, P_SDPS };
static const char *const auth_names[] = {
	"any", "password", "gssapi", "kerberos_v4", "kerberos_v5", "ssh",
	"external", "otp", "cram-md5", "msn", "ntlm", "oauthbearer", "xoauth2"
};
enum { A_ANY, A_PASSWORD, A_GSSAPI, A_KERBEROS4, A_KERBEROS5, A_SSH,
	A_EXTERNAL, A_OTP, A_CRAM, A_MSN, A_NTLM, A_OAUTHBEARER, A_XOAUTH2 };

struct keyword {
	const char	*word;
	int		 tok;
	int		 arg;
};

/* fetchmail's reserved words, exactly as its lexer spells them. */
static const struct keyword keywords[] = {
	{ "set", K_SET, 0 }, { "logfile", K_LOGFILE, 0 },
	{ "idfile", K_IDFILE, 0 }, { "pidfile", K_PIDFILE, 0 },
	{ "daemon", K_DAEMON, 0 }, { "syslog", K_SYSLOG, 0 },
	{ "invisible", K_INVISIBLE, 0 }, { "showdots", K_SHOWDOTS, 0 },
	{ "postmaster", K_POSTMASTER, 0 }, { "bouncemail", K_BOUNCEMAIL, 0 },
	{ "spambounce", K_SPAMBOUNCE, 0 }, { "softbounce", K_SOFTBOUNCE, 0 },
	{ "warnings", K_WARNINGS, 0 }, { "tracepolls", K_TRACEPOLLS, 0 },
	{ "defaults", K_DEFAULTS, 0 }, { "server", K_POLL, 0 },
	{ "poll", K_POLL, 0 }, { "skip", K_SKIP, 0 }, { "via", K_VIA, 0 },
	{ "aka", K_AKA, 0 }, { "local", K_LOCALDOMAINS, 0 },
	{ "localdomains", K_LOCALDOMAINS, 0 }, { "proto", K_PROTOCOL, 0 },
	{ "protocol", K_PROTOCOL, 0 }, { "service", K_SERVICE, 0 },
	{ "port", K_PORT, 0 }, { "interval", K_INTERVAL, 0 },
	{ "preauth", K_AUTH, 0 }, { "preauthenticate", K_AUTH, 0 },
	{ "auth", K_AUTH, 0 }, { "authenticate", K_AUTH, 0 },
	{ "any", T_AUTHTYPE, A_ANY }, { "gssapi", T_AUTHTYPE, A_GSSAPI },
	{ "kerberos_v4", T_AUTHTYPE, A_KERBEROS4 },
	{ "kerberos4", T_AUTHTYPE, A_KERBEROS4 },
	{ "kerberos_v5", T_AUTHTYPE, A_KERBEROS5 },
	{ "kerberos5", T_AUTHTYPE, A_KERBEROS5 },
	{ "kerberos", T_AUTHTYPE, A_KERBEROS4 }, { "ssh", T_AUTHTYPE, A_SSH },
	{ "external", T_AUTHTYPE, A_EXTERNAL }, { "otp", T_AUTHTYPE, A_OTP },
	{ "opie", T_AUTHTYPE, A_OTP }, { "cram", T_AUTHTYPE, A_CRAM },
	{ "cram-md5", T_AUTHTYPE, A_CRAM }, { "msn", T_AUTHTYPE, A_MSN },
	{ "ntlm", T_AUTHTYPE, A_NTLM }, { "timeout", K_TIMEOUT, 0 },
	{ "envelope", K_ENVELOPE, 0 }, { "qvirtual", K_QVIRTUAL, 0 },
	{ "principal", K_PRINCIPAL, 0 }, { "esmtpname", K_ESMTPNAME, 0 },
	{ "esmtppassword", K_ESMTPPASSWORD, 0 },
	{ "bad-header", K_BADHEADER, 0 }, { "accept", K_ACCEPT, 0 },
	{ "reject", K_REJECT, 0 }, { "user", K_USER, 0 },
	{ "username", K_USER, 0 }, { "pass", K_PASSWORD, 0 },
	{ "password", K_PASSWORD, 0 }, { "passwordfile", K_PASSWORDFILE, 0 },
	{ "folder", K_FOLDER, 0 }, { "folders", K_FOLDER, 0 },
	{ "smtp", K_SMTPHOST, 0 }, { "smtphost", K_SMTPHOST, 0 },
	{ "fetchdomains", K_FETCHDOMAINS, 0 },
	{ "smtpaddress", K_SMTPADDRESS, 0 }, { "smtpname", K_SMTPNAME, 0 },
	{ "antispam", K_ANTISPAM, 0 }, { "mda", K_MDA, 0 },
	{ "bsmtp", K_BSMTP, 0 }, { "lmtp", K_LMTP, 0 },
	{ "pre", K_PRECONNECT, 0 }, { "preconnect", K_PRECONNECT, 0 },
	{ "post", K_POSTCONNECT, 0 }, { "postconnect", K_POSTCONNECT, 0 },
	{ "interface", K_INTERFACE, 0 }, { "monitor", K_MONITOR, 0 },
	{ "plugin", K_PLUGIN, 0 }, { "plugout", K_PLUGOUT, 0 },
	{ "batchlimit", K_BATCHLIMIT, 0 }, { "fetchlimit", K_FETCHLIMIT, 0 },
	{ "fetchsizelimit", K_FETCHSIZELIMIT, 0 },
	{ "fastuidl", K_FASTUIDL, 0 }, { "expunge", K_EXPUNGE, 0 },
	{ "properties", K_PROPERTIES, 0 }, { "is", K_IS, 0 },
	{ "here", K_HERE, 0 }, { "there", K_THERE, 0 }, { "to", K_TO, 0 },
	{ "no", K_NO, 0 }, { "keep", K_KEEP, 0 }, { "flush", K_FLUSH, 0 },
	{ "limitflush", K_LIMITFLUSH, 0 }, { "fetchall", K_FETCHALL, 0 },
	{ "rewrite", K_REWRITE, 0 }, { "forcecr", K_FORCECR, 0 },
	{ "stripcr", K_STRIPCR, 0 }, { "pass8", K_PASS8BITS, 0 },
	{ "pass8bits", K_PASS8BITS, 0 }, { "dropstatus", K_DROPSTATUS, 0 },
	{ "dropdelivered", K_DROPDELIVERED, 0 },
	{ "mimedec", K_MIMEDECODE, 0 }, { "mimedecode", K_MIMEDECODE, 0 },
	{ "idle", K_IDLE, 0 }, { "dns", K_DNS, 0 }, { "uidl", K_UIDL, 0 },
	{ "ssl", K_SSL, 0 }, { "sslkey", K_SSLKEY, 0 },
	{ "sslcert", K_SSLCERT, 0 }, { "sslproto", K_SSLPROTO, 0 },
	{ "sslcertck", K_SSLCERTCK, 0 }, { "sslcertfile", K_SSLCERTFILE, 0 },
	{ "sslcertpath", K_SSLCERTPATH, 0 },
	{ "sslcommonname", K_SSLCOMMONNAME, 0 },
	{ "sslfingerprint", K_SSLFINGERPRINT, 0 },
	{ "checkalias", K_CHECKALIAS, 0 }, { "limit", K_LIMIT, 0 },
	{ "with", T_NOISE, 0 }, { "and", T_NOISE, 0 }, { "has", T_NOISE, 0 },
	{ "wants", T_NOISE, 0 }, { "options", T_NOISE, 0 },
	{ "kpop", K_KPOP, 0 }, { "KPOP", K_KPOP, 0 },
	{ "sdps", K_SDPS, 0 }, { "SDPS", K_SDPS, 0 },
	{ "auto", T_PROTO, P_AUTO }, { "AUTO", T_PROTO, P_AUTO },
	{ "pop2", T_PROTO, P_POP2 }, { "POP2", T_PROTO, P_POP2 },
	{ "pop3", T_PROTO, P_POP3 }, { "POP3", T_PROTO, P_POP3 },
	{ "imap", T_PROTO, P_IMAP }, { "IMAP", T_PROTO, P_IMAP },
	{ "apop", T_PROTO, P_APOP }, { "APOP", T_PROTO, P_APOP },
	{ "rpop", T_PROTO, P_RPOP }, { "RPOP", T_PROTO, P_RPOP },
	{ "etrn", T_PROTO, P_ETRN }, { "ETRN", T_PROTO, P_ETRN },
	{ "odmr", T_PROTO, P_ODMR }, { "ODMR", T_PROTO, P_ODMR },
};

/* Words the lexer splits into "no" and the rest. */
static const char *const no_words[] = {
	"nobouncemail", "nouidl", "nocheckalias", "nodns", "noenvelope",
	"nokeep", "noflush", "nolimitflush", "nofetchall", "norewrite",
	"noforcecr", "nostripcr", "nopass8", "nopass8bits", "nodropstatus",
	"nodropdelivered", "nomimedec", "nomimedecode", "nospambounce",
	"noidle"
};

enum kind { O_FLAG, O_STR, O_NUM, O_LIST, O_NUMLIST, O_SPECIAL };

/* Server (user = 0) and user options (user = 1): how each is written. */
struct optdef {
	int		 tok;
	int		 user;
	enum kind	 kind;
	int		 negatable;
};

static const struct optdef optdefs[] = {
	{ K_AKA, 0, O_LIST, 0 }, { K_VIA, 0, O_STR, 0 },
	{ K_LOCALDOMAINS, 0, O_LIST, 0 }, { K_PROTOCOL, 0, O_SPECIAL, 0 },
	{ K_PRINCIPAL, 0, O_STR, 0 }, { K_ESMTPNAME, 0, O_STR, 0 },
	{ K_ESMTPPASSWORD, 0, O_STR, 0 }, { K_UIDL, 0, O_FLAG, 1 },
	{ K_CHECKALIAS, 0, O_FLAG, 1 }, { K_SERVICE, 0, O_SPECIAL, 0 },
	{ K_PORT, 0, O_SPECIAL, 0 }, { K_INTERVAL, 0, O_NUM, 0 },
	{ K_AUTH, 0, O_SPECIAL, 0 }, { K_TIMEOUT, 0, O_NUM, 0 },
	{ K_ENVELOPE, 0, O_SPECIAL, 1 }, { K_QVIRTUAL, 0, O_STR, 0 },
	{ K_INTERFACE, 0, O_STR, 0 }, { K_MONITOR, 0, O_STR, 0 },
	{ K_PLUGIN, 0, O_STR, 0 }, { K_PLUGOUT, 0, O_STR, 0 },
	{ K_DNS, 0, O_FLAG, 1 }, { K_TRACEPOLLS, 0, O_FLAG, 1 },
	{ K_BADHEADER, 0, O_SPECIAL, 0 },
	{ K_IS, 1, O_SPECIAL, 0 }, { K_TO, 1, O_SPECIAL, 0 },
	{ K_PASSWORD, 1, O_STR, 0 }, { K_PASSWORDFILE, 1, O_STR, 0 },
	{ K_FOLDER, 1, O_LIST, 0 }, { K_SMTPHOST, 1, O_LIST, 0 },
	{ K_FETCHDOMAINS, 1, O_LIST, 0 }, { K_SMTPADDRESS, 1, O_STR, 0 },
	{ K_SMTPNAME, 1, O_STR, 0 }, { K_ANTISPAM, 1, O_NUMLIST, 0 },
	{ K_MDA, 1, O_STR, 0 }, { K_BSMTP, 1, O_STR, 0 },
	{ K_LMTP, 1, O_FLAG, 0 }, { K_PRECONNECT, 1, O_STR, 0 },
	{ K_POSTCONNECT, 1, O_STR, 0 }, { K_KEEP, 1, O_FLAG, 1 },
	{ K_FLUSH, 1, O_FLAG, 1 }, { K_LIMITFLUSH, 1, O_FLAG, 1 },
	{ K_FETCHALL, 1, O_FLAG, 1 }, { K_REWRITE, 1, O_FLAG, 1 },
	{ K_FORCECR, 1, O_FLAG, 1 }, { K_STRIPCR, 1, O_FLAG, 1 },
	{ K_PASS8BITS, 1, O_FLAG, 1 }, { K_DROPSTATUS, 1, O_FLAG, 1 },
	{ K_DROPDELIVERED, 1, O_FLAG, 1 }, { K_MIMEDECODE, 1, O_FLAG, 1 },
	{ K_IDLE, 1, O_FLAG, 1 }, { K_SSL, 1, O_FLAG, 1 },
	{ K_SSLKEY, 1, O_STR, 0 }, { K_SSLCERT, 1, O_STR, 0 },
	{ K_SSLPROTO, 1, O_STR, 0 }, { K_SSLCERTCK, 1, O_FLAG, 1 },
	{ K_SSLCERTFILE, 1, O_STR, 0 }, { K_SSLCERTPATH, 1, O_STR, 0 },
	{ K_SSLCOMMONNAME, 1, O_STR, 0 }, { K_SSLFINGERPRINT, 1, O_STR, 0 },
	{ K_LIMIT, 1, O_NUM, 0 }, { K_WARNINGS, 1, O_NUM, 0 },
	{ K_FETCHLIMIT, 1, O_NUM, 0 }, { K_FETCHSIZELIMIT, 1, O_NUM, 0 },
	{ K_FASTUIDL, 1, O_NUM, 0 }, { K_BATCHLIMIT, 1, O_NUM, 0 },
	{ K_EXPUNGE, 1, O_NUM, 0 }, { K_PROPERTIES, 1, O_STR, 0 },
};

struct token {
	int		 tok;
	int		 arg;		/* T_PROTO, T_AUTHTYPE */
	long		 num;
	char		*str;		/* T_STRING; the text for messages */
	int		 line;
};

struct val {
	int		 set;
	long		 num;
	char		*str;
	char	       **list;
	size_t		 n;
};

/* One server/user pair, or the defaults entry. */
struct rec {
	struct val	 v[T_MAX];
	char		*pollname;
	int		 skip;
	int		 line;
	char		*remote;	/* user ... / is ... there */
	int		 wildcard;	/* is * */
	int		 mapped;	/* is remote = local */
	struct rec	*next;
};

struct rc {
	long		 daemon;	/* -1: not set */
	char		*logfile, *idfile, *pidfile, *postmaster, *properties;
	int		 syslog, invisible, showdots;	/* -1: not set */
	int		 bouncemail, spambounce, softbounce;
	struct rec	*defaults;
	struct rec	*recs, **tail;
	int		 nrecs;
};

struct parser {
	struct arena	*ar;
	const char	*file;
	const char	*p, *end;
	int		 line;
	int		 name_state, auth_state;
	struct token	 la[2];
	int		 nla;
	char		*err;		/* FILE:LINE: message */
	struct rc	*rc;
	struct rec	 cur;
};

static int
fail(struct parser *ps, int line, const char *fmt, ...) PM_PRINTF(3, 4);

/* Record the first error as FILE:LINE: message; returns -1. */
static int
fail(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;

	if (ps->err != NULL)
		return -1;
	va_start(ap, fmt);
	ps->err = arena_printf(ps->ar, "%s:%d: %s", ps->file, line,
	    arena_vprintf(ps->ar, fmt, ap));
	va_end(ap);
	return -1;
}

/* fetchmail's escapes in a string: \n \t \b \r, \xHH, \0ooo octal,
 * \ddd decimal, backslash-newline joins, any other \c is c. */
static void
unescape(char *s)
{
	const char *cp = s;
	char *tp = s;

	while (*cp != '\0') {
		int c = 0, n = 0;

		if (cp[0] == '\\' && cp[1] != '\0' &&
		    strchr("0123456789xX", cp[1]) != NULL) {
			cp++;
			if (*cp == 'x' || *cp == 'X') {
				for (cp++; *cp != '\0' && isxdigit((unsigned char)
				    *cp) && n++ < 2; cp++)
					c = c * 16 + (isdigit((unsigned char)*cp) ?
					    *cp - '0' : (tolower((unsigned char)
					    *cp) - 'a' + 10));
			} else if (*cp == '0') {
				while (*cp >= '0' && *cp <= '7' && n++ < 3)
					c = c * 8 + (*cp++ - '0');
			} else {
				while (isdigit((unsigned char)*cp) && n++ < 3)
					c = c * 10 + (*cp++ - '0');
			}
		} else if (cp[0] == '\\') {
			cp++;
			switch (*cp) {
			case '\n':
				cp++;
				continue;
			case '\0':
				goto done;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'b':
				c = '\b';
				break;
			case 'r':
				c = '\r';
				break;
			default:
				c = *cp;
			}
			cp++;
		} else
			c = *cp++;
		*tp++ = (char)c;
		if (c == '\0')
			return;
	}
done:
	*tp = '\0';
}

static const struct keyword *
keyword_find(const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
		if (strlen(keywords[i].word) == n &&
		    memcmp(keywords[i].word, w, n) == 0)
			return &keywords[i];
	return NULL;
}

/* Whether w is one of the words read as "no" and the rest. */
static int
is_no_word(const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof no_words / sizeof no_words[0]; i++)
		if (strlen(no_words[i]) == n && memcmp(no_words[i], w, n) == 0)
			return 1;
	return 0;
}

/* Whether w is a number as the lexer reads one: -?[0-9]+. */
static int
is_number(const char *w, size_t n)
{
	size_t i = (n > 0 && w[0] == '-') ? 1 : 0;

	if (i == n)
		return 0;
	for (; i < n; i++)
		if (!isdigit((unsigned char)w[i]))
			return 0;
	return 1;
}

/* The next token of the file, as fetchmail's lexer cuts it. */
static int
lex(struct parser *ps, struct token *t)
{
	const char *s;

again:
	memset(t, 0, sizeof *t);
	for (;;) {
		if (ps->p >= ps->end) {
			t->tok = T_EOF;
			t->line = ps->line;
			t->str = "end of file";
			return 0;
		}
		switch (*ps->p) {
		case ' ': case '\t': case '\r': case ';': case ':': case ',':
			ps->p++;
			continue;
		case '\n':
			ps->line++;
			ps->p++;
			continue;
		case '#':
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
			continue;
		case '\\':
			if (ps->p + 1 < ps->end && ps->p[1] == '\n') {
				ps->p += 2;
				ps->line++;
				continue;
			}
			break;
		case '\0':
			return fail(ps, ps->line, "NUL byte in the file");
		}
		break;
	}
	t->line = ps->line;
	s = ps->p;
	if (*s == '=') {
		ps->p++;
		ps->name_state = 1;
		t->tok = T_MAP;
		t->str = "=";
		return 0;
	}
	if (*s == '"' || *s == '\'') {
		const char *q = memchr(s + 1, *s, (size_t)(ps->end - s - 1));
		const char *c, *b = s;

		/* fetchmail would read on as a bare word and fail later, or
		 * not at all; the missing quote is the mistake to name. */
		if (q == NULL)
			return fail(ps, t->line, "unterminated %s string "
			    "(no closing %c)", *s == '"' ? "quoted" :
			    "single-quoted", *s);
		/* The lexer takes the longest match: "a\"b" is one bare
		 * word, quotes and all, longer than the string "a\". */
		while (b < ps->end && strchr("=;:, \t\r\n", *b) == NULL &&
		    *b != '\0')
			b++;
		if (b - s > q + 1 - s)
			goto bare;
		for (c = s + 1; c < q; c++)
			if (*c == '\n')
				ps->line++;
		if (memchr(s + 1, '\0', (size_t)(q - s - 1)) != NULL)
			return fail(ps, t->line, "NUL byte in the file");
		t->str = arena_strndup(ps->ar, s + 1, (size_t)(q - s - 1));
		unescape(t->str);
		t->tok = T_STRING;
		ps->p = q + 1;
		ps->name_state = ps->auth_state = 0;
		return 0;
	}
bare:
	while (ps->p < ps->end && strchr("=;:, \t\r\n", *ps->p) == NULL &&
	    *ps->p != '\0')
		ps->p++;
	t->str = arena_strndup(ps->ar, s, (size_t)(ps->p - s));
	if (ps->name_state) {
		unescape(t->str);
		t->tok = T_STRING;
		ps->name_state = ps->auth_state = 0;
		return 0;
	}
	if (ps->auth_state && (strcmp(t->str, "password") == 0 ||
	    strcmp(t->str, "oauthbearer") == 0 ||
	    strcmp(t->str, "xoauth2") == 0)) {
		t->tok = T_AUTHTYPE;
		t->arg = t->str[0] == 'p' ? A_PASSWORD : t->str[0] == 'o' ?
		    A_OAUTHBEARER : A_XOAUTH2;
		ps->auth_state = 0;
		return 0;
	}
	if (is_no_word(s, (size_t)(ps->p - s))) {
		ps->p = s + 2;
		t->tok = K_NO;
		t->str = "no";
		return 0;
	}
	{
		const struct keyword *k = keyword_find(s, (size_t)(ps->p - s));

		if (k != NULL && k->tok == T_NOISE)
			goto again;
		if (k != NULL) {
			t->tok = k->tok;
			t->arg = k->arg;
			if (k->tok == K_USER || k->tok == K_PASSWORD ||
			    k->tok == K_IS || k->tok == K_TO)
				ps->name_state = 1;
			if (k->tok == K_AUTH)
				ps->auth_state = 1;
			if (k->tok == T_AUTHTYPE)
				ps->auth_state = 0;
			return 0;
		}
	}
	if (is_number(s, (size_t)(ps->p - s))) {
		t->tok = T_NUMBER;
		t->num = strtol(t->str, NULL, 10);
		return 0;
	}
	unescape(t->str);
	t->tok = T_STRING;
	return 0;
}

/* The i-th token ahead (0 or 1). */
static struct token *
peek(struct parser *ps, int i)
{
	while (ps->nla <= i) {
		if (ps->err != NULL || lex(ps, &ps->la[ps->nla]) < 0) {
			ps->la[ps->nla].tok = T_EOF;
			ps->la[ps->nla].str = "error";
			ps->la[ps->nla].line = ps->line;
		}
		ps->nla++;
	}
	return &ps->la[i];
}

/* Consume the next token. */
static struct token
take(struct parser *ps)
{
	struct token t = *peek(ps, 0);

	ps->la[0] = ps->la[1];
	ps->nla--;
	return t;
}

/* A syntax error at t, saying what was expected. */
static int
syntax(struct parser *ps, const struct token *t, const char *expected)
{
	if (t->tok == T_EOF)
		return fail(ps, t->line, "syntax error at end of file: %s",
		    expected);
	return fail(ps, t->line, "syntax error at '%s': %s", t->str, expected);
}

static const struct optdef *
optdef(int tok)
{
	size_t i;

	for (i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++)
		if (optdefs[i].tok == tok)
			return &optdefs[i];
	return NULL;
}

/* Whether the tokens ahead start a server (user = 0) or user option. */
static int
starts_option(struct parser *ps, int user)
{
	const struct optdef *d;
	int tok = peek(ps, 0)->tok;

	if (tok == K_NO) {
		d = optdef(peek(ps, 1)->tok);
		return d != NULL && d->negatable && d->user == user;
	}
	d = optdef(tok);
	return d != NULL && d->user == user;
}

/* Append s to the list value v (s may be NULL). */
static void
list_add(struct arena *ar, struct val *v, const char *s)
{
	char **l = arena_alloc(ar, (v->n + 1) * sizeof *l);

	if (v->n > 0)
		memcpy(l, v->list, v->n * sizeof *l);
	l[v->n++] = arena_strdup(ar, s);
	v->list = l;
	v->set = 1;
}

/* Consume the next token into *t; an error unless it is tok. */
static int
want(struct parser *ps, int tok, struct token *t, const char *what)
{
	*t = take(ps);
	if (ps->err != NULL)
		return -1;
	if (t->tok != tok)
		return syntax(ps, t, what);
	return 0;
}

/* STRING [= STRING] ...: local names (or one remote name). */
static int
mapping_list(struct parser *ps, struct token *items, const char **maps,
    int max, int *n_r, int *mapped_r)
{
	struct token t, u;

	*n_r = 0;
	*mapped_r = 0;
	while (peek(ps, 0)->tok == T_STRING) {
		t = take(ps);
		u.str = NULL;
		if (peek(ps, 0)->tok == T_MAP) {
			take(ps);
			if (want(ps, T_STRING, &u, "expected a name after '='") < 0)
				return -1;
			*mapped_r = 1;
		}
		if (*n_r < max) {
			items[*n_r] = t;
			maps[*n_r] = u.str;
		}
		(*n_r)++;
	}
	if (ps->err != NULL)
		return -1;
	if (*n_r == 0)
		return syntax(ps, peek(ps, 0), "expected a user name");
	if (*n_r > max)
		return fail(ps, items[0].line, "too many names in one list");
	return 0;
}

/* Local names into v[K_IS]; v[K_TO] holds, at the same index, the
 * local name a remote name maps to (is remote = local), or NULL. */
static void
add_locals(struct parser *ps, const struct token *items,
    const char *const *maps, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (strcmp(items[i].str, "*") == 0 && maps[i] == NULL) {
			ps->cur.wildcard = 1;
			continue;
		}
		list_add(ps->ar, &ps->cur.v[K_IS], items[i].str);
		list_add(ps->ar, &ps->cur.v[K_TO], maps[i]);
		if (maps[i] != NULL)
			ps->cur.mapped = 1;
	}
	ps->cur.v[K_IS].set = 1;
}

#define MAX_NAMES 256

/* is/to NAMES [here] | is NAME there */
static int
parse_is(struct parser *ps, int tok)
{
	struct token items[MAX_NAMES];
	const char *maps[MAX_NAMES];
	int n, mapped;

	if (mapping_list(ps, items, maps, MAX_NAMES, &n, &mapped) < 0)
		return -1;
	if (peek(ps, 0)->tok == K_HERE) {
		take(ps);
	} else if (peek(ps, 0)->tok == K_THERE && tok == K_IS) {
		if (n != 1 || mapped)
			return syntax(ps, peek(ps, 0), "'there' follows one "
			    "remote name");
		take(ps);
		ps->cur.remote = items[0].str;
		return 0;
	}
	add_locals(ps, items, maps, n);
	return 0;
}

/* One server or user option, the first token not yet taken. */
static int
parse_option(struct parser *ps)
{
	const struct optdef *d;
	struct token t = take(ps), u;
	struct val *v;
	int neg = 0;

	if (t.tok == K_NO) {
		neg = 1;
		t = take(ps);
	}
	d = optdef(t.tok);
	v = &ps->cur.v[t.tok];
	switch (d->kind) {
	case O_FLAG:
		v->set = 1;
		v->num = !neg;
		return 0;
	case O_STR:
		if (want(ps, T_STRING, &u, "expected a string") < 0)
			return -1;
		v->set = 1;
		v->str = u.str;
		return 0;
	case O_NUM:
		if (want(ps, T_NUMBER, &u, "expected a number") < 0)
			return -1;
		v->set = 1;
		v->num = u.num;
		return 0;
	case O_LIST:
	case O_NUMLIST:
		do {
			u = take(ps);
			if (u.tok != (d->kind == O_LIST ? T_STRING : T_NUMBER))
				return syntax(ps, &u, d->kind == O_LIST ?
				    "expected a name" : "expected a number");
			list_add(ps->ar, v, u.str);
		} while (peek(ps, 0)->tok == (d->kind == O_LIST ? T_STRING :
		    T_NUMBER));
		return 0;
	case O_SPECIAL:
		break;
	}
	switch (t.tok) {
	case K_IS:
	case K_TO:
		return parse_is(ps, t.tok);
	case K_PROTOCOL:
		u = take(ps);
		if (u.tok == K_KPOP || u.tok == K_SDPS)
			u.arg = u.tok == K_KPOP ? P_KPOP : P_SDPS;
		else if (u.tok != T_PROTO)
			return syntax(ps, &u, "expected a protocol (pop3, imap, "
			    "auto, ...)");
		v->set = 1;
		v->num = u.arg;
		return 0;
	case K_SERVICE:
	case K_PORT:
		u = take(ps);
		if (u.tok != T_NUMBER && (u.tok != T_STRING || t.tok == K_PORT))
			return syntax(ps, &u, "expected a port number");
		v = &ps->cur.v[K_SERVICE];
		v->set = 1;
		v->str = u.tok == T_NUMBER ? arena_printf(ps->ar, "%ld", u.num) :
		    u.str;
		return 0;
	case K_AUTH:
		u = take(ps);
		if (u.tok != T_AUTHTYPE)
			return syntax(ps, &u, "expected an authentication "
			    "method (password, any, ...)");
		v->set = 1;
		v->num = u.arg;
		return 0;
	case K_ENVELOPE:
		v->set = 1;
		v->num = !neg;
		if (neg)
			return 0;
		if (peek(ps, 0)->tok == T_NUMBER)
			take(ps);	/* which header of that name */
		if (want(ps, T_STRING, &u, "expected a header name") < 0)
			return -1;
		v->str = u.str;
		return 0;
	case K_BADHEADER:
		u = take(ps);
		if (u.tok != K_ACCEPT && u.tok != K_REJECT)
			return syntax(ps, &u, "expected accept or reject");
		v->set = 1;
		v->num = u.tok == K_ACCEPT;
		return 0;
	}
	return syntax(ps, &t, "unexpected");
}

/* The current record, as it stands, onto the list. */
static void
record(struct parser *ps)
{
	struct rec *r = arena_alloc(ps->ar, sizeof *r);
	const struct optdef *d;
	size_t i;

	*r = ps->cur;
	if (strcmp(r->pollname, "defaults") == 0 && r->line == -1)
		ps->rc->defaults = r;
	else {
		*ps->rc->tail = r;
		ps->rc->tail = &r->next;
		ps->rc->nrecs++;
	}
	/* The next user keeps the server options only. */
	for (i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++) {
		d = &optdefs[i];
		if (d->user)
			memset(&ps->cur.v[d->tok], 0, sizeof ps->cur.v[d->tok]);
	}
	ps->cur.remote = NULL;
	ps->cur.wildcard = ps->cur.mapped = 0;
}

/* user NAME [there] | user NAMES here, then its options. */
static int
parse_user(struct parser *ps)
{
	struct token items[MAX_NAMES];
	const char *maps[MAX_NAMES];
	int n, mapped;

	take(ps);
	if (mapping_list(ps, items, maps, MAX_NAMES, &n, &mapped) < 0)
		return -1;
	if (peek(ps, 0)->tok == K_HERE) {
		take(ps);
		add_locals(ps, items, maps, n);
	} else {
		if (n != 1 || mapped)
			return syntax(ps, peek(ps, 0), "several names after "
			    "'user' need 'here'");
		if (peek(ps, 0)->tok == K_THERE)
			take(ps);
		ps->cur.remote = items[0].str;
	}
	while (ps->err == NULL && starts_option(ps, 1))
		if (parse_option(ps) < 0)
			return -1;
	return ps->err != NULL ? -1 : 0;
}

/* poll|skip NAME ... or defaults ...: server options, then users. */
static int
parse_server(struct parser *ps)
{
	struct token t = take(ps), name;

	memset(&ps->cur, 0, sizeof ps->cur);
	ps->cur.line = t.line;
	if (t.tok == K_DEFAULTS) {
		if (ps->rc->defaults != NULL || ps->rc->nrecs > 0)
			return fail(ps, t.line, "'defaults' must be the first "
			    "entry of the file, and come once");
		ps->cur.pollname = "defaults";
		ps->cur.line = -1;
	} else {
		if (want(ps, T_STRING, &name, "expected a server name") < 0)
			return -1;
		ps->cur.pollname = name.str;
		ps->cur.skip = t.tok == K_SKIP;
	}
	while (ps->err == NULL && starts_option(ps, 0))
		if (parse_option(ps) < 0)
			return -1;
	if (peek(ps, 0)->tok == K_USER) {
		while (ps->err == NULL && peek(ps, 0)->tok == K_USER) {
			if (parse_user(ps) < 0)
				return -1;
			record(ps);
		}
	} else {
		while (ps->err == NULL && starts_option(ps, 1))
			if (parse_option(ps) < 0)
				return -1;
		record(ps);
	}
	if (ps->err == NULL && starts_option(ps, 0))
		return fail(ps, peek(ps, 0)->line, "server option '%s' after "
		    "user options: put it before the first 'user'",
		    peek(ps, 0)->tok == K_NO ? peek(ps, 1)->str :
		    peek(ps, 0)->str);
	return ps->err != NULL ? -1 : 0;
}

/* set KEY [= VALUE] | set [no] FLAG */
static int
parse_set(struct parser *ps)
{
	struct rc *rc = ps->rc;
	struct token t, u;
	int neg = 0, *flag = NULL;
	char **str = NULL;

	take(ps);
	t = take(ps);
	if (t.tok == K_NO) {
		neg = 1;
		t = take(ps);
	}
	switch (t.tok) {
	case K_LOGFILE: str = &rc->logfile; break;
	case K_IDFILE: str = &rc->idfile; break;
	case K_PIDFILE: str = &rc->pidfile; break;
	case K_POSTMASTER: str = &rc->postmaster; break;
	case K_PROPERTIES: str = &rc->properties; break;
	case K_BOUNCEMAIL: flag = &rc->bouncemail; break;
	case K_SPAMBOUNCE: flag = &rc->spambounce; break;
	case K_SOFTBOUNCE: flag = &rc->softbounce; break;
	case K_SYSLOG: flag = &rc->syslog; break;
	case K_INVISIBLE: flag = &rc->invisible; break;
	case K_SHOWDOTS: flag = &rc->showdots; break;
	case K_DAEMON:
		if (neg)
			break;
		if (peek(ps, 0)->tok == T_MAP)
			take(ps);
		if (want(ps, T_NUMBER, &u, "expected seconds") < 0)
			return -1;
		rc->daemon = u.num;
		return 0;
	default:
		break;
	}
	if (flag != NULL) {
		*flag = !neg;
		return 0;
	}
	if (str == NULL || neg)
		return syntax(ps, &t, "not a global option");
	if (peek(ps, 0)->tok == T_MAP)
		take(ps);
	if (want(ps, T_STRING, &u, "expected a string") < 0)
		return -1;
	*str = u.str;
	return 0;
}

/* The whole file: set lines and server entries. */
static int
parse_file(struct parser *ps)
{
	struct token *t;

	for (;;) {
		t = peek(ps, 0);
		if (ps->err != NULL)
			return -1;
		switch (t->tok) {
		case T_EOF:
			return 0;
		case K_SET:
			if (parse_set(ps) < 0)
				return -1;
			break;
		case K_POLL:
		case K_SKIP:
		case K_DEFAULTS:
			if (parse_server(ps) < 0)
				return -1;
			break;
		default:
			if (t->tok == T_STRING)
				return fail(ps, t->line, "unknown keyword '%s' "
				    "(or a value where none belongs)", t->str);
			return syntax(ps, t, "expected set, poll, skip or "
			    "defaults");
		}
	}
}

/* The defaults entry under every entry, as fetchmail merges it: what an
 * entry leaves unset or empty takes the defaults' value. */
static void
merge_defaults(struct rc *rc)
{
	const struct rec *d = rc->defaults;
	struct rec *r;
	size_t i;

	if (d == NULL)
		return;
	for (r = rc->recs; r != NULL; r = r->next) {
		for (i = 0; i < T_MAX; i++) {
			if (!d->v[i].set)
				continue;
			if (!r->v[i].set || (d->v[i].list != NULL &&
			    r->v[i].n == 0))
				r->v[i] = d->v[i];
		}
		if (r->remote == NULL)
			r->remote = d->remote;
		r->wildcard |= d->wildcard;
		r->mapped |= d->mapped;
	}
}

/* The login name fetchmail falls back on. */
static const char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw != NULL ? pw->pw_name : "root";
}

/* A flag option's value, or deflt when the file does not set it. */
static int
flag(const struct rec *r, int tok, int deflt)
{
	return r->v[tok].set ? (int)r->v[tok].num : deflt;
}

static const char *
str(const struct rec *r, int tok)
{
	return r->v[tok].set ? r->v[tok].str : NULL;
}

/* A JSON list member of the facts; dflt stands for an empty list. */
static void
facts_list(FILE *f, const char *key, char **l, size_t n, const char *dflt)
{
	size_t i;

	fprintf(f, ", \"%s\": [", key);
	if (n == 0 && dflt != NULL)
		json_str(f, dflt);
	for (i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", f);
		json_str(f, l[i]);
	}
	fputc(']', f);
}

/* A JSON string member of the facts. */
static void
facts_str(FILE *f, const char *key, const char *s)
{
	fprintf(f, ", \"%s\": ", key);
	json_str(f, s);
}

/* The settings read, with fetchmail's defaults filled in, as JSON: the
 * test compares them with `fetchmail --configdump`. */
static void
dump_facts(const struct rc *rc, FILE *f)
{
	static const int flags[] = { K_KEEP, K_FETCHALL, K_FLUSH,
	    K_LIMITFLUSH, K_IDLE, K_SSL, K_LMTP, K_DROPSTATUS,
	    K_DROPDELIVERED, K_MIMEDECODE };
	static const char *const flag_keys[] = { "keep", "fetchall", "flush",
	    "limitflush", "idle", "ssl", "lmtp", "dropstatus",
	    "dropdelivered", "mimedecode" };
	const struct rec *r;
	const char *login = login_name();
	size_t i;

	fprintf(f, "{\"poll_interval\": %ld", rc->daemon < 0 ? 0 : rc->daemon);
	/* fetchmail's postmaster: root's is "postmaster", anyone else's
	 * is themselves. */
	facts_str(f, "postmaster", rc->postmaster != NULL ? rc->postmaster :
	    getuid() == 0 ? "postmaster" : login);
	facts_str(f, "logfile", rc->logfile);
	fprintf(f, ", \"syslog\": %s", rc->syslog == 1 ? "true" : "false");
	fputs(", \"entries\": [", f);
	for (r = rc->recs; r != NULL; r = r->next) {
		fputs(r == rc->recs ? "\n {" : ",\n {", f);
		fputs("\"pollname\": ", f);
		json_str(f, r->pollname);
		fprintf(f, ", \"active\": %s", r->skip ? "false" : "true");
		facts_str(f, "via", str(r, K_VIA));
		facts_str(f, "protocol", proto_names[r->v[K_PROTOCOL].set ?
		    r->v[K_PROTOCOL].num : P_AUTO]);
		facts_str(f, "service", str(r, K_SERVICE));
		facts_str(f, "auth", auth_names[r->v[K_AUTH].set ?
		    r->v[K_AUTH].num : A_ANY]);
		fprintf(f, ", \"timeout\": %ld, \"interval\": %ld",
		    r->v[K_TIMEOUT].set ? r->v[K_TIMEOUT].num : 300,
		    r->v[K_INTERVAL].num);
		facts_str(f, "remote", r->remote != NULL ? r->remote : login);
		fprintf(f, ", \"has_password\": %s",
		    r->v[K_PASSWORD].set ? "true" : "false");
		fputs(", \"localnames\": [", f);
		if (r->v[K_IS].n == 0)
			json_str(f, login);
		for (i = 0; i < r->v[K_IS].n; i++) {
			fputs(i > 0 ? ", " : "", f);
			if (r->v[K_TO].list[i] != NULL) {
				fputc('[', f);
				json_str(f, r->v[K_IS].list[i]);
				fputs(", ", f);
				json_str(f, r->v[K_TO].list[i]);
				fputc(']', f);
			} else
				json_str(f, r->v[K_IS].list[i]);
		}
		fputs(r->wildcard ? ", \"*\"]" : "]", f);
		for (i = 0; i < sizeof flags / sizeof flags[0]; i++)
			fprintf(f, ", \"%s\": %s", flag_keys[i],
			    flag(r, flags[i], 0) ? "true" : "false");
		fprintf(f, ", \"sslcertck\": %s",
		    flag(r, K_SSLCERTCK, 1) ? "true" : "false");
		fprintf(f, ", \"limit\": %ld, \"fetchlimit\": %ld",
		    r->v[K_LIMIT].num, r->v[K_FETCHLIMIT].num);
		facts_str(f, "mda", str(r, K_MDA));
		facts_str(f, "bsmtp", str(r, K_BSMTP));
		facts_str(f, "sslproto", str(r, K_SSLPROTO));
		facts_str(f, "sslcertfile", str(r, K_SSLCERTFILE));
		facts_str(f, "sslfingerprint", str(r, K_SSLFINGERPRINT));
		facts_str(f, "smtpaddress", str(r, K_SMTPADDRESS));
		facts_str(f, "smtpname", str(r, K_SMTPNAME));
		facts_str(f, "preconnect", str(r, K_PRECONNECT));
		facts_str(f, "postconnect", str(r, K_POSTCONNECT));
		facts_str(f, "plugin", str(r, K_PLUGIN));
		facts_str(f, "plugout", str(r, K_PLUGOUT));
		facts_list(f, "smtphunt", r->v[K_SMTPHOST].list,
		    r->v[K_SMTPHOST].n, "localhost");
		facts_list(f, "mailboxes", r->v[K_FOLDER].list,
		    r->v[K_FOLDER].n, NULL);
		facts_list(f, "localdomains", r->v[K_LOCALDOMAINS].list,
		    r->v[K_LOCALDOMAINS].n, NULL);
		fputc('}', f);
	}
	fputs("\n]}\n", f);
}

/* Shell syntax that fetchmail's /bin/sh would have interpreted. */
static int
has_shell_syntax(const char *s)
{
	return strpbrk(s, "|&;<>()$`*?[]{}~!\\\n") != NULL;
}

/* The mda command with fetchmail's %s (the recipient) as pullmail's %T. */
static char *
mda_command(struct arena *ar, const char *cmd)
{
	char *out = arena_alloc(ar, strlen(cmd) + 1), *o = out;
	const char *p;

	for (p = cmd; *p != '\0'; p++) {
		*o++ = *p;
		if (p[0] == '%' && p[1] == 's') {
			*o++ = 'T';
			p++;
		}
	}
	return out;
}

static const char *
service_port(const char *svc)
{
	static const struct { const char *name, *port; } names[] = {
		{ "pop3", "110" }, { "pop-3", "110" }, { "pop3s", "995" },
		{ "imap", "143" }, { "imap2", "143" }, { "imaps", "993" },
	};
	size_t i;

	if (is_number(svc, strlen(svc)))
		return svc;
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(names[i].name, svc) == 0)
			return names[i].port;
	return NULL;
}

/* The SHA-256 pin of a fetchmail fingerprint, or NULL for MD5. */
static char *
fingerprint(struct arena *ar, const char *fp)
{
	char hex[65];
	size_t n = 0;

	for (; *fp != '\0'; fp++) {
		if (*fp == ':')
			continue;
		if (!isxdigit((unsigned char)*fp) || n == 64)
			return NULL;
		hex[n++] = (char)tolower((unsigned char)*fp);
	}
	if (n != 64)
		return NULL;
	hex[n] = '\0';
	return arena_printf(ar, "sha256:%s", hex);
}

/* Where the mail goes: deliver and recipient. */
static void
emit_delivery(struct imp_out *o, struct imp_acct *a, const struct rec *r)
{
	const struct val *hunt = &r->v[K_SMTPHOST];
	const char *mda = str(r, K_MDA), *local = NULL;

	if (r->v[K_IS].n > 1 || r->wildcard || r->mapped ||
	    r->v[K_LOCALDOMAINS].n > 0)
		imp_note(o, a, 1, "multidrop (%s): fetchmail sorted this "
		    "mailbox to several local users by the envelope headers; "
		    "pullmail delivers an account's mail to one recipient: "
		    "split the mailbox into one account per user, or sort in "
		    "the MDA", r->v[K_LOCALDOMAINS].n > 0 ? "localdomains" :
		    r->wildcard ? "is *" : r->mapped ? "is remote = local" :
		    "several local names");
	else if (r->v[K_IS].n == 1)
		local = r->v[K_IS].list[0];
	if (str(r, K_BSMTP) != NULL) {
		imp_note(o, a, 1, "bsmtp %s: pullmail does not write BSMTP "
		    "batch files; choose deliver = maildir:, mbox:, mda:, "
		    "smtp: or lmtp:", str(r, K_BSMTP));
		return;
	}
	if (mda != NULL) {
		char *cmd = mda_command(&o->ar, mda);

		if (has_shell_syntax(cmd)) {
			imp_note(o, a, 1, "mda \"%s\": fetchmail ran it "
			    "through /bin/sh; pullmail runs the MDA without a "
			    "shell (split at blanks, %%F and %%T as separate "
			    "words): put the pipeline in a script and set "
			    "deliver = mda:SCRIPT", mda);
			return;
		}
		imp_set(o, a, "deliver", "mda:%s", cmd);
		if (hunt->n > 0)
			imp_note(o, a, 0, "smtphost %s: fetchmail used the "
			    "mda instead, as pullmail does", hunt->list[0]);
	} else {
		const char *h = hunt->n > 0 ? hunt->list[0] : "localhost";
		const char *slash = strchr(h, '/');
		char *host = slash != NULL ? arena_strndup(&o->ar, h,
		    (size_t)(slash - h)) : arena_strdup(&o->ar, h);

		if (flag(r, K_LMTP, 0)) {
			if (h[0] == '/')
				imp_set(o, a, "deliver", "lmtp:%s", h);
			else
				imp_set(o, a, "deliver", "lmtp:%s:%s", host,
				    slash != NULL ? slash + 1 : "24");
		} else if (h[0] == '/')
			imp_note(o, a, 1, "smtphost %s: a socket path for "
			    "SMTP; pullmail speaks SMTP over TCP only", h);
		else if (slash != NULL)
			imp_set(o, a, "deliver", "smtp:%s:%s", host, slash + 1);
		else
			imp_set(o, a, "deliver", "smtp:%s", host);
		if (hunt->n > 1)
			imp_note(o, a, 0, "smtphost: fetchmail tried %zu "
			    "hosts in turn; pullmail uses the first, and keeps "
			    "the mail on the server while it is down",
			    hunt->n);
	}
	if (str(r, K_SMTPNAME) != NULL)
		imp_set(o, a, "recipient", "%s", str(r, K_SMTPNAME));
	else if (local != NULL && str(r, K_SMTPADDRESS) != NULL)
		imp_set(o, a, "recipient", "%s@%s", local,
		    str(r, K_SMTPADDRESS));
	else if (local != NULL)
		imp_set(o, a, "recipient", "%s", local);
}

/* Login: user, password or OAuth. */
static void
emit_login(struct imp_out *o, struct imp_acct *a, const struct rec *r,
    const char *server)
{
	long auth = r->v[K_AUTH].set ? r->v[K_AUTH].num : A_ANY;

	imp_set(o, a, "user", "%s", r->remote != NULL ? r->remote :
	    login_name());
	if (auth == A_OAUTHBEARER || auth == A_XOAUTH2) {
		const char *tf = str(r, K_PASSWORDFILE);

		imp_set(o, a, "auth", "%s", auth_names[auth]);
		/* The token file a helper keeps fresh: read at each login. */
		if (tf != NULL && strpbrk(tf, " \t\"'") == NULL) {
			imp_set(o, a, "oauth_token_command", "cat %s", tf);
			imp_note(o, a, 0, "fetchmail read the access token from "
			    "%s, which a helper keeps fresh; pullmail reads it "
			    "there at each login. It can also get tokens "
			    "itself: see oauth_provider in pullmail.conf(5)",
			    tf);
			return;
		}
		imp_note(o, a, 1, "auth %s: fetchmail took the access token "
		    "as the password, from a helper you refresh; pullmail gets "
		    "tokens itself. Set oauth_provider (microsoft, google or "
		    "generic), oauth_client_id and, for Microsoft 365, "
		    "oauth_tenant, then either oauth_client_secret_file "
		    "(app-only) or run `pullmail authorize %s` (delegated); "
		    "or keep your helper with oauth_token_command",
		    auth_names[auth], a->name);
		return;
	}
	if (auth != A_ANY && auth != A_PASSWORD) {
		imp_note(o, a, 1, "auth %s: pullmail logs in with a password "
		    "(PLAIN or LOGIN) or OAuth 2.0 only", auth_names[auth]);
		return;
	}
	imp_check_password_host(o, a, server);
	if (str(r, K_PASSWORDFILE) != NULL)
		imp_set(o, a, "password_file", "%s", str(r, K_PASSWORDFILE));
	else if (str(r, K_PASSWORD) != NULL)
		imp_secret(o, a, str(r, K_PASSWORD));
	else
		imp_note(o, a, 1, "no password in the file: fetchmail asked "
		    "for it at start-up (or read ~/.netrc); give it with "
		    "password_file, password_command or password_credential");
}

/* An option pullmail has no use or no equivalent for: a note naming it. */
struct unmapped {
	int		 tok;
	const char	*name;
	int		 dropped;
	const char	*why;
};

static const struct unmapped unmapped[] = {
	{ K_PRECONNECT, "preconnect", 1, "pullmail runs no command before "
	    "connecting: run it before pullmail (ExecStartPre= in the "
	    "service unit)" },
	{ K_POSTCONNECT, "postconnect", 1, "pullmail runs no command after "
	    "a poll: run it after pullmail (ExecStartPost=)" },
	{ K_PLUGIN, "plugin", 1, "pullmail connects over TCP itself; "
	    "a tunnel command has no equivalent" },
	{ K_PLUGOUT, "plugout", 1, "pullmail delivers over TCP or a unix "
	    "socket; a tunnel command has no equivalent" },
	{ K_ESMTPNAME, "esmtpname", 1, "pullmail does not authenticate to "
	    "the SMTP server it delivers to: allow it from this host" },
	{ K_ESMTPPASSWORD, "esmtppassword", 1, "pullmail does not "
	    "authenticate to the SMTP server it delivers to" },
	{ K_FLUSH, "flush", 1, "pullmail never deletes messages it did not "
	    "deliver" },
	{ K_LIMITFLUSH, "limitflush", 1, "pullmail leaves messages over "
	    "size_limit on the server" },
	{ K_DROPSTATUS, "dropstatus", 0, "pullmail delivers the message as "
	    "the server has it, Status: lines included" },
	{ K_DROPDELIVERED, "dropdelivered", 0, "pullmail delivers the "
	    "message as the server has it, Delivered-To: lines included" },
	{ K_MIMEDECODE, "mimedecode", 0, "pullmail does not recode "
	    "messages" },
	{ K_REWRITE, "rewrite", 0, "pullmail never rewrites addresses" },
	{ K_FORCECR, "forcecr", 0, "pullmail ends lines as each target "
	    "expects" },
	{ K_STRIPCR, "stripcr", 0, "pullmail ends lines as each target "
	    "expects" },
	{ K_PASS8BITS, "pass8bits", 0, "pullmail passes 8-bit data as it "
	    "is" },
	{ K_FETCHDOMAINS, "fetchdomains", 0, "ODMR/ETRN only" },
	{ K_ANTISPAM, "antispam", 0, "pullmail keeps a message the MTA "
	    "refuses on the server" },
	{ K_WARNINGS, "warnings", 0, "pullmail reports each skipped message "
	    "in its summary" },
	{ K_FETCHLIMIT, "fetchlimit", 0, "pullmail fetches every new message "
	    "in one run" },
	{ K_FETCHSIZELIMIT, "fetchsizelimit", 0, "pullmail pipelines "
	    "requests itself" },
	{ K_FASTUIDL, "fastuidl", 0, "pullmail keeps its own UID state" },
	{ K_BATCHLIMIT, "batchlimit", 0, "pullmail opens one SMTP session "
	    "per batch itself" },
	{ K_EXPUNGE, "expunge", 0, "pullmail expunges once per batch (see "
	    "expunge in pullmail.conf(5))" },
	{ K_PROPERTIES, "properties", 0, "extension data for other tools" },
	{ K_UIDL, "uidl", 0, "pullmail always tracks POP3 messages by UIDL" },
	{ K_TRACEPOLLS, "tracepolls", 0, "pullmail can add a Received: line "
	    "(add_received)" },
	{ K_BADHEADER, "bad-header", 0, "pullmail delivers every message as "
	    "it is" },
	{ K_PRINCIPAL, "principal", 0, "Kerberos only" },
	{ K_INTERFACE, "interface", 0, "pullmail polls whatever the route" },
	{ K_MONITOR, "monitor", 0, "pullmail polls whether the link is "
	    "busy or not" },
	{ K_ENVELOPE, "envelope", 0, "used for multidrop only" },
	{ K_QVIRTUAL, "qvirtual", 0, "used for multidrop only" },
	{ K_AKA, "aka", 0, "used for multidrop only" },
	{ K_CHECKALIAS, "checkalias", 0, "used for multidrop only" },
	{ K_DNS, "dns", 0, "used for multidrop only" },
	{ K_SSLKEY, "sslkey", 0, "pullmail presents no TLS client "
	    "certificate" },
	{ K_SSLCERT, "sslcert", 0, "pullmail presents no TLS client "
	    "certificate" },
	{ K_SSLCERTPATH, "sslcertpath", 0, "pullmail trusts the system's "
	    "store plus ca_file: put the certificates in one file and name "
	    "it with ca_file" },
	{ K_SSLCOMMONNAME, "sslcommonname", 0, "pullmail checks the "
	    "certificate against server: write the name the certificate "
	    "holds as server" },
};

/* The TLS settings: ssl, sslproto, sslcertck, sslcertfile, sslfingerprint. */
static void
emit_tls(struct imp_out *o, struct imp_acct *a, const struct rec *r)
{
	const char *proto = str(r, K_SSLPROTO), *fp = str(r, K_SSLFINGERPRINT);

	if (flag(r, K_SSL, 0))
		imp_set(o, a, "tls", "implicit");
	else if (proto != NULL && proto[0] == '\0') {
		imp_set(o, a, "tls", "none");
		imp_note(o, a, 0, "sslproto \"\": fetchmail spoke without TLS, "
		    "and so does this account: the password travels in clear");
	} else {
		imp_set(o, a, "tls", "starttls");
		if (proto == NULL)
			imp_note(o, a, 0, "fetchmail used STARTTLS when the "
			    "server offered it; pullmail insists on it. Should "
			    "the server have none, tls = none sends the "
			    "password in clear");
	}
	if (proto != NULL && proto[0] != '\0' &&
	    strcasecmp(proto, "auto") != 0 && strcasecmp(proto, "tls1+") != 0 &&
	    strcasecmp(proto, "ssl23") != 0)
		imp_note(o, a, 0, "sslproto %s: pullmail takes GnuTLS's "
		    "default TLS versions", proto);
	if (!flag(r, K_SSLCERTCK, 1))
		imp_note(o, a, 0, "no sslcertck: pullmail always verifies the "
		    "server certificate; trust its CA with ca_file or pin it "
		    "with tls_fingerprint");
	if (str(r, K_SSLCERTFILE) != NULL)
		imp_set(o, a, "ca_file", "%s", str(r, K_SSLCERTFILE));
	if (fp != NULL) {
		char *pin = fingerprint(&o->ar, fp);

		if (pin != NULL)
			imp_set(o, a, "tls_fingerprint", "%s", pin);
		else
			imp_note(o, a, 0, "sslfingerprint %s is an MD5 "
			    "fingerprint; pullmail pins SHA-256: `openssl "
			    "s_client -connect HOST:PORT </dev/null | openssl "
			    "x509 -noout -fingerprint -sha256` prints it for "
			    "tls_fingerprint", fp);
	}
}

/* Which messages, and what becomes of them on the server. */
static void
emit_policy(struct imp_out *o, struct imp_acct *a, const struct rec *r,
    int imap)
{
	const struct val *folders = &r->v[K_FOLDER];
	size_t i;
	int keep = flag(r, K_KEEP, 0);

	if (imap)
		for (i = 0; i < folders->n; i++)
			imp_set(o, a, "folder", "%s", folders->list[i]);
	else if (folders->n > 0)
		imp_note(o, a, 0, "folder: POP3 has one mailbox; fetchmail "
		    "ignored the folders too");
	imp_set(o, a, "keep", "%s", keep ? "yes" : "no");
	if (keep && imap)
		imp_set(o, a, "mark_seen", "yes");
	if (keep && !flag(r, K_FETCHALL, 0))
		imp_note(o, a, 0, "fetchmail fetched only the messages it had "
		    "not seen; pullmail fetches every message it has not "
		    "delivered itself: its first run delivers the messages "
		    "already on the server too");
	if (r->v[K_LIMIT].num > 0)
		imp_set(o, a, "size_limit", "%ld", r->v[K_LIMIT].num);
}

/* One server/user pair as an [account]. */
static void
emit_account(struct imp_out *o, const struct rc *rc, const struct rec *r,
    const char *file)
{
	long proto = r->v[K_PROTOCOL].set ? r->v[K_PROTOCOL].num : P_AUTO;
	const char *server = str(r, K_VIA) != NULL ? str(r, K_VIA) :
	    r->pollname, *svc = str(r, K_SERVICE), *user;
	struct imp_acct *a;
	size_t i;

	user = r->remote != NULL ? r->remote : login_name();
	a = imp_account(o, arena_printf(&o->ar, "%s@%s", user, r->pollname));
	imp_note(o, a, 0, "from %s line %d: %s %s", file, r->line,
	    r->skip ? "skip" : "poll", r->pollname);
	if (r->skip) {
		a->disabled = 1;
		imp_note(o, a, 0, "'skip': fetchmail polled this entry only "
		    "when named on its command line; remove the '#' in front "
		    "of each line to fetch it");
	}
	imp_set(o, a, "server", "%s", server);
	if (str(r, K_VIA) != NULL)
		imp_note(o, a, 0, "via: the server name is the host fetchmail "
		    "connected to; the certificate must name it");
	switch (proto) {
	case P_IMAP:
	case P_POP3:
		imp_set(o, a, "protocol", "%s", proto_names[proto]);
		break;
	case P_AUTO:
		imp_set(o, a, "protocol", "imap");
		imp_note(o, a, 0, "protocol auto: fetchmail tried IMAP, then "
		    "POP3; pullmail needs one: imap is written, change it to "
		    "pop3 if the server has no IMAP");
		proto = P_IMAP;
		break;
	default:
		imp_set(o, a, "protocol", "pop3");
		imp_note(o, a, 1, "protocol %s: pullmail speaks IMAP and POP3 "
		    "with PLAIN, LOGIN, XOAUTH2 or OAUTHBEARER logins only",
		    proto_names[proto]);
		proto = P_POP3;
	}
	if (svc != NULL) {
		const char *port = service_port(svc);

		if (port != NULL)
			imp_set(o, a, "port", "%s", port);
		else
			imp_note(o, a, 0, "service %s: not a port pullmail "
			    "knows; set port to its number", svc);
	}
	emit_tls(o, a, r);
	emit_login(o, a, r, server);
	emit_policy(o, a, r, proto == P_IMAP);
	emit_delivery(o, a, r);
	if (r->v[K_TIMEOUT].set) {
		if (r->v[K_TIMEOUT].num >= 1 && r->v[K_TIMEOUT].num <= 86400)
			imp_set(o, a, "timeout", "%ld", r->v[K_TIMEOUT].num);
		else
			imp_note(o, a, 0, "timeout %ld: pullmail takes 1 to "
			    "86400 seconds", r->v[K_TIMEOUT].num);
	}
	if (flag(r, K_IDLE, 0))
		imp_set(o, a, "idle", "yes");
	else if (rc->daemon > 0 && proto == P_IMAP)
		imp_set(o, a, "idle", "no");
	if (r->v[K_INTERVAL].num > 1) {
		if (rc->daemon > 0)
			imp_set(o, a, "poll_interval", "%ld",
			    rc->daemon * r->v[K_INTERVAL].num);
		else
			imp_note(o, a, 0, "interval %ld: only with set daemon",
			    r->v[K_INTERVAL].num);
	}
	for (i = 0; i < sizeof unmapped / sizeof unmapped[0]; i++) {
		const struct val *v = &r->v[unmapped[i].tok];

		if (!v->set)
			continue;
		/* The options that say "do nothing" need no note. */
		if (v->list == NULL && v->str == NULL && v->num == 0 &&
		    unmapped[i].tok != K_REWRITE && unmapped[i].tok != K_DNS &&
		    unmapped[i].tok != K_UIDL)
			continue;
		imp_note(o, a, unmapped[i].dropped, "%s%s: %s",
		    v->list == NULL && v->str == NULL && v->num == 0 ? "no " :
		    "", unmapped[i].name, unmapped[i].why);
	}
}

/* The set lines: [defaults] and notes at the top. */
static void
emit_globals(struct imp_out *o, const struct rc *rc)
{
	if (rc->daemon > 0) {
		imp_set(o, NULL, "poll_interval", "%ld", rc->daemon);
		imp_note(o, NULL, 0, "set daemon %ld: run `pullmail --daemon` "
		    "(the systemd unit in contrib/ does); poll_interval in "
		    "[defaults] is the same period", rc->daemon);
	}
	if (rc->logfile != NULL)
		imp_note(o, NULL, 0, "set logfile %s: pullmail logs to standard "
		    "error (the journal under systemd) or to syslog with "
		    "--syslog", rc->logfile);
	if (rc->syslog == 1)
		imp_note(o, NULL, 0, "set syslog: run pullmail with --syslog");
	if (rc->idfile != NULL)
		imp_note(o, NULL, 0, "set idfile %s: pullmail keeps its own "
		    "state in state_dir; what fetchmail already fetched is not "
		    "imported", rc->idfile);
	if (rc->pidfile != NULL)
		imp_note(o, NULL, 0, "set pidfile %s: run pullmail --daemon "
		    "under systemd, which tracks it", rc->pidfile);
	if (rc->postmaster != NULL)
		imp_note(o, NULL, 0, "set postmaster %s: pullmail sends no "
		    "bounces; a message it cannot deliver stays on the server "
		    "and the run says so", rc->postmaster);
	if (rc->bouncemail != -1 || rc->spambounce != -1 ||
	    rc->softbounce != -1)
		imp_note(o, NULL, 0, "set bouncemail/spambounce/softbounce: "
		    "pullmail sends no bounces");
	if (rc->invisible != -1 || rc->showdots != -1 ||
	    rc->properties != NULL)
		imp_note(o, NULL, 0, "set invisible/showdots/properties: no "
		    "equivalent, and none needed");
}

int
import_fetchmailrc(const char *path, const char *secrets_dir, int facts)
{
	struct imp_out o;
	struct parser ps;
	struct rc rc;
	const struct rec *r;
	char *data = NULL;
	size_t len;
	int code;

	if ((code = imp_read(path, &data, &len)) != 0)
		return code;
	imp_init(&o, "fetchmailrc", path);
	memset(&rc, 0, sizeof rc);
	rc.daemon = -1;
	rc.syslog = rc.invisible = rc.showdots = -1;
	rc.bouncemail = rc.spambounce = rc.softbounce = -1;
	rc.tail = &rc.recs;
	memset(&ps, 0, sizeof ps);
	ps.ar = &o.ar;
	ps.file = path;
	ps.p = data;
	ps.end = data + len;
	ps.line = 1;
	ps.rc = &rc;
	if (parse_file(&ps) < 0) {
		fprintf(stderr, "%s\n", ps.err);
		explicit_bzero(data, len);
		free(data);
		imp_free(&o);
		return EX_CONFIG;
	}
	explicit_bzero(data, len);
	free(data);
	merge_defaults(&rc);
	if (facts) {
		dump_facts(&rc, stdout);
		imp_free(&o);
		return 0;
	}
	if (rc.recs == NULL)
		imp_note(&o, NULL, 1, "%s has no poll entry: nothing to fetch",
		    path);
	emit_globals(&o, &rc);
	for (r = rc.recs; r != NULL; r = r->next)
		emit_account(&o, &rc, r, path);
	code = imp_write(&o, secrets_dir, stdout);
	imp_free(&o);
	return code;
}
