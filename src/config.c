/* The configuration file: INI sections, typed keys, inheritance from
 * [defaults], and the checks that make every account usable. */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pullmail/host.h>

#include "config.h"
#include "command.h"
#include "deliver.h"
#include "envelope.h"
#include "oauth/provider.h"
#include "process.h"
#include "secret.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define CONFIG_MAX_LINE		4096
#define CONFIG_MAX_SIZE		(1024 * 1024)
#define SECRET_MAX_SIZE		(64 * 1024)
#define TIMEOUT_MAX		86400
#define COUNT_MAX		10000

#define nitems(a)		(sizeof (a) / sizeof (a)[0])


enum key {
	K_SERVER,
	K_PORT,
	K_PROTOCOL,
	K_TLS,
	K_CA_FILE,
	K_TLS_FINGERPRINT,
	K_USER,
	K_AUTH,
	K_PASSWORD,
	K_PASSWORD_FILE,
	K_OAUTH_PROVIDER,
	K_OAUTH_TENANT,
	K_OAUTH_CLIENT_ID,
	K_OAUTH_CLIENT_SECRET,
	K_OAUTH_CLIENT_SECRET_FILE,
	K_OAUTH_TOKEN_URL,
	K_OAUTH_SCOPE,
	K_OAUTH_CLIENT_AUTH,
	K_OAUTH_FLOW,
	K_OAUTH_DEVICE_URL,
	K_OAUTH_AUTHORIZE_URL,
	K_OAUTH_REDIRECT_PORT,
	K_NOTIFY_COMMAND,
	K_OAUTH_CLIENT_CERT,
	K_OAUTH_CLIENT_KEY,
	K_OAUTH_ISSUER,
	K_OAUTH_AUTHORITY,
	K_PASSWORD_COMMAND,
	K_PASSWORD_CREDENTIAL,
	K_OAUTH_CLIENT_SECRET_COMMAND,
	K_OAUTH_CLIENT_SECRET_CREDENTIAL,
	K_OAUTH_TOKEN_COMMAND,
	K_FOLDER,
	K_KEEP,
	K_MARK_SEEN,
	K_DELIVER,
	K_RECIPIENT,
	K_ENVELOPE_SENDER,
	K_MDA_TIMEOUT,
	K_LOCK_TIMEOUT,
	K_ADD_RETURN_PATH,
	K_ADD_DELIVERED_TO,
	K_ADD_RECEIVED,
	K_STATE_DIR,
	K_TIMEOUT,
	K_SIZE_LIMIT,
	K_FETCH_ALL,
	K_POP3_XOAUTH2_TWO_STEP,
	K_POP3_STRICT_SIZE,
	K_EXPUNGE,
	K_POLL_INTERVAL,
	K_IDLE,
	K_MAX_CONNECTIONS,
	K_SERVER_CONNECTIONS,
	K_THROTTLE_MAX_WAIT,
	K__COUNT
};

enum vtype {
	V_TEXT,		/* any non-empty text */
	V_COMMAND,	/* a command line, by proc_split()'s rule */
	V_WORD,		/* non-empty, no white space */
	V_PORT,
	V_TIMEOUT,
	V_BOOL,
	V_ENUM,
	V_PATH,		/* ~/ and relative paths expanded */
	V_SECRET,	/* kept in a struct pm_secret, never echoed */
	V_FINGERPRINT,
	V_DELIVER,
	V_ADDRESS,	/* envelope address, domain optional */
	V_SENDER,	/* envelope address with domain, or <> */
	V_URL,
	V_TENANT,
	V_SIZE,		/* bytes, optional k/M/G suffix (1024-based) */
	V_COUNT		/* a number from 1 to COUNT_MAX */
};

struct choice {
	const char *name;
	int value;
};

static const struct choice protocol_choices[] = {
	{ "imap", 0 }, { "pop3", 0 }, { NULL, 0 }
};
static const struct choice tls_choices[] = {
	{ "implicit", PM_TLS_IMPLICIT },
	{ "starttls", PM_TLS_STARTTLS },
	{ "none", PM_TLS_NONE },
	{ NULL, 0 }
};
static const struct choice auth_choices[] = {
	{ "auto", AUTH_AUTO },
	{ "xoauth2", AUTH_XOAUTH2 },
	{ "oauthbearer", AUTH_OAUTHBEARER },
	{ "plain", AUTH_PLAIN },
	{ "login", AUTH_LOGIN },
	{ NULL, 0 }
};
static const struct choice provider_choices[] = {
	{ "microsoft", OAUTH_MICROSOFT },
	{ "generic", OAUTH_GENERIC },
	{ "google", OAUTH_GOOGLE },
	{ NULL, 0 }
};
static const struct choice flow_choices[] = {
	{ "client_credentials", OAUTH_FLOW_CLIENT_CREDENTIALS },
	{ "device", OAUTH_FLOW_DEVICE },
	{ "authorization_code", OAUTH_FLOW_AUTH_CODE },
	{ NULL, 0 }
};
static const struct choice strict_size_choices[] = {
	{ "auto", PM_STRICT_SIZE_AUTO },
	{ "yes", PM_STRICT_SIZE_YES },
	{ "no", PM_STRICT_SIZE_NO },
	{ NULL, 0 }
};
static const struct choice expunge_choices[] = {
	{ "uid", PM_EXPUNGE_UID },
	{ "all", PM_EXPUNGE_ALL },
	{ "never", PM_EXPUNGE_NEVER },
	{ NULL, 0 }
};
static const struct choice client_auth_choices[] = {
	{ "post", OAUTH_CLIENT_POST },
	{ "basic", OAUTH_CLIENT_BASIC },
	{ NULL, 0 }
};

struct keydef {
	const char *name;
	int type;			/* enum vtype */
	int repeat;			/* may be given more than once */
	const struct choice *choices;	/* V_ENUM */
};

/* Indexed by enum key. */
static const struct keydef keydefs[K__COUNT] = {
	[K_SERVER] = { "server", V_WORD, 0, NULL },
	[K_PORT] = { "port", V_PORT, 0, NULL },
	[K_PROTOCOL] = { "protocol", V_ENUM, 0, protocol_choices },
	[K_TLS] = { "tls", V_ENUM, 0, tls_choices },
	[K_CA_FILE] = { "ca_file", V_PATH, 0, NULL },
	[K_TLS_FINGERPRINT] = { "tls_fingerprint", V_FINGERPRINT, 0, NULL },
	[K_USER] = { "user", V_TEXT, 0, NULL },
	[K_AUTH] = { "auth", V_ENUM, 0, auth_choices },
	[K_PASSWORD] = { "password", V_SECRET, 0, NULL },
	[K_PASSWORD_FILE] = { "password_file", V_PATH, 0, NULL },
	[K_OAUTH_PROVIDER] = { "oauth_provider", V_ENUM, 0, provider_choices },
	[K_OAUTH_TENANT] = { "oauth_tenant", V_TENANT, 0, NULL },
	[K_OAUTH_CLIENT_ID] = { "oauth_client_id", V_WORD, 0, NULL },
	[K_OAUTH_CLIENT_SECRET] = { "oauth_client_secret", V_SECRET, 0, NULL },
	[K_OAUTH_CLIENT_SECRET_FILE] =
	    { "oauth_client_secret_file", V_PATH, 0, NULL },
	[K_OAUTH_TOKEN_URL] = { "oauth_token_url", V_URL, 0, NULL },
	[K_OAUTH_SCOPE] = { "oauth_scope", V_TEXT, 0, NULL },
	[K_OAUTH_CLIENT_AUTH] =
	    { "oauth_client_auth", V_ENUM, 0, client_auth_choices },
	[K_OAUTH_FLOW] = { "oauth_flow", V_ENUM, 0, flow_choices },
	[K_OAUTH_DEVICE_URL] = { "oauth_device_url", V_URL, 0, NULL },
	[K_OAUTH_AUTHORIZE_URL] = { "oauth_authorize_url", V_URL, 0, NULL },
	[K_OAUTH_REDIRECT_PORT] = { "oauth_redirect_port", V_PORT, 0, NULL },
	[K_NOTIFY_COMMAND] = { "notify_command", V_COMMAND, 0, NULL },
	[K_OAUTH_CLIENT_CERT] =
	    { "oauth_client_certificate", V_PATH, 0, NULL },
	[K_OAUTH_CLIENT_KEY] = { "oauth_client_key", V_PATH, 0, NULL },
	[K_OAUTH_ISSUER] = { "oauth_issuer", V_URL, 0, NULL },
	[K_OAUTH_AUTHORITY] = { "oauth_authority", V_URL, 0, NULL },
	[K_PASSWORD_COMMAND] = { "password_command", V_COMMAND, 0, NULL },
	[K_PASSWORD_CREDENTIAL] = { "password_credential", V_WORD, 0, NULL },
	[K_OAUTH_CLIENT_SECRET_COMMAND] =
	    { "oauth_client_secret_command", V_COMMAND, 0, NULL },
	[K_OAUTH_CLIENT_SECRET_CREDENTIAL] =
	    { "oauth_client_secret_credential", V_WORD, 0, NULL },
	[K_OAUTH_TOKEN_COMMAND] = { "oauth_token_command", V_COMMAND, 0, NULL },
	[K_FOLDER] = { "folder", V_TEXT, 1, NULL },
	[K_KEEP] = { "keep", V_BOOL, 0, NULL },
	[K_MARK_SEEN] = { "mark_seen", V_BOOL, 0, NULL },
	[K_DELIVER] = { "deliver", V_DELIVER, 0, NULL },
	[K_RECIPIENT] = { "recipient", V_ADDRESS, 0, NULL },
	[K_ENVELOPE_SENDER] = { "envelope_sender", V_SENDER, 0, NULL },
	[K_MDA_TIMEOUT] = { "mda_timeout", V_TIMEOUT, 0, NULL },
	[K_LOCK_TIMEOUT] = { "lock_timeout", V_TIMEOUT, 0, NULL },
	[K_ADD_RETURN_PATH] = { "add_return_path", V_BOOL, 0, NULL },
	[K_ADD_DELIVERED_TO] = { "add_delivered_to", V_BOOL, 0, NULL },
	[K_ADD_RECEIVED] = { "add_received", V_BOOL, 0, NULL },
	[K_STATE_DIR] = { "state_dir", V_PATH, 0, NULL },
	[K_TIMEOUT] = { "timeout", V_TIMEOUT, 0, NULL },
	[K_SIZE_LIMIT] = { "size_limit", V_SIZE, 0, NULL },
	[K_FETCH_ALL] = { "fetch_all", V_BOOL, 0, NULL },
	[K_POP3_XOAUTH2_TWO_STEP] =
	    { "pop3_xoauth2_two_step", V_BOOL, 0, NULL },
	[K_POP3_STRICT_SIZE] =
	    { "pop3_strict_size", V_ENUM, 0, strict_size_choices },
	[K_EXPUNGE] = { "expunge", V_ENUM, 0, expunge_choices },
	[K_POLL_INTERVAL] = { "poll_interval", V_TIMEOUT, 0, NULL },
	[K_IDLE] = { "idle", V_BOOL, 0, NULL },
	[K_MAX_CONNECTIONS] = { "max_connections", V_COUNT, 0, NULL },
	[K_SERVER_CONNECTIONS] = { "server_connections", V_COUNT, 0, NULL },
	[K_THROTTLE_MAX_WAIT] =
	    { "throttle_max_wait", V_TIMEOUT, 0, NULL },
};

/* The ways to give one secret: inline, file, command, systemd credential
 * ($CREDENTIALS_DIRECTORY/NAME).  One of them per section. */
static const int secret_groups[][4] = {
	{ K_PASSWORD, K_PASSWORD_FILE, K_PASSWORD_COMMAND,
	    K_PASSWORD_CREDENTIAL },
	{ K_OAUTH_CLIENT_SECRET, K_OAUTH_CLIENT_SECRET_FILE,
	    K_OAUTH_CLIENT_SECRET_COMMAND, K_OAUTH_CLIENT_SECRET_CREDENTIAL },
};

/* One key = value line. */
struct entry {
	int line;
	char *value;			/* canonical text; paths expanded */
	struct pm_secret *secret;	/* V_SECRET keys instead of value */
	struct entry *next;		/* repeatable keys: the next one */
	struct entry *last;		/* first of a list: its last one */
};

/* One [defaults] or [account NAME] section. */
struct section {
	char *name;			/* NULL for [defaults] */
	int line;
	struct entry *keys[K__COUNT];
	struct strmap folders;		/* folder value -> its entry */
	struct section *next;
};

struct parser {
	const char *file;
	struct section *defaults;
	struct section *accounts;
	struct section **tail;
	struct strmap names;		/* account name -> its section */
	struct section *cur;
	int inline_secret;		/* password or client secret seen */
};

/* Set *err to "FILE:LINE: KEY: reason" (no KEY part when key < 0). */
static int PM_PRINTF(5, 6)
line_err(const struct parser *p, int line, int key, char **err,
    const char *fmt, ...)
{
	va_list ap;
	char *why;

	va_start(ap, fmt);
	why = xvasprintf(fmt, ap);
	va_end(ap);
	if (key >= 0)
		errf(err, PM_ECONFIG, "%s:%d: %s: %s", p->file, line,
		    keydefs[key].name, why);
	else
		errf(err, PM_ECONFIG, "%s:%d: %s", p->file, line, why);
	free(why);
	return PM_ECONFIG;
}

/* The key named name, or -1. */
static int
key_lookup(const char *name)
{
	int k;

	for (k = 0; k < K__COUNT; k++) {
		if (strcmp(keydefs[k].name, name) == 0)
			return k;
	}
	return -1;
}

/* Strip white space from both ends of s, in place. */
static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* The user's home directory, or NULL. */
static const char *
home_dir(void)
{
	/* The calling thread's own: a reload may run beside the workers. */
	static _Thread_local struct passwd pwbuf;
	static _Thread_local char buf[2048];
	const char *home = getenv("HOME");
	struct passwd *pw = NULL;

	if (home != NULL && *home != '\0')
		return home;
	if (getpwuid_r(getuid(), &pwbuf, buf, sizeof buf, &pw) == 0 &&
	    pw != NULL && pw->pw_dir != NULL && *pw->pw_dir != '\0')
		return pw->pw_dir;
	return NULL;
}

/* Make path absolute: ~/ from $HOME, relative to the current directory.
 * Returns NULL and sets *why_r (malloc'd) on failure. */
static char *
expand_path(const char *path, char **why_r)
{
	const char *home;
	char cwd[4096];

	if (path[0] == '~') {
		if (path[1] != '\0' && path[1] != '/') {
			*why_r = xstrdup("only ~/ is expanded, not ~user");
			return NULL;
		}
		home = home_dir();
		if (home == NULL) {
			*why_r = xstrdup("cannot expand ~: HOME is not set");
			return NULL;
		}
		if (path[1] == '\0')
			return xstrdup(home);
		return xasprintf("%s%s", home, path + 1);
	}
	if (path[0] == '/')
		return xstrdup(path);
	if (getcwd(cwd, sizeof cwd) == NULL) {
		*why_r = xasprintf("cannot find the current directory: %s",
		    pm_strerror(errno));
		return NULL;
	}
	if (strcmp(cwd, "/") == 0)
		return xasprintf("/%s", path);
	return xasprintf("%s/%s", cwd, path);
}

/*
 * Check a delivery target other than maildir: and canonicalise it into
 * *value_r.  0 on success; -1 with *why_r set on a known kind with a bad
 * argument, -1 without when the kind is unknown.
 */
static int has_space(const char *);

static int
parse_deliver(const char *v, char **value_r, char **why_r)
{
	char **argv, *err = NULL, *path, *host;
	unsigned port;

	*value_r = NULL;
	if (strncmp(v, "mbox:", 5) == 0) {
		if (v[5] == '\0') {
			*why_r = xstrdup("mbox: needs a path");
			return -1;
		}
		if ((path = expand_path(v + 5, why_r)) == NULL)
			return -1;
		*value_r = xasprintf("mbox:%s", path);
		free(path);
		return 0;
	}
	if (strncmp(v, "mda:", 4) == 0) {
		if ((argv = deliver_mda_split(v + 4, &err)) == NULL) {
			*why_r = xasprintf("mda: %s", err);
			free(err);
			return -1;
		}
		proc_argv_free(argv);
		*value_r = xstrdup(v);
		return 0;
	}
	if (strncmp(v, "smtp:", 5) == 0 || strncmp(v, "lmtp:", 5) == 0) {
		if (strncmp(v, "lmtp:/", 6) == 0) {
			if (strlen(v + 5) >= 108 || has_space(v + 5)) {
				*why_r = xstrdup("lmtp: bad socket path (at "
				    "most 107 bytes, no white space)");
				return -1;
			}
			*value_r = xstrdup(v);
			return 0;
		}
		if (deliver_hostport(v + 5, v[0] == 's' ? 25 : 24, &host,
		    &port) < 0) {
			*why_r = xasprintf("%.4s: expected HOST[:PORT], "
			    "[ADDRESS]:PORT%s", v, v[0] == 'l' ?
			    " or /SOCKET" : "");
			return -1;
		}
		free(host);
		*value_r = xstrdup(v);
		return 0;
	}
	return -1;
}

/* Set the account's delivery kind and argument from a checked value. */
static void
deliver_resolve(const char *v, struct account *a)
{
	static const struct {
		const char *prefix;
		int kind;
	} kinds[] = {
		{ "maildir:", DELIVER_MAILDIR },
		{ "mbox:", DELIVER_MBOX },
		{ "mda:", DELIVER_MDA },
		{ "smtp:", DELIVER_SMTP },
		{ "lmtp:", DELIVER_LMTP },
	};
	size_t i, n;

	for (i = 0; i < nitems(kinds); i++) {
		n = strlen(kinds[i].prefix);
		if (strncmp(v, kinds[i].prefix, n) == 0) {
			a->deliver_kind = kinds[i].kind;
			a->deliver_path = xstrdup(v + n);
			return;
		}
	}
}

/* The value of name among choices, or -1. */
static int
choice_lookup(const struct choice *choices, const char *name)
{
	int i;

	for (i = 0; choices[i].name != NULL; i++) {
		if (strcasecmp(choices[i].name, name) == 0)
			return i;
	}
	return -1;
}

/* "a, b or c" for an error message; malloc'd. */
static char *
choice_list(const struct choice *choices)
{
	char *s = xstrdup(""), *t;
	int i;

	for (i = 0; choices[i].name != NULL; i++) {
		t = xasprintf("%s%s%s", s, i == 0 ? "" :
		    choices[i + 1].name == NULL ? " or " : ", ",
		    choices[i].name);
		free(s);
		s = t;
	}
	return s;
}

/* Parse a boolean; -1 when s is none. */
static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };
	int i;

	for (i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
	}
	for (i = 0; no[i] != NULL; i++) {
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Parse a decimal number in [min, max]; 0 on success. */
static int
parse_number(const char *s, unsigned long min, unsigned long max,
    unsigned long *n_r)
{
	unsigned long n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > max)
			return -1;
	}
	if (n < min)
		return -1;
	*n_r = n;
	return 0;
}

/* Parse a size in bytes with an optional k, M or G suffix (powers of
 * 1024); 0 on success. */
static int
parse_size(const char *s, uint64_t *n_r)
{
	uint64_t n = 0, mult = 1;
	const char *p;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (p = s; isdigit((unsigned char)*p); p++) {
		if (n > UINT64_MAX / 10 || (n == UINT64_MAX / 10 &&
		    (uint64_t)(*p - '0') > UINT64_MAX % 10))
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1024;
		break;
	case 'm': case 'M':
		mult = 1024 * 1024;
		break;
	case 'g': case 'G':
		mult = 1024 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (n > UINT64_MAX / mult)
		return -1;
	*n_r = n * mult;
	return 0;
}

/* Normalise a sha256 pin to "sha256:" and 64 lowercase hex digits.
 * Colons may separate the bytes.  NULL when s is not one. */
static char *
parse_fingerprint(const char *s)
{
	char hex[65];
	size_t n = 0;
	int pair = 0, colons = 0;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	if (strchr(s, ':') != NULL)
		colons = 1;
	for (; *s != '\0'; s++) {
		if (*s == ':') {
			if (pair != 2)
				return NULL;
			pair = 0;
			continue;
		}
		if (!isxdigit((unsigned char)*s) || n == 64)
			return NULL;
		if (colons && pair == 2)
			return NULL;
		hex[n++] = (char)tolower((unsigned char)*s);
		pair++;
	}
	if (n != 64 || (colons && pair != 2))
		return NULL;
	hex[n] = '\0';
	return xasprintf("sha256:%s", hex);
}

/* Check the {placeholder}s of a token URL: only {tenant} is known. */
static int
check_placeholders(const char *s, char **why_r)
{
	const char *open, *close;

	while ((open = strchr(s, '{')) != NULL) {
		close = strchr(open, '}');
		if (close == NULL) {
			*why_r = xstrdup("'{' without '}'");
			return -1;
		}
		if ((size_t)(close - open) != 7 ||
		    strncmp(open, "{tenant}", 8) != 0) {
			*why_r = xasprintf("unknown placeholder %.*s (only "
			    "{tenant} is known)", (int)(close - open + 1),
			    open);
			return -1;
		}
		s = close + 1;
	}
	if (strchr(s, '}') != NULL) {
		*why_r = xstrdup("'}' without '{'");
		return -1;
	}
	return 0;
}

/* Whether s has white space or control characters. */
static int
has_space(const char *s)
{
	for (; *s != '\0'; s++) {
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return 1;
	}
	return 0;
}

/* Remove the double quotes of a quoted value in place, handling \" and
 * \\.  Returns NULL and sets *why_r (static text) on error. */
static char *
unquote(char *v, const char **why_r)
{
	char *in = v + 1, *out = v;

	for (;;) {
		if (*in == '\0') {
			*why_r = "unterminated quote";
			return NULL;
		}
		if (*in == '"')
			break;
		if (*in == '\\') {
			in++;
			if (*in != '"' && *in != '\\') {
				*why_r = "only \\\" and \\\\ are escapes "
				    "inside quotes";
				return NULL;
			}
		}
		*out++ = *in++;
	}
	in++;
	while (isspace((unsigned char)*in))
		in++;
	if (*in != '\0') {
		*why_r = "text after the closing quote";
		return NULL;
	}
	*out = '\0';
	return v;
}

/* Free one section with its entries, wiping secrets. */
static void
section_free(struct section *s)
{
	struct entry *e, *next;
	int k;

	if (s == NULL)
		return;
	for (k = 0; k < K__COUNT; k++) {
		for (e = s->keys[k]; e != NULL; e = next) {
			next = e->next;
			free(e->value);
			secret_free(e->secret);
			free(e);
		}
	}
	strmap_free(&s->folders);
	free(s->name);
	free(s);
}

/* The secret group of key k, or NULL. */
static const int *
secret_group(int k)
{
	size_t i, j;

	for (i = 0; i < nitems(secret_groups); i++) {
		for (j = 0; j < 4; j++) {
			if (secret_groups[i][j] == k)
				return secret_groups[i];
		}
	}
	return NULL;
}

/* Check and store one key = value in the current section. */
static int
set_value(struct parser *p, int line, int k, char *v, char **err)
{
	const struct keydef *kd = &keydefs[k];
	struct section *sec = p->cur;
	struct entry *e;
	struct strmap_entry *dup;
	char *value = NULL, *why = NULL, *list, *path, **argv;
	const char *cwhy;
	unsigned long n;
	uint64_t size;
	const int *g;
	int i, r, other = -1;

	if (!kd->repeat && sec->keys[k] != NULL)
		return line_err(p, line, k, err, "already set at line %d",
		    sec->keys[k]->line);
	if ((g = secret_group(k)) != NULL) {
		for (i = 0; i < 4; i++) {
			if (g[i] != k && sec->keys[g[i]] != NULL)
				other = g[i];
		}
	}
	if (other >= 0 && sec->keys[other] != NULL)
		return line_err(p, line, k, err, "%s is already set at line "
		    "%d; give the secret once, as %s or as %s",
		    keydefs[other].name, sec->keys[other]->line,
		    keydefs[other].name, kd->name);
	if (*v == '\0')
		return line_err(p, line, k, err, "empty value");

	switch (kd->type) {
	case V_TEXT:
		value = xstrdup(v);
		break;
	case V_COMMAND:
		if ((argv = proc_split(v, &why)) == NULL) {
			r = line_err(p, line, k, err, "%s", why);
			free(why);
			return r;
		}
		proc_argv_free(argv);
		value = xstrdup(v);
		break;
	case V_WORD:
		if (has_space(v))
			return line_err(p, line, k, err, "\"%s\" contains "
			    "white space", v);
		value = xstrdup(v);
		break;
	case V_PORT:
		if (parse_number(v, 1, 65535, &n) != 0)
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected a number from 1 to 65535)", v);
		value = xstrdup(v);
		break;
	case V_TIMEOUT:
		if (parse_number(v, 1, TIMEOUT_MAX, &n) != 0)
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected seconds from 1 to %d)", v,
			    TIMEOUT_MAX);
		value = xstrdup(v);
		break;
	case V_COUNT:
		if (parse_number(v, 1, COUNT_MAX, &n) != 0)
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected a number from 1 to %d)", v, COUNT_MAX);
		if (k == K_MAX_CONNECTIONS && sec->name != NULL)
			return line_err(p, line, k, err, "belongs in "
			    "[defaults]: it bounds the sessions of all "
			    "accounts together");
		value = xstrdup(v);
		break;
	case V_BOOL:
		if (parse_bool(v) < 0)
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected yes or no)", v);
		value = xstrdup(v);
		break;
	case V_ENUM:
		i = choice_lookup(kd->choices, v);
		if (i < 0) {
			list = choice_list(kd->choices);
			line_err(p, line, k, err, "bad value \"%s\" (expected "
			    "%s)", v, list);
			free(list);
			return PM_ECONFIG;
		}
		value = xstrdup(kd->choices[i].name);
		break;
	case V_PATH:
		value = expand_path(v, &why);
		break;
	case V_SECRET:
		p->inline_secret = 1;
		break;
	case V_FINGERPRINT:
		value = parse_fingerprint(v);
		if (value == NULL)
			return line_err(p, line, k, err, "bad value (expected "
			    "a sha256 fingerprint: 64 hex digits, colons "
			    "allowed, optional \"sha256:\" prefix)");
		break;
	case V_DELIVER:
		if (strncmp(v, "maildir:", 8) == 0) {
			if (v[8] == '\0')
				return line_err(p, line, k, err, "maildir: "
				    "needs a path");
			if ((path = expand_path(v + 8, &why)) != NULL)
				value = xasprintf("maildir:%s", path);
			free(path);
			break;
		}
		if (parse_deliver(v, &value, &why) == 0)
			break;
		if (why != NULL)
			break;
		return line_err(p, line, k, err, "bad value \"%s\" (expected "
		    "maildir:PATH, mbox:PATH, mda:COMMAND, smtp:HOST[:PORT] "
		    "or lmtp:/SOCKET or lmtp:HOST:PORT)", v);
	case V_ADDRESS:
		if (!envelope_addr_valid(v, 0))
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected an address such as alice or "
			    "alice@example.org)", v);
		value = xstrdup(v);
		break;
	case V_SENDER:
		if (strcmp(v, "<>") != 0 && !envelope_addr_valid(v, 1))
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected an address such as alice@example.org, "
			    "or <>)", v);
		value = xstrdup(v);
		break;
	case V_URL:
		if (has_space(v))
			return line_err(p, line, k, err, "\"%s\" contains "
			    "white space", v);
		if (url_check_endpoint(v, &cwhy) != 0)
			return line_err(p, line, k, err, "\"%s\": %s", v,
			    cwhy);
		if (check_placeholders(v, &why) != 0)
			break;
		value = xstrdup(v);
		break;
	case V_SIZE:
		if (parse_size(v, &size) != 0)
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected bytes, optionally with k, M or G)", v);
		value = xstrdup(v);
		break;
	case V_TENANT:
		if (!provider_is_tenant(v, strlen(v)))
			return line_err(p, line, k, err, "bad value \"%s\" "
			    "(expected a tenant ID or domain name)", v);
		value = xstrdup(v);
		break;
	}
	if (why != NULL) {
		line_err(p, line, k, err, "%s", why);
		free(why);
		free(value);
		return PM_ECONFIG;
	}

	e = xcalloc(1, sizeof *e);
	e->line = line;
	e->value = value;
	if (k == K_FOLDER) {
		dup = strmap_put(&sec->folders, value, e);
		if (dup->value != e) {
			line_err(p, line, k, err, "\"%s\" is already "
			    "listed at line %d", value,
			    ((struct entry *)dup->value)->line);
			free(value);
			free(e);
			return PM_ECONFIG;
		}
	}
	if (kd->type == V_SECRET)
		e->secret = secret_from_str(v);
	if (sec->keys[k] == NULL)
		sec->keys[k] = e;
	else
		sec->keys[k]->last->next = e;
	sec->keys[k]->last = e;
	return PM_OK;
}

/* Whether name is usable as an account name (also a state file name). */
static int
good_account_name(const char *name)
{
	const char *s;

	if (*name == '.')
		return 0;
	for (s = name; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("._-+@", *s) == NULL)
			return 0;
	}
	return 1;
}

/* Parse a [section] header line (s starts with '['). */
static int
parse_header(struct parser *p, int line, char *s, char **err)
{
	struct section *sec;
	struct strmap_entry *first;
	char *end, *type, *name;

	end = strrchr(s, ']');
	if (end == NULL)
		return line_err(p, line, -1, err, "'[' without ']'");
	if (*trim(end + 1) != '\0')
		return line_err(p, line, -1, err, "text after the section "
		    "header");
	*end = '\0';
	type = trim(s + 1);
	name = type + strcspn(type, " \t");
	if (*name != '\0')
		*name++ = '\0';
	name = trim(name);

	if (strcmp(type, "defaults") == 0) {
		if (*name != '\0')
			return line_err(p, line, -1, err, "[defaults] takes "
			    "no name");
		if (p->defaults != NULL)
			return line_err(p, line, -1, err, "[defaults] is "
			    "already defined at line %d", p->defaults->line);
		sec = xcalloc(1, sizeof *sec);
		sec->line = line;
		p->defaults = sec;
		p->cur = sec;
		return PM_OK;
	}
	if (strcmp(type, "account") != 0)
		return line_err(p, line, -1, err, "unknown section type "
		    "\"%s\" (expected [defaults] or [account NAME])", type);
	if (*name == '\0')
		return line_err(p, line, -1, err, "empty account name");
	if (!good_account_name(name))
		return line_err(p, line, -1, err, "bad account name \"%s\" "
		    "(letters, digits and . _ - + @ only, not starting "
		    "with .)", name);
	sec = xcalloc(1, sizeof *sec);
	first = strmap_put(&p->names, name, sec);
	if (first->value != sec) {
		free(sec);
		return line_err(p, line, -1, err, "duplicate account "
		    "name \"%s\" (first at line %d)", name,
		    ((struct section *)first->value)->line);
	}
	sec->name = xstrdup(name);
	sec->line = line;
	*p->tail = sec;
	p->tail = &sec->next;
	p->cur = sec;
	return PM_OK;
}

/* Parse one line (NUL-terminated, newline removed). */
static int
parse_line(struct parser *p, int line, char *s, char **err)
{
	char *eq, *key, *value;
	const char *why;
	int k;

	s = trim(s);
	if (*s == '\0' || *s == '#')
		return PM_OK;
	if (*s == '[')
		return parse_header(p, line, s, err);

	eq = strchr(s, '=');
	if (eq == NULL)
		return line_err(p, line, -1, err, "missing '=' (expected "
		    "key = value)");
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (*key == '\0')
		return line_err(p, line, -1, err, "missing key before '='");
	if (key[strspn(key, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")] != '\0')
		return line_err(p, line, -1, err, "malformed key (expected "
		    "key = value)");
	k = key_lookup(key);
	if (k < 0)
		return errf(err, PM_ECONFIG, "%s:%d: %s: unknown key",
		    p->file, line, key);
	if (p->cur == NULL)
		return line_err(p, line, k, err, "outside of any section "
		    "(put [account NAME] or [defaults] above it)");
	if (*value == '"' && unquote(value, &why) == NULL)
		return line_err(p, line, k, err, "%s", why);
	return set_value(p, line, k, value, err);
}

/* A regular file's size, as a hint for secret_read_fd(). */
static size_t
size_hint(const struct stat *sb)
{
	return sb->st_size > 0 ? (size_t)sb->st_size : 0;
}

/* "PATH: mode 0644 lets others read the secret; run chmod 600 PATH". */
static char *
mode_reason(const char *path, mode_t mode)
{
	return xasprintf("%s: mode %04o lets others read the secret; run "
	    "chmod 600 %s", path, (unsigned)(mode & 07777), path);
}

/* Read a secret file: a private regular file of at most 64 KiB; trailing
 * newlines are stripped.  NULL with *why_r (malloc'd) on failure. */
static struct pm_secret *
read_secret_file(const char *path, char **why_r)
{
	struct pm_secret *s;
	struct stat sb;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*why_r = xasprintf("%s: %s", path, pm_strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0) {
		*why_r = xasprintf("%s: %s", path, pm_strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		*why_r = xasprintf("%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if ((sb.st_mode & 077) != 0) {
		*why_r = mode_reason(path, sb.st_mode);
		close(fd);
		return NULL;
	}
	if (secret_read_fd(fd, SECRET_MAX_SIZE, size_hint(&sb), &s) != 0) {
		*why_r = errno == EFBIG ?
		    xasprintf("%s: larger than %d bytes", path,
		    SECRET_MAX_SIZE) :
		    xasprintf("%s: %s", path, pm_strerror(errno));
		close(fd);
		return NULL;
	}
	close(fd);
	while (s->len > 0 &&
	    (s->data[s->len - 1] == '\n' || s->data[s->len - 1] == '\r'))
		s->data[--s->len] = '\0';
	if (s->len == 0) {
		secret_free(s);
		*why_r = xasprintf("%s: the file is empty", path);
		return NULL;
	}
	secret_register(s);
	return s;
}

/* The entry in effect for key k of account sec: its own, else [defaults]. */
static struct entry *
eff(const struct parser *p, const struct section *sec, int k)
{
	if (sec->keys[k] != NULL)
		return sec->keys[k];
	return p->defaults != NULL ? p->defaults->keys[k] : NULL;
}

/* A secret given as key k or as file key kf, taken together from one
 * section: an account setting either ignores both in [defaults].  Returns
 * the entry in effect (or NULL) and whether it is the file key. */
static struct entry *
eff_secret(const struct parser *p, const struct section *sec, int k, int kf,
    int *k_r)
{
	const struct section *from = p->defaults;
	const int *g = secret_group(k);
	int i;

	(void)kf;
	for (i = 0; i < 4; i++) {
		if (sec->keys[g[i]] != NULL)
			from = sec;
	}
	*k_r = k;
	if (from == NULL)
		return NULL;
	for (i = 0; i < 4; i++) {
		if (from->keys[g[i]] != NULL) {
			*k_r = g[i];
			return from->keys[g[i]];
		}
	}
	return NULL;
}

/* Get the secret of entry e (key k): inline, or read from its file. */
static int
load_secret(const struct parser *p, struct entry *e, int k,
    struct pm_secret **s_r, char **err)
{
	char *why = NULL;
	int r = PM_ECONFIG;

	const char *dir;
	char *path;

	if (keydefs[k].type == V_SECRET) {
		*s_r = secret_dup(e->secret);
		return PM_OK;
	}
	if (k == K_PASSWORD_COMMAND || k == K_OAUTH_CLIENT_SECRET_COMMAND)
		r = command_secret(e->value, SECRET_MAX_SIZE, COMMAND_TIMEOUT,
		    s_r, &why);
	else if (k == K_PASSWORD_CREDENTIAL ||
	    k == K_OAUTH_CLIENT_SECRET_CREDENTIAL) {
		dir = getenv("CREDENTIALS_DIRECTORY");
		if (dir == NULL || *dir != '/' || strchr(e->value, '/') !=
		    NULL) {
			*s_r = NULL;
			why = xstrdup(dir == NULL || *dir != '/' ?
			    "$CREDENTIALS_DIRECTORY is not set (systemd's "
			    "LoadCredential= sets it)" : "a credential name "
			    "has no '/'");
		} else {
			path = xasprintf("%s/%s", dir, e->value);
			*s_r = read_secret_file(path, &why);
			free(path);
		}
	} else
		*s_r = read_secret_file(e->value, &why);
	if (*s_r == NULL) {
		line_err(p, e->line, k, err, "%s", why);
		free(why);
		return r == PM_ETEMP ? PM_ETEMP : PM_ECONFIG;
	}
	return PM_OK;
}

/* The value of an enum key (first choice when unset). */
static int
eff_choice(const struct parser *p, const struct section *sec, int k)
{
	struct entry *e = eff(p, sec, k);
	int i;

	if (e == NULL)
		return keydefs[k].choices[0].value;
	i = choice_lookup(keydefs[k].choices, e->value);
	return keydefs[k].choices[i].value;
}

/* Error for a key the account lacks, naming the [account NAME] line. */
static int
missing(const struct parser *p, const struct section *sec, int k,
    char **err, const char *why)
{
	return line_err(p, sec->line, k, err, "missing in [account %s]%s%s",
	    sec->name, why != NULL ? ": " : "", why != NULL ? why : "");
}

/* Replace {tenant} in url; NULL when it is needed and tenant is NULL. */
static char *
expand_url(const char *url, const char *tenant)
{
	const char *s;
	char *out = xstrdup(""), *t;

	while ((s = strstr(url, "{tenant}")) != NULL) {
		if (tenant == NULL) {
			free(out);
			return NULL;
		}
		t = xasprintf("%s%.*s%s", out, (int)(s - url), url, tenant);
		free(out);
		out = t;
		url = s + 8;
	}
	t = xasprintf("%s%s", out, url);
	free(out);
	return t;
}

/* The default state directory; NULL when there is no home. */
static char *
default_state_dir(void)
{
	const char *xdg, *home;

	if (geteuid() == 0)
		return xstrdup("/var/lib/pullmail");
	xdg = getenv("XDG_STATE_HOME");
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/pullmail", xdg);
	home = home_dir();
	if (home == NULL)
		return NULL;
	return xasprintf("%s/.local/state/pullmail", home);
}

/* The provider's default endpoint which (provider table), for the tenant
 * and the oauth_authority of sec; NULL when it has none. */
static char *
default_endpoint(const struct parser *p, const struct section *sec,
    const struct account *a, int which)
{
	struct entry *auth = eff(p, sec, K_OAUTH_AUTHORITY);

	return provider_endpoint(a->oauth_provider, auth != NULL ?
	    auth->value : NULL, a->oauth_tenant, which);
}

/* The endpoints of a delegated flow (device code, authorization code). */
static int
build_delegated(const struct parser *p, const struct section *sec,
    struct account *a, char **err)
{
	struct entry *dev, *authz, *port;
	const char *why;
	unsigned long n;

	dev = eff(p, sec, K_OAUTH_DEVICE_URL);
	authz = eff(p, sec, K_OAUTH_AUTHORIZE_URL);
	port = eff(p, sec, K_OAUTH_REDIRECT_PORT);
	if (port != NULL && parse_number(port->value, 1, 65535, &n) == 0)
		a->oauth_redirect_port = (unsigned)n;
	if (dev != NULL) {
		a->oauth_device_url = expand_url(dev->value, a->oauth_tenant);
		if (a->oauth_device_url == NULL)
			return line_err(p, dev->line, K_OAUTH_DEVICE_URL, err,
			    "uses {tenant} but oauth_tenant is not set");
	} else
		a->oauth_device_url = default_endpoint(p, sec, a,
		    PROVIDER_DEVICE);
	if (authz != NULL) {
		a->oauth_authorize_url = expand_url(authz->value,
		    a->oauth_tenant);
		if (a->oauth_authorize_url == NULL)
			return line_err(p, authz->line, K_OAUTH_AUTHORIZE_URL,
			    err, "uses {tenant} but oauth_tenant is not set");
	} else
		a->oauth_authorize_url = default_endpoint(p, sec, a,
		    PROVIDER_AUTHORIZE);
	if (a->oauth_flow == OAUTH_FLOW_DEVICE &&
	    (why = provider_flow_refused(a->oauth_provider,
	    a->oauth_flow)) != NULL)
		return line_err(p, eff(p, sec, K_OAUTH_FLOW)->line,
		    K_OAUTH_FLOW, err, "%s", why);
	if (a->oauth_issuer != NULL)
		return PM_OK;	/* the rest comes from discovery */
	if (a->oauth_flow == OAUTH_FLOW_DEVICE && a->oauth_device_url == NULL)
		return missing(p, sec, K_OAUTH_DEVICE_URL, err,
		    "oauth_flow device needs it");
	if (a->oauth_flow == OAUTH_FLOW_AUTH_CODE &&
	    a->oauth_authorize_url == NULL)
		return missing(p, sec, K_OAUTH_AUTHORIZE_URL, err,
		    "oauth_flow authorization_code needs it");
	return PM_OK;
}

/* private_key_jwt: the certificate and its key, instead of a secret. */
static int
build_client_key(const struct parser *p, const struct section *sec,
    struct account *a, const struct entry *sec_e, int sk, char **err)
{
	struct entry *cert, *key;
	char *why = NULL;

	cert = eff(p, sec, K_OAUTH_CLIENT_CERT);
	key = eff(p, sec, K_OAUTH_CLIENT_KEY);
	if (cert == NULL && key == NULL)
		return PM_OK;
	if (cert == NULL)
		return missing(p, sec, K_OAUTH_CLIENT_CERT, err,
		    "oauth_client_key needs it (its x5t thumbprint)");
	if (key == NULL)
		return missing(p, sec, K_OAUTH_CLIENT_KEY, err,
		    "oauth_client_certificate needs it");
	if (sec_e != NULL)
		return line_err(p, sec_e->line, sk, err, "give either a "
		    "client secret or a certificate (line %d), not both",
		    cert->line);
	if (access(cert->value, R_OK) != 0)
		return line_err(p, cert->line, K_OAUTH_CLIENT_CERT, err,
		    "%s: %s", cert->value, pm_strerror(errno));
	a->oauth_client_key = read_secret_file(key->value, &why);
	if (a->oauth_client_key == NULL) {
		line_err(p, key->line, K_OAUTH_CLIENT_KEY, err, "%s", why);
		free(why);
		return PM_ECONFIG;
	}
	a->oauth_client_cert = xstrdup(cert->value);
	return PM_OK;
}

/* Work out the OAuth settings of account a from section sec, including
 * the HarePoint form of user. */
static int
build_oauth(const struct parser *p, const struct section *sec,
    struct account *a, char **err)
{
	static const int oauth_keys[] = {
		K_OAUTH_TENANT, K_OAUTH_CLIENT_SECRET,
		K_OAUTH_CLIENT_SECRET_FILE, K_OAUTH_TOKEN_URL, K_OAUTH_SCOPE,
		K_OAUTH_CLIENT_AUTH, K_OAUTH_FLOW, K_OAUTH_DEVICE_URL,
		K_OAUTH_AUTHORIZE_URL, K_OAUTH_REDIRECT_PORT,
		K_OAUTH_CLIENT_CERT, K_OAUTH_CLIENT_KEY, K_OAUTH_ISSUER,
		K_OAUTH_AUTHORITY, K_OAUTH_CLIENT_SECRET_COMMAND,
		K_OAUTH_CLIENT_SECRET_CREDENTIAL
	};
	struct entry *prov, *cid, *tenant, *url, *scope, *sec_e, *pw_e, *e;
	struct entry *user_e = eff(p, sec, K_USER);
	char *u = a->user;
	const char *at1 = NULL, *at2 = NULL, *refused;
	int harepoint = 0, sk, pk, r;
	size_t i, mlen = 0, clen = 0;

	prov = eff(p, sec, K_OAUTH_PROVIDER);
	/* A token from the user's own helper: nothing else is needed. */
	if ((e = eff(p, sec, K_OAUTH_TOKEN_COMMAND)) != NULL) {
		a->oauth_token_command = xstrdup(e->value);
		a->oauth_provider = prov != NULL ? eff_choice(p, sec,
		    K_OAUTH_PROVIDER) : OAUTH_GENERIC;
		return PM_OK;
	}
	cid = eff(p, sec, K_OAUTH_CLIENT_ID);
	tenant = eff(p, sec, K_OAUTH_TENANT);
	url = eff(p, sec, K_OAUTH_TOKEN_URL);
	scope = eff(p, sec, K_OAUTH_SCOPE);
	sec_e = eff_secret(p, sec, K_OAUTH_CLIENT_SECRET,
	    K_OAUTH_CLIENT_SECRET_FILE, &sk);
	pw_e = eff_secret(p, sec, K_PASSWORD, K_PASSWORD_FILE, &pk);

	/* Microsoft 365's MAILBOX@CLIENTID@TENANTID, when no client ID is
	 * set on its own. */
	if (cid == NULL)
		harepoint = provider_split_user(u, &mlen, &at1, &clen,
		    &at2) != OAUTH_NONE;

	if (harepoint) {
		if (prov != NULL && strcmp(prov->value, "microsoft") != 0)
			return line_err(p, prov->line, K_OAUTH_PROVIDER, err,
			    "the user (line %d) has the Microsoft 365 form "
			    "MAILBOX@CLIENTID@TENANTID", user_e->line);
		if (tenant != NULL && strcmp(tenant->value, at2) != 0)
			return line_err(p, tenant->line, K_OAUTH_TENANT, err,
			    "differs from the tenant in user (line %d)",
			    user_e->line);
		if (pw_e != NULL && sec_e != NULL)
			return line_err(p, sec_e->line, sk, err, "the client "
			    "secret is also given as %s (line %d) for the "
			    "user form MAILBOX@CLIENTID@TENANTID; give it "
			    "once", keydefs[pk].name, pw_e->line);
		if (pw_e != NULL) {
			sec_e = pw_e;
			sk = pk;
		}
		a->oauth_provider = provider_split_user(u, &mlen, &at1,
		    &clen, &at2);
		a->oauth_client_id = xstrndup(at1, clen);
		a->oauth_tenant = xstrdup(at2);
		a->user = xstrndup(u, mlen);
		free(u);
	} else {
		if (prov != NULL)
			a->oauth_provider = eff_choice(p, sec,
			    K_OAUTH_PROVIDER);
		else if (cid != NULL && url != NULL)
			a->oauth_provider = OAUTH_GENERIC;
		else if (cid != NULL)
			return line_err(p, cid->line, K_OAUTH_CLIENT_ID, err,
			    "set oauth_provider too (microsoft, or generic "
			    "with oauth_token_url)");
		if (a->oauth_provider == OAUTH_NONE) {
			for (i = 0; i < nitems(oauth_keys); i++) {
				if ((e = eff(p, sec, oauth_keys[i])) != NULL)
					return line_err(p, e->line,
					    oauth_keys[i], err, "OAuth is not "
					    "configured for [account %s] (set "
					    "oauth_provider and "
					    "oauth_client_id)", sec->name);
			}
			return PM_OK;
		}
		if (cid == NULL)
			return missing(p, sec, K_OAUTH_CLIENT_ID, err,
			    "oauth_provider needs it");
		a->oauth_client_id = xstrdup(cid->value);
		if (tenant != NULL)
			a->oauth_tenant = xstrdup(tenant->value);
		if (pw_e != NULL)
			return line_err(p, pw_e->line, pk, err, "not used: "
			    "[account %s] logs in with OAuth (the client "
			    "secret is oauth_client_secret)", sec->name);
	}

	if (provider_needs_tenant(a->oauth_provider) && a->oauth_tenant == NULL)
		return missing(p, sec, K_OAUTH_TENANT, err,
		    "oauth_provider microsoft needs it");
	if ((e = eff(p, sec, K_OAUTH_ISSUER)) != NULL)
		a->oauth_issuer = xstrdup(e->value);
	if (a->oauth_provider == OAUTH_GENERIC && url == NULL &&
	    a->oauth_issuer == NULL)
		return missing(p, sec, K_OAUTH_TOKEN_URL, err,
		    "oauth_provider generic needs it (or oauth_issuer)");
	if (url != NULL) {
		a->oauth_token_url = expand_url(url->value, a->oauth_tenant);
		if (a->oauth_token_url == NULL)
			return line_err(p, url->line, K_OAUTH_TOKEN_URL, err,
			    "uses {tenant} but oauth_tenant is not set");
	} else
		a->oauth_token_url = default_endpoint(p, sec, a,
		    PROVIDER_TOKEN);
	/* A secret or a certificate means an app; none, a public client
	 * signing in a person (the provider table says by which flow). */
	if ((e = eff(p, sec, K_OAUTH_FLOW)) != NULL)
		a->oauth_flow = eff_choice(p, sec, K_OAUTH_FLOW);
	else
		a->oauth_flow = provider_default_flow(a->oauth_provider,
		    sec_e != NULL || harepoint ||
		    eff(p, sec, K_OAUTH_CLIENT_KEY) != NULL,
		    &a->oauth_flow_auto);
	if (a->oauth_flow == OAUTH_FLOW_CLIENT_CREDENTIALS &&
	    (refused = provider_flow_refused(a->oauth_provider,
	    a->oauth_flow)) != NULL)
		return line_err(p, e->line, K_OAUTH_FLOW, err, "%s", refused);
	if (scope != NULL)
		a->oauth_scope = xstrdup(scope->value);
	else if (provider_scope(a->oauth_provider, a->oauth_flow) != NULL)
		a->oauth_scope = xstrdup(provider_scope(a->oauth_provider,
		    a->oauth_flow));
	a->oauth_client_auth = eff_choice(p, sec, K_OAUTH_CLIENT_AUTH);
	if ((r = build_delegated(p, sec, a, err)) != PM_OK)
		return r;
	if ((r = build_client_key(p, sec, a, sec_e, sk, err)) != PM_OK)
		return r;
	if (a->oauth_client_key != NULL)
		return PM_OK;

	/* A delegated flow may use a public client (no secret). */
	if (sec_e == NULL && a->oauth_flow != OAUTH_FLOW_CLIENT_CREDENTIALS)
		return PM_OK;
	if (sec_e == NULL)
		return missing(p, sec, K_OAUTH_CLIENT_SECRET, err,
		    "OAuth needs a client secret (oauth_client_secret, "
		    "_file, _command or _credential) or a certificate");
	return load_secret(p, sec_e, sk, &a->oauth_client_secret, err);
}

/* Mix len bytes into the 64-bit FNV-1a hash h. */
static uint64_t
fnv(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/*
 * A hash of every setting in effect for account sec (its own and those it
 * inherits, secrets included), so that a reload can tell an account whose
 * settings did not change.  A secret read from a file or a command is
 * covered by its key (the path or the command), not its bytes.
 */
static uint64_t
fingerprint(const struct parser *p, const struct section *sec)
{
	const struct entry *e;
	uint64_t h = 0xcbf29ce484222325ull;
	int k;

	h = fnv(h, sec->name, strlen(sec->name) + 1);
	for (k = 0; k < K__COUNT; k++) {
		for (e = eff(p, sec, k); e != NULL; e = e->next) {
			h = fnv(h, keydefs[k].name,
			    strlen(keydefs[k].name) + 1);
			if (e->secret != NULL)
				h = fnv(h, e->secret->data, e->secret->len);
			else if (e->value != NULL)
				h = fnv(h, e->value, strlen(e->value) + 1);
		}
	}
	return h;
}

/* Build and check the account of section sec. */
static int
build_account(const struct parser *p, const struct section *sec,
    struct account *a, char **err)
{
	struct entry *e, *f, *pw_e;
	unsigned long n;
	size_t nf = 0;
	int pk, r;

	a->name = xstrdup(sec->name);
	a->file = xstrdup(p->file);
	a->line = sec->line;

	if ((e = eff(p, sec, K_SERVER)) == NULL)
		return missing(p, sec, K_SERVER, err, NULL);
	a->server = xstrdup(e->value);
	if ((e = eff(p, sec, K_PORT)) != NULL &&
	    parse_number(e->value, 1, 65535, &n) == 0)
		a->port = (unsigned)n;
	e = eff(p, sec, K_PROTOCOL);
	a->protocol = xstrdup(e != NULL ? e->value : "imap");
	a->tls = eff_choice(p, sec, K_TLS);
	if ((e = eff(p, sec, K_CA_FILE)) != NULL) {
		if (access(e->value, R_OK) != 0)
			return line_err(p, e->line, K_CA_FILE, err, "%s: %s",
			    e->value, pm_strerror(errno));
		a->ca_file = xstrdup(e->value);
	}
	if ((e = eff(p, sec, K_TLS_FINGERPRINT)) != NULL)
		a->tls_fingerprint = xstrdup(e->value);
	if ((e = eff(p, sec, K_USER)) == NULL)
		return missing(p, sec, K_USER, err, NULL);
	a->user = xstrdup(e->value);
	a->auth = eff_choice(p, sec, K_AUTH);

	if ((r = build_oauth(p, sec, a, err)) != PM_OK)
		return r;
	e = eff(p, sec, K_AUTH);
	if (account_uses_oauth(a)) {
		if (a->auth == AUTH_PLAIN || a->auth == AUTH_LOGIN)
			return line_err(p, e->line, K_AUTH, err, "%s sends a "
			    "password, but [account %s] logs in with OAuth",
			    e->value, sec->name);
	} else {
		if (a->auth == AUTH_XOAUTH2 || a->auth == AUTH_OAUTHBEARER)
			return line_err(p, e->line, K_AUTH, err, "%s needs "
			    "OAuth settings (oauth_provider, oauth_client_id, "
			    "...) in [account %s]", e->value, sec->name);
		pw_e = eff_secret(p, sec, K_PASSWORD, K_PASSWORD_FILE, &pk);
		if (pw_e == NULL &&
		    (a->auth == AUTH_PLAIN || a->auth == AUTH_LOGIN))
			return line_err(p, e->line, K_AUTH, err, "%s needs "
			    "a password (password, password_file, "
			    "password_command or password_credential) in "
			    "[account %s]", e->value, sec->name);
		if (pw_e == NULL)
			return missing(p, sec, K_PASSWORD, err, "set password, "
			    "password_file, password_command or "
			    "password_credential, or configure OAuth");
		if ((r = load_secret(p, pw_e, pk, &a->password, err)) != 0)
			return r;
	}

	if ((e = eff(p, sec, K_FOLDER)) == NULL) {
		a->folders = xcalloc(1, sizeof *a->folders);
		a->folders[0] = xstrdup("INBOX");
		a->nfolders = 1;
	} else {
		for (f = e; f != NULL; f = f->next)
			nf++;
		a->folders = xcalloc(nf, sizeof *a->folders);
		for (; e != NULL; e = e->next)
			a->folders[a->nfolders++] = xstrdup(e->value);
	}
	e = eff(p, sec, K_KEEP);
	a->keep = e != NULL ? parse_bool(e->value) : 1;
	e = eff(p, sec, K_MARK_SEEN);
	a->mark_seen = e != NULL ? parse_bool(e->value) : 0;
	if ((e = eff(p, sec, K_SIZE_LIMIT)) != NULL)
		(void)parse_size(e->value, &a->size_limit);
	e = eff(p, sec, K_FETCH_ALL);
	a->fetch_all = e != NULL ? parse_bool(e->value) : 0;
	e = eff(p, sec, K_POP3_XOAUTH2_TWO_STEP);
	a->pop3_xoauth2_two_step = e != NULL ? parse_bool(e->value) : 1;
	a->pop3_strict_size = eff_choice(p, sec, K_POP3_STRICT_SIZE);
	a->expunge = eff_choice(p, sec, K_EXPUNGE);

	if ((e = eff(p, sec, K_DELIVER)) == NULL)
		return missing(p, sec, K_DELIVER, err, "say where mail goes, "
		    "e.g. deliver = maildir:~/Maildir");
	deliver_resolve(e->value, a);
	if ((e = eff(p, sec, K_RECIPIENT)) != NULL)
		a->recipient = xstrdup(e->value);
	if ((e = eff(p, sec, K_ENVELOPE_SENDER)) != NULL)
		a->envelope_sender = xstrdup(strcmp(e->value, "<>") == 0 ?
		    "" : e->value);
	a->mda_timeout = 600;
	if ((e = eff(p, sec, K_MDA_TIMEOUT)) != NULL &&
	    parse_number(e->value, 1, TIMEOUT_MAX, &n) == 0)
		a->mda_timeout = (unsigned)n;
	a->lock_timeout = 60;
	if ((e = eff(p, sec, K_LOCK_TIMEOUT)) != NULL &&
	    parse_number(e->value, 1, TIMEOUT_MAX, &n) == 0)
		a->lock_timeout = (unsigned)n;
	e = eff(p, sec, K_ADD_RETURN_PATH);
	a->add_return_path = e != NULL ? parse_bool(e->value) : 0;
	e = eff(p, sec, K_ADD_DELIVERED_TO);
	a->add_delivered_to = e != NULL ? parse_bool(e->value) : 0;
	e = eff(p, sec, K_ADD_RECEIVED);
	a->add_received = e != NULL ? parse_bool(e->value) : 0;

	if ((e = eff(p, sec, K_STATE_DIR)) != NULL)
		a->state_dir = xstrdup(e->value);
	else if ((a->state_dir = default_state_dir()) == NULL)
		return missing(p, sec, K_STATE_DIR, err, "no default without "
		    "HOME");
	if ((e = eff(p, sec, K_NOTIFY_COMMAND)) != NULL)
		a->notify_command = xstrdup(e->value);
	a->timeout = 60;
	if ((e = eff(p, sec, K_TIMEOUT)) != NULL &&
	    parse_number(e->value, 1, TIMEOUT_MAX, &n) == 0)
		a->timeout = (unsigned)n;
	a->poll_interval = 300;
	if ((e = eff(p, sec, K_POLL_INTERVAL)) != NULL &&
	    parse_number(e->value, 1, TIMEOUT_MAX, &n) == 0)
		a->poll_interval = (unsigned)n;
	e = eff(p, sec, K_IDLE);
	a->idle = e != NULL ? parse_bool(e->value) : 1;
	a->server_connections = 32;
	if ((e = eff(p, sec, K_SERVER_CONNECTIONS)) != NULL &&
	    parse_number(e->value, 1, COUNT_MAX, &n) == 0)
		a->server_connections = (unsigned)n;
	a->fingerprint = fingerprint(p, sec);
	a->throttle_max_wait = 60;
	if ((e = eff(p, sec, K_THROTTLE_MAX_WAIT)) != NULL &&
	    parse_number(e->value, 1, TIMEOUT_MAX, &n) == 0)
		a->throttle_max_wait = (unsigned)n;
	return PM_OK;
}

/* Free one account. */
static void
account_free(struct account *a)
{
	size_t i;

	free(a->name);
	free(a->file);
	free(a->server);
	free(a->protocol);
	free(a->ca_file);
	free(a->tls_fingerprint);
	free(a->user);
	secret_free(a->password);
	free(a->oauth_tenant);
	free(a->oauth_client_id);
	secret_free(a->oauth_client_secret);
	free(a->oauth_token_url);
	free(a->oauth_scope);
	free(a->oauth_device_url);
	free(a->oauth_authorize_url);
	free(a->notify_command);
	free(a->oauth_client_cert);
	secret_free(a->oauth_client_key);
	free(a->oauth_issuer);
	free(a->oauth_token_command);
	for (i = 0; i < a->nfolders; i++)
		free(a->folders[i]);
	free(a->folders);
	free(a->deliver_path);
	free(a->recipient);
	free(a->envelope_sender);
	free(a->state_dir);
	free(a);
}

/* Parse every line of the file text (NUL-terminated, len bytes). */
static int
parse_text(struct parser *p, char *text, size_t len, char **err)
{
	char *s = text, *end = text + len, *nl, *next;
	size_t n;
	int line = 0, r;

	for (; s < end; s = next) {
		line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
		next = s + n + 1;
		if (memchr(s, '\0', n) != NULL)
			return line_err(p, line, -1, err, "NUL byte in line");
		s[n] = '\0';
		if (n > 0 && s[n - 1] == '\r')
			s[--n] = '\0';
		if (n > CONFIG_MAX_LINE)
			return line_err(p, line, -1, err, "line longer than "
			    "%d bytes", CONFIG_MAX_LINE);
		if ((r = parse_line(p, line, s, err)) != PM_OK)
			return r;
	}
	return PM_OK;
}

/* Read, parse and validate the config file at path into *cfg_r. */
int
config_load(const char *path, struct config **cfg_r, char **err)
{
	struct parser p;
	struct config *cfg = NULL;
	struct section *sec, *next;
	struct account *a, **tail;
	struct pm_secret *text = NULL;
	struct stat sb;
	char *why;
	int fd, r;

	*cfg_r = NULL;
	memset(&p, 0, sizeof p);
	p.file = path;
	p.tail = &p.accounts;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errf(err, PM_ECONFIG, "%s: %s", path, pm_strerror(errno));
	if (fstat(fd, &sb) != 0) {
		r = errf(err, PM_ECONFIG, "%s: %s", path, pm_strerror(errno));
		close(fd);
		return r;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return errf(err, PM_ECONFIG, "%s: not a regular file", path);
	}
	if (secret_read_fd(fd, CONFIG_MAX_SIZE, size_hint(&sb), &text) != 0) {
		r = errno == EFBIG ?
		    errf(err, PM_ECONFIG, "%s: larger than %d bytes", path,
		    CONFIG_MAX_SIZE) :
		    errf(err, PM_ECONFIG, "%s: %s", path, pm_strerror(errno));
		close(fd);
		return r;
	}
	close(fd);

	r = parse_text(&p, text->data, text->len, err);
	secret_free(text);
	if (r != PM_OK)
		goto out;
	if (p.inline_secret && (sb.st_mode & 077) != 0) {
		why = mode_reason(path, sb.st_mode);
		r = errf(err, PM_ECONFIG, "%s", why);
		free(why);
		goto out;
	}
	if (p.accounts == NULL) {
		r = errf(err, PM_ECONFIG, "%s: no [account NAME] section",
		    path);
		goto out;
	}

	cfg = xcalloc(1, sizeof *cfg);
	cfg->file = xstrdup(path);
	cfg->max_connections = 32;
	if (p.defaults != NULL &&
	    p.defaults->keys[K_MAX_CONNECTIONS] != NULL) {
		unsigned long n;

		if (parse_number(p.defaults->keys[K_MAX_CONNECTIONS]->value,
		    1, COUNT_MAX, &n) == 0)
			cfg->max_connections = (unsigned)n;
	}
	tail = &cfg->accounts;
	for (sec = p.accounts; sec != NULL; sec = sec->next) {
		a = xcalloc(1, sizeof *a);
		*tail = a;
		tail = &a->next;
		cfg->naccounts++;
		if ((r = build_account(&p, sec, a, err)) != PM_OK)
			goto out;
	}
	*cfg_r = cfg;
	cfg = NULL;
	r = PM_OK;

out:
	config_free(cfg);
	section_free(p.defaults);
	strmap_free(&p.names);
	for (sec = p.accounts; sec != NULL; sec = next) {
		next = sec->next;
		section_free(sec);
	}
	return r;
}

/* The user's own config file path (it may not exist), or NULL without a
 * home directory. */
char *
config_user_path(void)
{
	const char *xdg, *home;

	xdg = getenv("XDG_CONFIG_HOME");
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/pullmail/config", xdg);
	if ((home = home_dir()) != NULL)
		return xasprintf("%s/.config/pullmail/config", home);
	return NULL;
}

/* The config file used without -c: the user's if it exists, else the
 * system one. */
char *
config_default_path(void)
{
	char *path = config_user_path();

	if (path != NULL && access(path, F_OK) == 0)
		return path;
	free(path);
	return xstrdup(SYSCONFDIR "/pullmail.conf");
}

/* The account called name, or NULL. */
struct account *
config_find(struct config *cfg, const char *name)
{
	struct account *a;

	for (a = cfg->accounts; a != NULL; a = a->next) {
		if (strcmp(a->name, name) == 0)
			return a;
	}
	return NULL;
}

/* Free a loaded config and all its accounts; NULL is fine. */
void
config_free(struct config *cfg)
{
	struct account *a, *next;

	if (cfg == NULL)
		return;
	for (a = cfg->accounts; a != NULL; a = next) {
		next = a->next;
		account_free(a);
	}
	free(cfg->file);
	free(cfg);
}

/* 1 when the account signs in with an OAuth token, not a password. */
int
account_uses_oauth(const struct account *a)
{
	return a->oauth_provider != OAUTH_NONE;
}

/* STATE_DIR/tokens (contract in config.h). */
char *
account_token_dir(const struct account *a)
{
	return xasprintf("%s/tokens", a->state_dir);
}
