/* The configuration file: good files, inheritance, the HarePoint form,
 * secrets and their permissions, and every kind of broken input. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pullmail/host.h>

#include "command.h"
#include "config.h"
#include "secret.h"
#include "suites.h"
#include "util.h"

#define GUID_CLIENT	"8f3c2a1e-5b7d-4c9e-a0f1-23456789abcd"
#define GUID_TENANT	"d2b4e6f8-1a3c-4e5f-9b7d-0123456789ef"
#define PIN_HEX \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *tmpdir;
static char *cfgpath;

/* A fresh directory per test, used as HOME and current directory. */
static void
setup(void)
{
	tmpdir = test_tmpdir();
	if (setenv("HOME", tmpdir, 1) != 0 || chdir(tmpdir) != 0)
		abort();
	unsetenv("XDG_STATE_HOME");
	unsetenv("XDG_CONFIG_HOME");
	if (asprintf(&cfgpath, "%s/pullmail.conf", tmpdir) < 0)
		abort();
}

static void
teardown(void)
{
	if (chdir("/") != 0)
		abort();
	test_rm_rf(tmpdir);
	free(tmpdir);
	free(cfgpath);
}

/* Write len bytes of text (strlen when 0) as the config file. */
static void
write_config(const char *text, size_t len, unsigned mode)
{
	FILE *f;

	if (len == 0)
		len = strlen(text);
	f = fopen(cfgpath, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(chmod(cfgpath, mode), 0);
}

/* Load text as a 0600 config that must be good. */
static struct config *
load_good(const char *text)
{
	struct config *cfg = NULL;
	char *err = NULL;
	int r;

	write_config(text, 0, 0600);
	r = config_load(cfgpath, &cfg, &err);
	if (r != PM_OK)
		ck_abort_msg("config_load failed: %s", err);
	ck_assert_ptr_null(err);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* Load a config that must fail; returns the malloc'd error. */
static char *
load_bad(const char *text, size_t len, unsigned mode)
{
	struct config *cfg = NULL;
	char *err = NULL;

	write_config(text, len, mode);
	ck_assert_int_eq(config_load(cfgpath, &cfg, &err), PM_ECONFIG);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_null(strchr(err, '\n'));
	return err;
}

/* Assert err is cfgpath followed by prefix, and contains what. */
static void
assert_err(const char *err, const char *prefix, const char *what)
{
	size_t n = strlen(cfgpath);

	if (strncmp(err, cfgpath, n) != 0 ||
	    strncmp(err + n, prefix, strlen(prefix)) != 0)
		ck_abort_msg("error \"%s\" does not start with FILE\"%s\"",
		    err, prefix);
	if (what != NULL && strstr(err, what) == NULL)
		ck_abort_msg("error \"%s\" lacks \"%s\"", err, what);
}

/* The current directory joined with name; malloc'd. */
static char *
in_cwd(const char *name)
{
	char buf[4096], *path;

	ck_assert_ptr_nonnull(getcwd(buf, sizeof buf));
	if (asprintf(&path, "%s/%s", buf, name) < 0)
		abort();
	return path;
}

/* Write a secret file under tmpdir with mode; returns its path. */
static char *
secret_file(const char *name, const char *text, unsigned mode)
{
	return test_write_file(tmpdir, name, text, mode);
}

START_TEST(test_full)
{
	struct config *cfg;
	struct account *a;
	char *expect, *text;

	free(test_write_file(tmpdir, "ca.pem", "not really a cert\n", 0644));
	free(secret_file("app.secret", "topsecret\n", 0600));
	if (asprintf(&text,
	    "# a full account\n"
	    "\n"
	    "[account work]\n"
	    "  server   =   imap.example.com  \n"
	    "port = 1993\n"
	    "protocol = IMAP\n"
	    "tls = starttls\n"
	    "ca_file = ca.pem\n"
	    "tls_fingerprint = SHA256:%s\n"
	    "user = box@example.com\n"
	    "auth = oauthbearer\n"
	    "oauth_provider = generic\n"
	    "oauth_tenant = example.com\n"
	    "oauth_client_id = pullmail-app\n"
	    "oauth_client_secret_file = ~/app.secret\n"
	    "oauth_token_url = http://127.0.0.1:8080/{tenant}/token\n"
	    "oauth_scope = mail read\n"
	    "oauth_client_auth = basic\n"
	    "folder = INBOX\n"
	    "folder = Sent Items\n"
	    "keep = off\n"
	    "mark_seen = TRUE\n"
	    "deliver = maildir:~/Mail/work\n"
	    "state_dir = /var/tmp/pm-state\n"
	    "timeout = 15\n", PIN_HEX) < 0)
		abort();
	cfg = load_good(text);
	free(text);
	ck_assert_str_eq(cfg->file, cfgpath);
	ck_assert_uint_eq(cfg->naccounts, 1);
	a = cfg->accounts;
	ck_assert_ptr_null(a->next);
	ck_assert_str_eq(a->name, "work");
	ck_assert_str_eq(a->file, cfgpath);
	ck_assert_int_eq(a->line, 3);
	ck_assert_str_eq(a->server, "imap.example.com");
	ck_assert_uint_eq(a->port, 1993);
	ck_assert_str_eq(a->protocol, "imap");
	ck_assert_int_eq(a->tls, PM_TLS_STARTTLS);
	expect = in_cwd("ca.pem");
	ck_assert_str_eq(a->ca_file, expect);
	free(expect);
	ck_assert_str_eq(a->tls_fingerprint, "sha256:" PIN_HEX);
	ck_assert_str_eq(a->user, "box@example.com");
	ck_assert_int_eq(a->auth, AUTH_OAUTHBEARER);
	ck_assert_ptr_null(a->password);
	ck_assert_int_eq(a->oauth_provider, OAUTH_GENERIC);
	ck_assert_str_eq(a->oauth_tenant, "example.com");
	ck_assert_str_eq(a->oauth_client_id, "pullmail-app");
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret), "topsecret");
	ck_assert_str_eq(a->oauth_token_url,
	    "http://127.0.0.1:8080/example.com/token");
	ck_assert_str_eq(a->oauth_scope, "mail read");
	ck_assert_int_eq(a->oauth_client_auth, OAUTH_CLIENT_BASIC);
	ck_assert_uint_eq(a->nfolders, 2);
	ck_assert_str_eq(a->folders[0], "INBOX");
	ck_assert_str_eq(a->folders[1], "Sent Items");
	ck_assert_int_eq(a->keep, 0);
	ck_assert_int_eq(a->mark_seen, 1);
	ck_assert_int_eq(a->deliver_kind, DELIVER_MAILDIR);
	if (asprintf(&expect, "%s/Mail/work", tmpdir) < 0)
		abort();
	ck_assert_str_eq(a->deliver_path, expect);
	free(expect);
	ck_assert_str_eq(a->state_dir, "/var/tmp/pm-state");
	ck_assert_uint_eq(a->timeout, 15);
	ck_assert_int_eq(account_uses_oauth(a), 1);
	config_free(cfg);
}
END_TEST

START_TEST(test_defaults)
{
	struct config *cfg;
	struct account *a, *b;
	char *text, *expect;

	/* [defaults] applies to accounts above it as well. */
	if (asprintf(&text,
	    "[account a]\n"
	    "user = alice\n"
	    "password = pa\n"
	    "\n"
	    "[defaults]\n"
	    "server = mail.example.net\n"
	    "port = 143\n"
	    "tls = starttls\n"
	    "folder = INBOX\n"
	    "folder = Lists\n"
	    "deliver = maildir:Maildir\n"
	    "keep = no\n"
	    "timeout = 30\n"
	    "throttle_max_wait = 5\n"
	    "\n"
	    "[account b]\n"
	    "server = other.example.net\n"
	    "user = bob\n"
	    "password = pb\n"
	    "tls = implicit\n"
	    "folder = Archive\n"
	    "keep = yes\n"
	    "mark_seen = yes\n"
	    "throttle_max_wait = 600\n"
	    "deliver = maildir:/srv/mail/bob\n") < 0)
		abort();
	cfg = load_good(text);
	free(text);
	ck_assert_uint_eq(cfg->naccounts, 2);
	a = cfg->accounts;
	b = a->next;
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(b->next);

	ck_assert_str_eq(a->name, "a");
	ck_assert_int_eq(a->line, 1);
	ck_assert_str_eq(a->server, "mail.example.net");
	ck_assert_uint_eq(a->port, 143);
	ck_assert_int_eq(a->tls, PM_TLS_STARTTLS);
	ck_assert_uint_eq(a->nfolders, 2);
	ck_assert_str_eq(a->folders[1], "Lists");
	ck_assert_int_eq(a->keep, 0);
	ck_assert_int_eq(a->mark_seen, 0);
	ck_assert_uint_eq(a->timeout, 30);
	ck_assert_uint_eq(a->throttle_max_wait, 5);
	ck_assert_str_eq(secret_reveal(a->password), "pa");
	ck_assert_int_eq(account_uses_oauth(a), 0);
	expect = in_cwd("Maildir");
	ck_assert_str_eq(a->deliver_path, expect);
	free(expect);

	ck_assert_str_eq(b->name, "b");
	ck_assert_int_eq(b->line, 16);
	ck_assert_str_eq(b->server, "other.example.net");
	ck_assert_uint_eq(b->port, 143);
	ck_assert_int_eq(b->tls, PM_TLS_IMPLICIT);
	ck_assert_uint_eq(b->nfolders, 1);
	ck_assert_str_eq(b->folders[0], "Archive");
	ck_assert_int_eq(b->keep, 1);
	ck_assert_int_eq(b->mark_seen, 1);
	ck_assert_uint_eq(b->timeout, 30);
	ck_assert_uint_eq(b->throttle_max_wait, 600);
	ck_assert_str_eq(b->deliver_path, "/srv/mail/bob");
	ck_assert_str_eq(secret_reveal(b->password), "pb");

	ck_assert_ptr_eq(config_find(cfg, "b"), b);
	ck_assert_ptr_eq(config_find(cfg, "a"), a);
	ck_assert_ptr_null(config_find(cfg, "c"));
	config_free(cfg);
}
END_TEST

START_TEST(test_builtin_defaults)
{
	struct config *cfg;
	struct account *a;
	char *expect;

	if (setenv("XDG_STATE_HOME", "/xdg/state", 1) != 0)
		abort();
	cfg = load_good(
	    "[account plain]\n"
	    "server = imap.example.com\n"
	    "user = u\n"
	    "password = p\n"
	    "deliver = maildir:~/Maildir\n");
	a = cfg->accounts;
	ck_assert_str_eq(a->protocol, "imap");
	ck_assert_uint_eq(a->port, 0);
	ck_assert_int_eq(a->tls, PM_TLS_IMPLICIT);
	ck_assert_int_eq(a->auth, AUTH_AUTO);
	ck_assert_ptr_null(a->ca_file);
	ck_assert_ptr_null(a->tls_fingerprint);
	ck_assert_uint_eq(a->nfolders, 1);
	ck_assert_str_eq(a->folders[0], "INBOX");
	ck_assert_int_eq(a->keep, 1);
	ck_assert_int_eq(a->mark_seen, 0);
	ck_assert_uint_eq(a->timeout, 60);
	ck_assert_uint_eq(a->throttle_max_wait, 60);
	ck_assert_uint_eq(a->poll_interval, 300);
	ck_assert_int_eq(a->idle, 1);
	/* Per server as many sessions as in all: one tenant's mailboxes
	 * get every session of the run. */
	ck_assert_uint_eq(a->server_connections, 32);
	ck_assert_uint_eq(cfg->max_connections, 32);
	ck_assert_int_eq(a->oauth_provider, OAUTH_NONE);
	ck_assert_ptr_null(a->oauth_client_secret);
	if (asprintf(&expect, "%s/Maildir", tmpdir) < 0)
		abort();
	ck_assert_str_eq(a->deliver_path, expect);
	free(expect);
	if (geteuid() == 0)
		ck_assert_str_eq(a->state_dir, "/var/lib/pullmail");
	else
		ck_assert_str_eq(a->state_dir, "/xdg/state/pullmail");
	config_free(cfg);

	if (geteuid() != 0) {
		unsetenv("XDG_STATE_HOME");
		cfg = load_good(
		    "[account plain]\n"
		    "server = imap.example.com\n"
		    "user = u\n"
		    "password = p\n"
		    "deliver = maildir:/m\n");
		if (asprintf(&expect, "%s/.local/state/pullmail",
		    tmpdir) < 0)
			abort();
		ck_assert_str_eq(cfg->accounts->state_dir, expect);
		free(expect);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_harepoint)
{
	struct config *cfg;
	struct account *a, *b;

	free(secret_file("client.secret", "app-secret-value\n", 0600));
	cfg = load_good(
	    "[account hp]\n"
	    "server = outlook.office365.com\n"
	    "user = shared@contoso.com@" GUID_CLIENT "@" GUID_TENANT "\n"
	    "password_file = client.secret\n"
	    "deliver = maildir:/m\n"
	    "[account hp2]\n"
	    "server = outlook.office365.com\n"
	    "user = a@b@contoso.com@" GUID_CLIENT "@contoso.onmicrosoft.com\n"
	    "password = \"inline secret\"\n"
	    "deliver = maildir:/m\n");
	a = cfg->accounts;
	ck_assert_int_eq(account_uses_oauth(a), 1);
	ck_assert_int_eq(a->oauth_provider, OAUTH_MICROSOFT);
	ck_assert_str_eq(a->user, "shared@contoso.com");
	ck_assert_str_eq(a->oauth_client_id, GUID_CLIENT);
	ck_assert_str_eq(a->oauth_tenant, GUID_TENANT);
	ck_assert_ptr_null(a->password);
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret),
	    "app-secret-value");
	ck_assert_str_eq(a->oauth_token_url, "https://login.microsoftonline."
	    "com/" GUID_TENANT "/oauth2/v2.0/token");
	ck_assert_str_eq(a->oauth_scope,
	    "https://outlook.office365.com/.default");
	ck_assert_int_eq(a->oauth_client_auth, OAUTH_CLIENT_POST);

	b = a->next;
	ck_assert_str_eq(b->user, "a@b@contoso.com");
	ck_assert_str_eq(b->oauth_tenant, "contoso.onmicrosoft.com");
	ck_assert_ptr_null(b->password);
	ck_assert_str_eq(secret_reveal(b->oauth_client_secret),
	    "inline secret");
	config_free(cfg);
}
END_TEST

START_TEST(test_not_harepoint)
{
	struct config *cfg;
	struct account *a;

	/* Not a GUID in the middle: an ordinary user name. */
	cfg = load_good(
	    "[account x]\n"
	    "server = s\n"
	    "user = a@not-a-guid@contoso.com\n"
	    "password = pw\n"
	    "deliver = maildir:/m\n");
	a = cfg->accounts;
	ck_assert_int_eq(account_uses_oauth(a), 0);
	ck_assert_str_eq(a->user, "a@not-a-guid@contoso.com");
	ck_assert_str_eq(secret_reveal(a->password), "pw");
	config_free(cfg);
}
END_TEST

START_TEST(test_microsoft)
{
	struct config *cfg;
	struct account *a;

	cfg = load_good(
	    "[defaults]\n"
	    "server = outlook.office365.com\n"
	    "oauth_provider = microsoft\n"
	    "oauth_tenant = contoso.onmicrosoft.com\n"
	    "oauth_client_id = " GUID_CLIENT "\n"
	    "oauth_client_secret = s3\n"
	    "deliver = maildir:/m\n"
	    "[account one]\n"
	    "user = one@contoso.com\n"
	    "[account two]\n"
	    "user = two@contoso.com\n"
	    "oauth_tenant = " GUID_TENANT "\n"
	    "oauth_token_url = https://login.microsoftonline.us/{tenant}/t/"
	    "{tenant}\n"
	    "oauth_scope = https://outlook.office365.us/.default\n");
	a = cfg->accounts;
	ck_assert_int_eq(a->oauth_provider, OAUTH_MICROSOFT);
	ck_assert_str_eq(a->user, "one@contoso.com");
	ck_assert_str_eq(a->oauth_token_url, "https://login.microsoftonline."
	    "com/contoso.onmicrosoft.com/oauth2/v2.0/token");
	ck_assert_str_eq(a->oauth_scope,
	    "https://outlook.office365.com/.default");
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret), "s3");
	a = a->next;
	ck_assert_str_eq(a->oauth_tenant, GUID_TENANT);
	ck_assert_str_eq(a->oauth_token_url, "https://login.microsoftonline."
	    "us/" GUID_TENANT "/t/" GUID_TENANT);
	ck_assert_str_eq(a->oauth_scope,
	    "https://outlook.office365.us/.default");
	config_free(cfg);
}
END_TEST

START_TEST(test_generic_implied)
{
	struct config *cfg;
	struct account *a;

	cfg = load_good(
	    "[account g]\n"
	    "server = s\n"
	    "user = u\n"
	    "oauth_client_id = cid\n"
	    "oauth_client_secret = cs\n"
	    "oauth_token_url = https://auth.example/token\n"
	    "deliver = maildir:/m\n");
	a = cfg->accounts;
	ck_assert_int_eq(a->oauth_provider, OAUTH_GENERIC);
	ck_assert_str_eq(a->oauth_token_url, "https://auth.example/token");
	ck_assert_ptr_null(a->oauth_scope);
	ck_assert_ptr_null(a->oauth_tenant);
	ck_assert_int_eq(account_uses_oauth(a), 1);
	config_free(cfg);
}
END_TEST

START_TEST(test_secret_pairs_inherit)
{
	struct config *cfg;
	struct account *a;

	/* An account giving password ignores password_file of [defaults]. */
	free(secret_file("pw", "from-file\n\n", 0600));
	cfg = load_good(
	    "[defaults]\n"
	    "server = s\n"
	    "password_file = pw\n"
	    "deliver = maildir:/m\n"
	    "[account a]\n"
	    "user = a\n"
	    "password = own\n"
	    "[account b]\n"
	    "user = b\n");
	a = cfg->accounts;
	ck_assert_str_eq(secret_reveal(a->password), "own");
	ck_assert_str_eq(secret_reveal(a->next->password), "from-file");
	config_free(cfg);
}
END_TEST

START_TEST(test_quoted)
{
	struct config *cfg;
	struct account *a;

	cfg = load_good(
	    "[account q]\n"
	    "server = s\n"
	    "user = \"  spaced user  \"\n"
	    "password = \"a \\\"quoted\\\" \\\\ # not a comment \"   \n"
	    "folder = \"Sent Items\"\n"
	    "folder = Odd \"name\" # kept\n"
	    "deliver = \"maildir:/path with space/\"\n");
	a = cfg->accounts;
	ck_assert_str_eq(a->user, "  spaced user  ");
	ck_assert_str_eq(secret_reveal(a->password),
	    "a \"quoted\" \\ # not a comment ");
	ck_assert_str_eq(a->folders[0], "Sent Items");
	ck_assert_str_eq(a->folders[1], "Odd \"name\" # kept");
	ck_assert_str_eq(a->deliver_path, "/path with space/");
	config_free(cfg);
}
END_TEST

START_TEST(test_syntax_edges)
{
	struct config *cfg;
	struct account *a;
	char *text, *longc;

	/* CRLF lines, a last line without newline, whole-line comments,
	 * '#' inside values, a comment line of exactly 4096 bytes. */
	longc = malloc(4097);
	ck_assert_ptr_nonnull(longc);
	memset(longc, 'x', 4096);
	longc[0] = '#';
	longc[4096] = '\0';
	if (asprintf(&text,
	    "%s\n"
	    "  # indented comment\r\n"
	    "[ account   crlf ]\r\n"
	    "server=s\r\n"
	    "user =u#1\n"
	    "password= pass#word\n"
	    "tls_fingerprint = 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:"
	    "ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef\n"
	    "deliver = maildir:/m", longc) < 0)
		abort();
	free(longc);
	cfg = load_good(text);
	free(text);
	a = cfg->accounts;
	ck_assert_str_eq(a->name, "crlf");
	ck_assert_int_eq(a->line, 3);
	ck_assert_str_eq(a->server, "s");
	ck_assert_str_eq(a->user, "u#1");
	ck_assert_str_eq(secret_reveal(a->password), "pass#word");
	ck_assert_str_eq(a->tls_fingerprint, "sha256:" PIN_HEX);
	ck_assert_str_eq(a->deliver_path, "/m");
	config_free(cfg);
}
END_TEST

START_TEST(test_tls_none_explicit)
{
	struct config *cfg;

	cfg = load_good(
	    "[account clear]\n"
	    "server = 127.0.0.1\n"
	    "tls = none\n"
	    "auth = plain\n"
	    "user = u\n"
	    "password = p\n"
	    "deliver = maildir:/m\n");
	ck_assert_int_eq(cfg->accounts->tls, PM_TLS_NONE);
	ck_assert_int_eq(cfg->accounts->auth, AUTH_PLAIN);
	config_free(cfg);
}
END_TEST

/* size_limit with its suffixes, fetch_all, pop3_xoauth2_two_step,
 * pop3_strict_size, expunge and their defaults (issue 3). */
/* Every delivery target form, and the delivery settings. */
START_TEST(test_deliver_targets)
{
	static const struct {
		const char *value;
		int kind;
		const char *path;
	} good[] = {
		{ "mbox:/var/mail/u", DELIVER_MBOX, "/var/mail/u" },
		{ "mda:/usr/bin/procmail -d %T", DELIVER_MDA,
		    "/usr/bin/procmail -d %T" },
		{ "mda:/usr/bin/maildrop", DELIVER_MDA, "/usr/bin/maildrop" },
		{ "mda:/bin/x \"a b\" 'c d' %F", DELIVER_MDA,
		    "/bin/x \"a b\" 'c d' %F" },
		{ "smtp:localhost", DELIVER_SMTP, "localhost" },
		{ "smtp:localhost:2525", DELIVER_SMTP, "localhost:2525" },
		{ "smtp:[::1]:25", DELIVER_SMTP, "[::1]:25" },
		{ "lmtp:/run/dovecot/lmtp", DELIVER_LMTP, "/run/dovecot/lmtp" },
		{ "lmtp:127.0.0.1:24", DELIVER_LMTP, "127.0.0.1:24" },
	};
	struct config *cfg;
	struct account *a;
	char *text;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (asprintf(&text, "[account a]\nserver = s\nuser = u\n"
		    "password = p\ndeliver = %s\n", good[i].value) < 0)
			abort();
		cfg = load_good(text);
		a = cfg->accounts;
		ck_assert_int_eq(a->deliver_kind, good[i].kind);
		ck_assert_str_eq(a->deliver_path, good[i].path);
		/* The defaults. */
		ck_assert_ptr_null(a->recipient);
		ck_assert_ptr_null(a->envelope_sender);
		ck_assert_uint_eq(a->mda_timeout, 600);
		ck_assert_uint_eq(a->lock_timeout, 60);
		ck_assert_int_eq(a->add_return_path, 0);
		ck_assert_int_eq(a->add_delivered_to, 0);
		ck_assert_int_eq(a->add_received, 0);
		config_free(cfg);
		free(text);
	}
	cfg = load_good("[defaults]\nrecipient = alice@example.org\n"
	    "envelope_sender = <>\nmda_timeout = 30\nlock_timeout = 5\n"
	    "add_return_path = yes\nadd_delivered_to = yes\n"
	    "add_received = yes\n"
	    "[account a]\nserver = s\nuser = u\npassword = p\n"
	    "deliver = mbox:/m\n"
	    "[account b]\nserver = s\nuser = u\npassword = p\n"
	    "deliver = mbox:/m\nrecipient = bob\n"
	    "envelope_sender = \"\\\"x y\\\"@example.org\"\n");
	a = cfg->accounts;
	ck_assert_str_eq(a->recipient, "alice@example.org");
	ck_assert_str_eq(a->envelope_sender, "");
	ck_assert_uint_eq(a->mda_timeout, 30);
	ck_assert_uint_eq(a->lock_timeout, 5);
	ck_assert_int_eq(a->add_return_path, 1);
	ck_assert_int_eq(a->add_delivered_to, 1);
	ck_assert_int_eq(a->add_received, 1);
	a = a->next;
	ck_assert_str_eq(a->recipient, "bob");
	ck_assert_str_eq(a->envelope_sender, "\"x y\"@example.org");
	config_free(cfg);
}
END_TEST

/* The delegated flows: defaults per provider, endpoints, discovery. */
#define OAUTH_ACCT "[account a]\nserver = s\nuser = u\ndeliver = maildir:/m\n"

START_TEST(test_oauth_flows)
{
	struct config *cfg;
	struct account *a;

	/* No secret: a person signs in (device flow), delegated scope. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = microsoft\n"
	    "oauth_tenant = common\noauth_client_id = c\n"
	    "notify_command = /bin/echo hi\n");
	a = cfg->accounts;
	ck_assert_int_eq(a->oauth_flow, OAUTH_FLOW_DEVICE);
	ck_assert_ptr_null(a->oauth_client_secret);
	ck_assert_str_eq(a->oauth_device_url, "https://login.microsoftonline"
	    ".com/common/oauth2/v2.0/devicecode");
	ck_assert_str_eq(a->oauth_authorize_url, "https://login."
	    "microsoftonline.com/common/oauth2/v2.0/authorize");
	ck_assert_ptr_nonnull(strstr(a->oauth_scope,
	    "IMAP.AccessAsUser.All"));
	ck_assert_ptr_nonnull(strstr(a->oauth_scope, "offline_access"));
	ck_assert_str_eq(a->notify_command, "/bin/echo hi");
	config_free(cfg);

	/* A national cloud through oauth_authority. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = microsoft\n"
	    "oauth_tenant = t\noauth_client_id = c\n"
	    "oauth_authority = https://login.microsoftonline.us/\n"
	    "oauth_flow = authorization_code\noauth_redirect_port = 8765\n");
	a = cfg->accounts;
	ck_assert_int_eq(a->oauth_flow, OAUTH_FLOW_AUTH_CODE);
	ck_assert_str_eq(a->oauth_token_url, "https://login.microsoftonline"
	    ".us/t/oauth2/v2.0/token");
	ck_assert_str_eq(a->oauth_authorize_url, "https://login."
	    "microsoftonline.us/t/oauth2/v2.0/authorize");
	ck_assert_uint_eq(a->oauth_redirect_port, 8765);
	config_free(cfg);

	/* A secret: client credentials, as before. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = microsoft\n"
	    "oauth_tenant = t\noauth_client_id = c\n"
	    "oauth_client_secret = s\n");
	ck_assert_int_eq(cfg->accounts->oauth_flow,
	    OAUTH_FLOW_CLIENT_CREDENTIALS);
	ck_assert_str_eq(cfg->accounts->oauth_scope,
	    "https://outlook.office365.com/.default");
	config_free(cfg);

	/* Google: authorization code, the Gmail scope. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = google\n"
	    "oauth_client_id = c\noauth_client_secret = s\n");
	a = cfg->accounts;
	ck_assert_int_eq(a->oauth_flow, OAUTH_FLOW_AUTH_CODE);
	ck_assert_str_eq(a->oauth_scope, "https://mail.google.com/");
	ck_assert_str_eq(a->oauth_token_url,
	    "https://oauth2.googleapis.com/token");
	ck_assert_ptr_nonnull(a->oauth_authorize_url);
	config_free(cfg);

	/* Secrets printed by a command; a token helper. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = microsoft\n"
	    "oauth_tenant = t\noauth_client_id = c\n"
	    "oauth_client_secret_command = /bin/echo  s3cret\n");
	ck_assert_str_eq(secret_reveal(cfg->accounts->oauth_client_secret),
	    "s3cret");
	ck_assert_int_eq(cfg->accounts->oauth_flow,
	    OAUTH_FLOW_CLIENT_CREDENTIALS);
	config_free(cfg);
	cfg = load_good("[defaults]\npassword_command = /bin/echo pw\n"
	    "[account a]\nserver = s\nuser = u\ndeliver = maildir:/m\n");
	ck_assert_str_eq(secret_reveal(cfg->accounts->password), "pw");
	config_free(cfg);
	/* Split by the one rule: quotes keep blanks inside a word. */
	cfg = load_good("[defaults]\npassword_command = /bin/echo 'a  b' "
	    "\"c\\\"d\"\n[account a]\nserver = s\nuser = u\n"
	    "deliver = maildir:/m\n");
	ck_assert_str_eq(secret_reveal(cfg->accounts->password), "a  b c\"d");
	config_free(cfg);
	cfg = load_good(OAUTH_ACCT "oauth_token_command = pizauth show a\n");
	ck_assert_int_eq(account_uses_oauth(cfg->accounts), 1);
	ck_assert_str_eq(cfg->accounts->oauth_token_command,
	    "pizauth show a");
	config_free(cfg);

	/* Generic with only an issuer: endpoints come from discovery. */
	cfg = load_good(OAUTH_ACCT "oauth_provider = generic\n"
	    "oauth_client_id = c\noauth_issuer = https://id.example/\n");
	a = cfg->accounts;
	ck_assert_str_eq(a->oauth_issuer, "https://id.example/");
	ck_assert_ptr_null(a->oauth_token_url);
	ck_assert_int_eq(a->oauth_flow, OAUTH_FLOW_DEVICE);
	config_free(cfg);
}
END_TEST

START_TEST(test_pop3_settings)
{
	static const struct {
		const char *v;
		uint64_t n;
	} sizes[] = {
		{ "0", 0 }, { "1234", 1234 }, { "10k", 10240 },
		{ "10K", 10240 }, { "3M", 3145728 }, { "2g", 2147483648ULL },
	};
	struct config *cfg;
	char *text;
	size_t i;

	cfg = load_good("[account a]\nserver = s\nuser = u\npassword = p\n"
	    "deliver = maildir:/m\nprotocol = pop3\n");
	ck_assert_uint_eq(cfg->accounts->size_limit, 0);
	ck_assert_int_eq(cfg->accounts->fetch_all, 0);
	ck_assert_int_eq(cfg->accounts->pop3_xoauth2_two_step, 1);
	ck_assert_int_eq(cfg->accounts->pop3_strict_size,
	    PM_STRICT_SIZE_AUTO);
	ck_assert_int_eq(cfg->accounts->expunge, PM_EXPUNGE_UID);
	config_free(cfg);
	cfg = load_good("[defaults]\nfetch_all = yes\nexpunge = all\n"
	    "pop3_xoauth2_two_step = no\nsize_limit = 5M\n"
	    "pop3_strict_size = no\n"
	    "[account a]\nserver = s\nuser = u\npassword = p\n"
	    "deliver = maildir:/m\n");
	ck_assert_uint_eq(cfg->accounts->size_limit, 5242880);
	ck_assert_int_eq(cfg->accounts->fetch_all, 1);
	ck_assert_int_eq(cfg->accounts->pop3_xoauth2_two_step, 0);
	ck_assert_int_eq(cfg->accounts->pop3_strict_size,
	    PM_STRICT_SIZE_NO);
	ck_assert_int_eq(cfg->accounts->expunge, PM_EXPUNGE_ALL);
	config_free(cfg);
	cfg = load_good("[account a]\nserver = s\nuser = u\npassword = p\n"
	    "deliver = maildir:/m\nexpunge = Never\n");
	ck_assert_int_eq(cfg->accounts->expunge, PM_EXPUNGE_NEVER);
	config_free(cfg);
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		if (asprintf(&text, "[account a]\nserver = s\nuser = u\n"
		    "password = p\ndeliver = maildir:/m\nsize_limit = %s\n",
		    sizes[i].v) < 0)
			abort();
		cfg = load_good(text);
		ck_assert_msg(cfg->accounts->size_limit == sizes[i].n,
		    "%s", sizes[i].v);
		config_free(cfg);
		free(text);
	}
}
END_TEST

/* One broken file: its text, the expected error after FILE, and a part of
 * the reason. */
struct bad_case {
	const char *text;
	size_t len;		/* 0: strlen(text) */
	const char *prefix;	/* what follows FILE */
	const char *what;
};

#define ACCT	"[account a]\nserver = s\nuser = u\n"
#define LONG_SOCKET \
	"0123456789012345678901234567890123456789012345678901234567890123456789" \
	"0123456789012345678901234567890123456789"
#define GOOD	ACCT "password = hunter2\ndeliver = maildir:/m\n"
#define OAUTH	"[account a]\nserver = s\nuser = u\ndeliver = maildir:/m\n"

static const struct bad_case bad_cases[] = {
	/* syntax */
	{ GOOD "serverx = y\n", 0, ":6: serverx: ", "unknown key" },
	{ "server = s\n" GOOD, 0, ":1: server: ", "outside of any section" },
	{ GOOD "[account a]\n", 0, ":6: ", "duplicate account name \"a\"" },
	{ "[account ]\n", 0, ":1: ", "empty account name" },
	{ "[account]\n", 0, ":1: ", "empty account name" },
	{ "[acount a]\n" GOOD, 0, ":1: ", "unknown section type \"acount\"" },
	{ "[account a\n", 0, ":1: ", "'[' without ']'" },
	{ "[account a] x\n", 0, ":1: ", "text after the section header" },
	{ "[account a/b]\n", 0, ":1: ", "bad account name" },
	{ "[defaults x]\n", 0, ":1: ", "[defaults] takes no name" },
	{ "[defaults]\n[defaults]\n", 0, ":2: ", "already defined at line 1" },
	{ ACCT "server imap\n", 0, ":4: ", "missing '='" },
	{ ACCT "= x\n", 0, ":4: ", "missing key" },
	{ ACCT "password\n", 0, ":4: ", "missing '='" },
	{ ACCT "password hunter2=x\n", 0, ":4: ", "malformed key" },
	{ ACCT "password: hunter2=x\n", 0, ":4: ", "malformed key" },
	{ ACCT "server = t\n", 0, ":4: server: ", "already set at line 2" },
	{ ACCT "folder = X\nfolder = X\n", 0, ":5: folder: ",
	    "already listed at line 4" },
	{ ACCT "server2 =\n", 0, ":4: server2: ", "unknown key" },
	{ ACCT "port =\n", 0, ":4: port: ", "empty value" },
	{ ACCT "password = \"hunter2\n", 0, ":4: password: ",
	    "unterminated quote" },
	{ ACCT "password = \"hunter2\" x\n", 0, ":4: password: ",
	    "text after the closing quote" },
	{ ACCT "password = \"hunter\\2\"\n", 0, ":4: password: ",
	    "escapes" },
	{ ACCT "x\0y = 1\n", sizeof(ACCT "x\0y = 1\n") - 1, ":4: ",
	    "NUL byte" },
	{ NULL, 0, ":4: ", "line longer than 4096 bytes" },	/* built */
	{ "# only a comment\n", 0, ": ", "no [account NAME] section" },
	{ "", 0, ": ", "no [account NAME] section" },
	{ "[defaults]\nserver = s\n", 0, ": ", "no [account NAME]" },

	/* values */
	{ GOOD "port = 0\n", 0, ":6: port: ", "bad value \"0\"" },
	{ GOOD "port = 65536\n", 0, ":6: port: ", "1 to 65535" },
	{ GOOD "port = 99999999999999999999\n", 0, ":6: port: ", "bad" },
	{ GOOD "port = -1\n", 0, ":6: port: ", "bad value" },
	{ GOOD "port = 993x\n", 0, ":6: port: ", "bad value" },
	{ GOOD "timeout = 0\n", 0, ":6: timeout: ", "bad value" },
	{ GOOD "timeout = 1.5\n", 0, ":6: timeout: ", "bad value" },
	{ GOOD "timeout = 86401\n", 0, ":6: timeout: ", "bad value" },
	{ GOOD "protocol = smtp\n", 0, ":6: protocol: ",
	    "expected imap or pop3" },
	{ GOOD "tls = ssl\n", 0, ":6: tls: ",
	    "expected implicit, starttls or none" },
	{ GOOD "auth = cram-md5\n", 0, ":6: auth: ", "bad value" },
	{ GOOD "oauth_provider = yahoo\n", 0, ":6: oauth_provider: ",
	    "expected microsoft, generic or google" },
	{ GOOD "oauth_flow = implicit\n", 0, ":6: oauth_flow: ",
	    "expected client_credentials, device or authorization_code" },
	{ GOOD "oauth_redirect_port = 0\n", 0, ":6: oauth_redirect_port: ",
	    "" },
	{ GOOD "oauth_issuer = ftp://x\n", 0, ":6: oauth_issuer: ", "" },
	{ OAUTH "oauth_provider = google\noauth_client_id = c\n"
	    "oauth_flow = device\n", 0, ":7: oauth_flow: ",
	    "no device flow" },
	{ OAUTH "oauth_provider = google\noauth_client_id = c\n"
	    "oauth_flow = client_credentials\n", 0, ":7: oauth_flow: ",
	    "no client-credentials grant" },
	{ OAUTH "oauth_provider = generic\noauth_client_id = c\n"
	    "oauth_flow = device\noauth_token_url = https://t/\n", 0,
	    ":1: oauth_device_url: ", "oauth_flow device needs it" },
	{ OAUTH "oauth_provider = generic\noauth_client_id = c\n"
	    "oauth_flow = authorization_code\n"
	    "oauth_token_url = https://t/\n", 0,
	    ":1: oauth_authorize_url: ", "needs it" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_client_certificate = /etc/passwd\n",
	    0, ":1: oauth_client_key: ", "missing in [account a]" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_client_secret = x\n"
	    "oauth_client_certificate = /etc/passwd\n"
	    "oauth_client_key = /etc/passwd\n",
	    0, ":8: oauth_client_secret: ", "not both" },
	{ GOOD "oauth_flow = device\n", 0, ":6: oauth_flow: ",
	    "OAuth is not configured" },
	{ GOOD "password_command = /bin/echo x\n", 0,
	    ":6: password_command: ", "give the secret once" },
	{ ACCT "password_command = /bin/false\ndeliver = maildir:/m\n", 0,
	    ":4: password_command: ", "false exited with status 1" },
	{ ACCT "password_command = /nonexistent/vault\n"
	    "deliver = maildir:/m\n", 0, ":4: password_command: ",
	    "cannot run /nonexistent/vault" },
	{ ACCT "password_command = /bin/true\ndeliver = maildir:/m\n", 0,
	    ":4: password_command: ", "printed nothing" },
	{ GOOD "notify_command = tell 'me\n", 0, ":6: notify_command: ",
	    "unbalanced ' quote" },
	{ OAUTH "oauth_token_command = pizauth show \"a\n", 0,
	    ":5: oauth_token_command: ", "unbalanced \" quote" },
	{ ACCT "password_credential = imap\ndeliver = maildir:/m\n", 0,
	    ":4: password_credential: ", "CREDENTIALS_DIRECTORY is not set" },
	{ OAUTH "oauth_token_command = \n", 0, ":5: oauth_token_command: ",
	    "empty value" },
	{ GOOD "oauth_client_auth = jwt\n", 0, ":6: oauth_client_auth: ",
	    "expected post or basic" },
	{ GOOD "keep = maybe\n", 0, ":6: keep: ", "expected yes or no" },
	{ GOOD "mark_seen = 2\n", 0, ":6: mark_seen: ", "bad value" },
	{ GOOD "server = a b\n", 0, ":6: server: ", "already set" },
	{ ACCT "server = a b\n", 0, ":4: server: ", "already set" },
	{ "[account a]\nserver = a b\n", 0, ":2: server: ", "white space" },
	{ GOOD "tls_fingerprint = abcd\n", 0, ":6: tls_fingerprint: ",
	    "sha256" },
	{ GOOD "tls_fingerprint = sha256:" PIN_HEX "00\n", 0,
	    ":6: tls_fingerprint: ", "bad value" },
	{ GOOD "tls_fingerprint = " "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdeg\n", 0, ":6: tls_fingerprint: ",
	    "bad value" },
	{ GOOD "tls_fingerprint = 012:3456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef\n", 0, ":6: tls_fingerprint: ",
	    "bad value" },
	{ ACCT "password = p\ndeliver = mbox:\n", 0,
	    ":5: deliver: ", "mbox: needs a path" },
	{ ACCT "password = p\ndeliver = mda:\n", 0,
	    ":5: deliver: ", "mda: empty command" },
	{ ACCT "password = p\ndeliver = mda:   \n", 0,
	    ":5: deliver: ", "mda: empty command" },
	{ ACCT "password = p\ndeliver = mda:/bin/p -f \"%F\n", 0,
	    ":5: deliver: ", "unbalanced \" quote" },
	{ ACCT "password = p\ndeliver = mda:/bin/p 'x\n", 0,
	    ":5: deliver: ", "unbalanced ' quote" },
	{ ACCT "password = p\ndeliver = mda:/bin/p -f%F\n", 0,
	    ":5: deliver: ", "must be arguments of their own" },
	{ ACCT "password = p\ndeliver = mda:/bin/p <%T>\n", 0,
	    ":5: deliver: ", "must be arguments of their own" },
	{ ACCT "password = p\ndeliver = smtp:\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:host:0\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:host:65536\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:host:25x\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:::1:25\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:[::1\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = smtp:/run/sock\n", 0,
	    ":5: deliver: ", "expected HOST[:PORT]" },
	{ ACCT "password = p\ndeliver = lmtp:host:\n", 0,
	    ":5: deliver: ", "or /SOCKET" },
	{ ACCT "password = p\ndeliver = lmtp:/" LONG_SOCKET "\n", 0,
	    ":5: deliver: ", "bad socket path" },
	{ ACCT "password = p\ndeliver = pipe:/bin/x\n", 0,
	    ":5: deliver: ", "mda:COMMAND" },
	{ GOOD "recipient = a b\n", 0, ":6: recipient: ", "bad value" },
	{ GOOD "recipient = -oQ/x\n", 0, ":6: recipient: ", "bad value" },
	{ GOOD "recipient = <a@b>\n", 0, ":6: recipient: ", "bad value" },
	{ GOOD "envelope_sender = bob\n", 0, ":6: envelope_sender: ",
	    "or <>" },
	{ GOOD "envelope_sender = a@b;c\n", 0, ":6: envelope_sender: ",
	    "bad value" },
	{ GOOD "mda_timeout = 0\n", 0, ":6: mda_timeout: ", "bad value" },
	{ GOOD "lock_timeout = x\n", 0, ":6: lock_timeout: ", "bad value" },
	{ GOOD "add_received = sometimes\n", 0, ":6: add_received: ",
	    "yes or no" },
	{ ACCT "password = p\ndeliver = /home/u/Maildir\n", 0,
	    ":5: deliver: ", "expected maildir:PATH" },
	{ ACCT "password = p\ndeliver = maildir:\n", 0,
	    ":5: deliver: ", "needs a path" },
	{ ACCT "password = p\ndeliver = maildir:~bob/Mail\n", 0,
	    ":5: deliver: ", "only ~/" },
	{ GOOD "oauth_token_url = https://x/{tenant_id}/token\n", 0,
	    ":6: oauth_token_url: ", "unknown placeholder {tenant_id}" },
	{ GOOD "oauth_token_url = https://x/{tenant/token\n", 0,
	    ":6: oauth_token_url: ", "without" },
	{ GOOD "oauth_token_url = ftp://x/token\n", 0,
	    ":6: oauth_token_url: ", "not an https:// URL" },
	/* plain http only to this host */
	{ GOOD "oauth_token_url = http://login.example/token\n", 0,
	    ":6: oauth_token_url: ", "plain http:// is allowed only to this "
	    "host (127.0.0.1, [::1] or localhost)" },
	{ GOOD "oauth_token_url = http://127.0.0.1.evil.example/t\n", 0,
	    ":6: oauth_token_url: ", "allowed only to this host" },
	{ GOOD "oauth_token_url = http://127.0.0.1@evil.example/t\n", 0,
	    ":6: oauth_token_url: ", "user@ part" },
	{ GOOD "oauth_device_url = HTTP://[::2]:8080/device\n", 0,
	    ":6: oauth_device_url: ", "allowed only to this host" },
	{ GOOD "oauth_authorize_url = http://10.0.0.1/authorize\n", 0,
	    ":6: oauth_authorize_url: ", "allowed only to this host" },
	{ GOOD "oauth_issuer = http://idp.example\n", 0,
	    ":6: oauth_issuer: ", "allowed only to this host" },
	{ GOOD "oauth_tenant = contoso/evil\n", 0, ":6: oauth_tenant: ",
	    "bad value" },

	/* secrets given twice */
	{ ACCT "password = hunter2\npassword_file = /p\n", 0,
	    ":5: password_file: ", "password is already set at line 4" },
	{ ACCT "password_file = /p\npassword = hunter2\n", 0,
	    ":5: password: ", "password_file is already set at line 4" },
	{ OAUTH "oauth_client_secret_file = /p\noauth_client_secret = x\n", 0,
	    ":6: oauth_client_secret: ", "oauth_client_secret_file is already" },
	{ OAUTH "oauth_client_secret = x\noauth_client_secret_file = /p\n", 0,
	    ":6: oauth_client_secret_file: ", "give the secret once" },

	/* missing keys, named with the [account NAME] line */
	{ "\n[account a]\nuser = u\npassword = p\ndeliver = maildir:/m\n", 0,
	    ":2: server: ", "missing in [account a]" },
	{ "[account a]\nserver = s\npassword = p\ndeliver = maildir:/m\n", 0,
	    ":1: user: ", "missing in [account a]" },
	{ ACCT "password = p\n", 0, ":1: deliver: ", "missing in [account a]" },
	{ OAUTH, 0, ":1: password: ", "missing in [account a]" },
	{ GOOD "[account b]\nserver = s\n", 0, ":6: user: ",
	    "missing in [account b]" },

	/* authentication rules */
	{ OAUTH "auth = plain\n", 0, ":5: auth: ", "plain needs a password" },
	{ OAUTH "auth = xoauth2\npassword = p\n", 0, ":5: auth: ",
	    "xoauth2 needs OAuth settings" },
	{ OAUTH "auth = oauthbearer\n", 0, ":5: auth: ", "needs OAuth" },
	{ OAUTH "oauth_client_id = c\noauth_client_secret = x\n", 0,
	    ":5: oauth_client_id: ", "set oauth_provider" },
	{ OAUTH "oauth_provider = microsoft\noauth_client_id = c\n"
	    "oauth_client_secret = x\n", 0, ":1: oauth_tenant: ",
	    "missing in [account a]" },
	{ OAUTH "oauth_provider = generic\noauth_client_id = c\n"
	    "oauth_client_secret = x\n", 0, ":1: oauth_token_url: ",
	    "missing in [account a]" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_secret = x\n", 0, ":1: oauth_client_id: ",
	    "missing in [account a]" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_flow = client_credentials\n", 0,
	    ":1: oauth_client_secret: ", "needs a client secret" },
	{ OAUTH "oauth_provider = generic\noauth_client_id = c\n", 0,
	    ":1: oauth_token_url: ", "(or oauth_issuer)" },
	{ OAUTH "oauth_provider = generic\noauth_client_id = c\n"
	    "oauth_token_url = https://x/{tenant}\noauth_client_secret = x\n",
	    0, ":7: oauth_token_url: ", "oauth_tenant is not set" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_client_secret = x\nauth = login\n", 0,
	    ":9: auth: ", "logs in with OAuth" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_client_secret = x\npassword = p\n", 0,
	    ":9: password: ", "not used" },
	{ GOOD "oauth_tenant = t\n", 0, ":6: oauth_tenant: ",
	    "OAuth is not configured for [account a]" },
	{ "[defaults]\noauth_scope = x\n" GOOD, 0, ":2: oauth_scope: ",
	    "OAuth is not configured" },
	{ "[account a]\nserver = s\ndeliver = maildir:/m\npassword = p\n"
	    "user = m@x.com@" GUID_CLIENT "@" GUID_TENANT "\n"
	    "oauth_provider = generic\n", 0, ":6: oauth_provider: ",
	    "MAILBOX@CLIENTID@TENANTID" },
	{ "[account a]\nserver = s\ndeliver = maildir:/m\npassword = p\n"
	    "user = m@x.com@" GUID_CLIENT "@" GUID_TENANT "\n"
	    "oauth_tenant = other\n", 0, ":6: oauth_tenant: ",
	    "differs from the tenant in user (line 5)" },
	{ "[account a]\nserver = s\ndeliver = maildir:/m\npassword = p\n"
	    "user = m@x.com@" GUID_CLIENT "@" GUID_TENANT "\n"
	    "oauth_client_secret = y\n", 0, ":6: oauth_client_secret: ",
	    "give it once" },
	{ "[account a]\nserver = s\ndeliver = maildir:/m\n"
	    "user = m@x.com@" GUID_CLIENT "@" GUID_TENANT "\n", 0,
	    ":1: oauth_client_secret: ", "missing in [account a]" },

	/* POP3 settings (issue 3) */
	{ GOOD "size_limit = 10x\n", 0, ":6: size_limit: ",
	    "bad value \"10x\" (expected bytes" },
	{ GOOD "size_limit = k\n", 0, ":6: size_limit: ", "bad value" },
	{ GOOD "size_limit = -1\n", 0, ":6: size_limit: ", "bad value" },
	{ GOOD "size_limit = 10kb\n", 0, ":6: size_limit: ", "bad value" },
	{ GOOD "size_limit = 99999999999999999999\n", 0, ":6: size_limit: ",
	    "bad value" },
	{ GOOD "size_limit = 17179869184G\n", 0, ":6: size_limit: ",
	    "bad value" },
	{ GOOD "fetch_all = maybe\n", 0, ":6: fetch_all: ",
	    "expected yes or no" },
	{ GOOD "pop3_xoauth2_two_step = 2\n", 0,
	    ":6: pop3_xoauth2_two_step: ", "expected yes or no" },
	{ GOOD "pop3_strict_size = sometimes\n", 0,
	    ":6: pop3_strict_size: ", "expected auto, yes or no" },
	{ GOOD "expunge = yes\n", 0, ":6: expunge: ",
	    "uid, all or never" },

	/* files */
	{ ACCT "deliver = maildir:/m\npassword_file = /nonexistent/pw\n", 0,
	    ":5: password_file: ", "/nonexistent/pw: No such file" },
	{ OAUTH "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\noauth_client_secret_file = nope\n", 0,
	    ":8: oauth_client_secret_file: ", "nope: No such file" },
	{ GOOD "ca_file = /nonexistent/ca.pem\n", 0, ":6: ca_file: ",
	    "/nonexistent/ca.pem: No such file" },
};

START_TEST(test_bad)
{
	const struct bad_case *c = &bad_cases[_i];
	char *err, *text = NULL;
	size_t len = c->len;

	if (c->text == NULL) {
		/* A line of 4097 bytes. */
		text = malloc(strlen(ACCT) + 4100);
		ck_assert_ptr_nonnull(text);
		strcpy(text, ACCT);
		memset(text + strlen(ACCT), '#', 4097);
		strcpy(text + strlen(ACCT) + 4097, "\n");
		len = 0;
	}
	err = load_bad(text != NULL ? text : c->text, len, 0600);
	assert_err(err, c->prefix, c->what);
	/* The secret never appears in an error. */
	ck_assert_ptr_null(strstr(err, "hunter"));
	free(err);
	free(text);
}
END_TEST

START_TEST(test_open_error)
{
	struct config *cfg = NULL;
	char *err = NULL, *path;

	if (asprintf(&path, "%s/absent.conf", tmpdir) < 0)
		abort();
	ck_assert_int_eq(config_load(path, &cfg, &err), PM_ECONFIG);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, ": No such file or directory"));
	free(err);
	err = NULL;
	ck_assert_int_eq(config_load(tmpdir, &cfg, &err), PM_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	free(err);
	free(path);

	/* At most 1 MiB. */
	path = malloc(1024 * 1024 + 2);
	ck_assert_ptr_nonnull(path);
	memset(path, '\n', 1024 * 1024 + 1);
	path[1024 * 1024 + 1] = '\0';
	err = load_bad(path, 0, 0600);
	assert_err(err, ": larger than 1048576 bytes", NULL);
	free(err);
	free(path);
}
END_TEST

START_TEST(test_config_mode)
{
	struct config *cfg = NULL;
	char *err, *expect;

	/* A secret inside the file: group or other access refused. */
	if (asprintf(&expect, "%s: mode 0644 lets others read the secret; "
	    "run chmod 600 %s", cfgpath, cfgpath) < 0)
		abort();
	err = load_bad(GOOD, 0, 0644);
	ck_assert_str_eq(err, expect);
	free(err);
	free(expect);

	err = load_bad("[defaults]\noauth_client_secret = hunter2\n" OAUTH
	    "oauth_provider = microsoft\noauth_tenant = t\n"
	    "oauth_client_id = c\n", 0, 0604);
	assert_err(err, ": mode 0604 lets others read the secret", NULL);
	free(err);

	/* No secret inside: any mode is fine. */
	free(secret_file("pw", "x\n", 0600));
	write_config(ACCT "password_file = pw\ndeliver = maildir:/m\n", 0,
	    0644);
	err = NULL;
	ck_assert_int_eq(config_load(cfgpath, &cfg, &err), PM_OK);
	ck_assert_ptr_nonnull(cfg);
	config_free(cfg);
}
END_TEST

START_TEST(test_secret_file_mode)
{
	char *err, *pw, *text, *expect;

	pw = secret_file("pw", "hunter2\n", 0640);
	if (asprintf(&text, ACCT "deliver = maildir:/m\npassword_file = %s\n",
	    pw) < 0)
		abort();
	if (asprintf(&expect, ":5: password_file: %s: mode 0640 lets others "
	    "read the secret; run chmod 600 %s", pw, pw) < 0)
		abort();
	err = load_bad(text, 0, 0600);
	assert_err(err, expect, NULL);
	ck_assert_ptr_null(strstr(err, "hunter"));
	free(err);
	free(expect);
	free(text);
	free(pw);
}
END_TEST

START_TEST(test_secret_file_read)
{
	static const struct {
		const char *content;
		const char *secret;	/* NULL: an error containing this */
		const char *why;
	} cases[] = {
		{ "s3cret\n", "s3cret", NULL },
		{ "s3cret", "s3cret", NULL },
		{ "s3cret\r\n", "s3cret", NULL },
		{ " spaced s3cret \n\n", " spaced s3cret ", NULL },
		{ "two\nlines\n", "two\nlines", NULL },
		{ "\n", NULL, "the file is empty" },
		{ "", NULL, "the file is empty" },
	};
	struct config *cfg;
	char *err, *path, *text, *big;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		path = secret_file("pw", cases[i].content, 0600);
		if (asprintf(&text, OAUTH "password_file = %s\n", path) < 0)
			abort();
		if (cases[i].secret != NULL) {
			cfg = load_good(text);
			ck_assert_str_eq(secret_reveal(cfg->accounts->password),
			    cases[i].secret);
			config_free(cfg);
		} else {
			err = load_bad(text, 0, 0600);
			assert_err(err, ":5: password_file: ", cases[i].why);
			free(err);
		}
		free(text);
		free(path);
	}

	/* At most 64 KiB. */
	big = malloc(65537 + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'k', 65536);
	big[65536] = '\0';
	free(secret_file("big", big, 0600));
	cfg = load_good(OAUTH "password_file = big\n");
	ck_assert_uint_eq(secret_len(cfg->accounts->password), 65536);
	config_free(cfg);
	big[65536] = 'k';
	big[65537] = '\0';
	free(secret_file("big", big, 0600));
	err = load_bad(OAUTH "password_file = big\n", 0, 0600);
	assert_err(err, ":5: password_file: ", "larger than 65536 bytes");
	free(err);
	free(big);
}
END_TEST

START_TEST(test_default_path)
{
	char *path, *dir, *expect;

	/* XDG_CONFIG_HOME/pullmail/config when it exists. */
	if (asprintf(&dir, "%s/xdg/pullmail", tmpdir) < 0)
		abort();
	ck_assert_int_eq(mkdir_p(dir, 0700), 0);
	if (setenv("XDG_CONFIG_HOME", "", 1) != 0)
		abort();
	path = config_default_path();
	ck_assert_str_eq(path, SYSCONFDIR "/pullmail.conf");
	free(path);

	if (asprintf(&expect, "%s/xdg", tmpdir) < 0)
		abort();
	if (setenv("XDG_CONFIG_HOME", expect, 1) != 0)
		abort();
	free(expect);
	path = config_default_path();
	ck_assert_str_eq(path, SYSCONFDIR "/pullmail.conf");
	free(path);
	free(test_write_file(dir, "config", "", 0600));
	path = config_default_path();
	if (asprintf(&expect, "%s/config", dir) < 0)
		abort();
	ck_assert_str_eq(path, expect);
	free(path);
	free(expect);

	/* Else ~/.config/pullmail/config. */
	unsetenv("XDG_CONFIG_HOME");
	free(dir);
	if (asprintf(&dir, "%s/.config/pullmail", tmpdir) < 0)
		abort();
	ck_assert_int_eq(mkdir_p(dir, 0700), 0);
	free(test_write_file(dir, "config", "", 0600));
	path = config_default_path();
	if (asprintf(&expect, "%s/config", dir) < 0)
		abort();
	ck_assert_str_eq(path, expect);
	free(path);
	free(expect);
	free(dir);
}
END_TEST

START_TEST(test_example)
{
	const char *top = getenv("top_srcdir");
	struct config *cfg = NULL;
	struct account *a;
	char *path, *dir, *err = NULL;

	if (top == NULL || *top == '\0')
		top = ".";
	/* The example reads its client secrets from ~/.config/pullmail. */
	if (asprintf(&dir, "%s/.config/pullmail", tmpdir) < 0)
		abort();
	ck_assert_int_eq(mkdir_p(dir, 0700), 0);
	free(test_write_file(dir, "contoso-app.secret", "c-secret\n", 0600));
	free(test_write_file(dir, "example-org.secret", "e-secret\n", 0600));
	free(dir);
	if (asprintf(&path, "%s/contrib/pullmail.conf.example", top) < 0)
		abort();
	if (config_load(path, &cfg, &err) != PM_OK)
		ck_abort_msg("%s", err);
	free(path);

	ck_assert_uint_eq(cfg->naccounts, 3);
	a = config_find(cfg, "contoso-shared");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->oauth_provider, OAUTH_MICROSOFT);
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret), "c-secret");
	ck_assert_ptr_nonnull(strstr(a->oauth_token_url, a->oauth_tenant));

	a = config_find(cfg, "contoso-sales");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->oauth_provider, OAUTH_MICROSOFT);
	ck_assert_ptr_null(a->password);
	ck_assert_ptr_null(strchr(strchr(a->user, '@') + 1, '@'));
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret), "c-secret");

	a = config_find(cfg, "example-org");
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->oauth_provider, OAUTH_GENERIC);
	ck_assert_str_eq(secret_reveal(a->oauth_client_secret), "e-secret");
	config_free(cfg);
}
END_TEST

/* Write an executable script holding text into the test directory. */
static char *
write_script(const char *name, const char *text)
{
	char *path;
	int fd;

	path = xasprintf("%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, text, strlen(text)), 0);
	close(fd);
	return path;
}

/* A secret command gets a deadline: one that prints and then hangs, or
 * ignores SIGTERM after closing its output, is stopped (SIGKILL if need
 * be) and reaped; the failure is temporary, names the command and never
 * quotes its output. */
START_TEST(test_command_timeout)
{
	struct pm_secret *sec = NULL;
	char *cmd, *why = NULL, *pidfile, *text;
	long long t0;
	size_t len;
	long pid;

	ck_assert_int_eq(command_secret("/bin/echo  quick", 100, 1, &sec,
	    &why), PM_OK);
	ck_assert_str_eq(secret_reveal(sec), "quick");
	secret_free(sec);

	cmd = write_script("hang", "#!/bin/sh\necho half-a-secret\n"
	    "exec sleep 30\n");
	t0 = mono_ms();
	ck_assert_int_eq(command_secret(cmd, 100, 1, &sec, &why), PM_ETEMP);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_ptr_null(sec);
	ck_assert_msg(strstr(why, "/hang did not finish within 1 seconds; "
	    "stopped it") != NULL, "why: %s", why);
	ck_assert_ptr_null(strstr(why, "half-a-secret"));
	free(why);
	why = NULL;
	free(cmd);

	pidfile = xasprintf("%s/pid", tmpdir);
	text = xasprintf("#!/bin/sh\ntrap '' TERM\necho $$ > %s\n"
	    "exec >&-\nexec sleep 30\n", pidfile);
	cmd = write_script("stubborn", text);
	free(text);
	t0 = mono_ms();
	ck_assert_int_eq(command_secret(cmd, 100, 1, &sec, &why), PM_ETEMP);
	ck_assert_int_ge(mono_ms() - t0, 2900);	/* 1 s, then 2 s grace */
	ck_assert_int_lt(mono_ms() - t0, 6000);
	ck_assert_ptr_nonnull(strstr(why, "stubborn did not finish"));
	free(why);
	ck_assert_int_eq(read_small_file(pidfile, 64, &text, &len), 0);
	pid = strtol(text, NULL, 10);
	ck_assert_int_gt(pid, 0);
	/* Killed and reaped: the pid is gone, not a zombie. */
	ck_assert_int_eq(kill((pid_t)pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	free(text);
	free(pidfile);
	free(cmd);
}
END_TEST

#define MANY_SECTIONS	40000
#define MANY_FOLDERS	5000

/* A generated config: [defaults] with two folders, MANY_SECTIONS accounts
 * and a last one listing MANY_FOLDERS folders, then tail.  malloc'd. */
static char *
many_text(const char *tail)
{
	size_t cap = 64 + MANY_SECTIONS * 24 + MANY_FOLDERS * 24 + 256, n;
	char *text = malloc(cap);
	int i;

	ck_assert_ptr_nonnull(text);
	n = (size_t)snprintf(text, cap, "[defaults]\nserver = s\nuser = u\n"
	    "password = p\ndeliver = maildir:/m\nfolder = A\nfolder = B\n");
	for (i = 0; i < MANY_SECTIONS; i++)
		n += (size_t)snprintf(text + n, cap - n, "[account a%d]\n", i);
	n += (size_t)snprintf(text + n, cap - n, "[account many]\n");
	for (i = 0; i < MANY_FOLDERS; i++)
		n += (size_t)snprintf(text + n, cap - n, "folder = f%d\n", i);
	n += (size_t)snprintf(text + n, cap - n, "%s", tail);
	ck_assert_uint_lt(n, cap);
	return text;
}

/* Tens of thousands of sections and thousands of folders load in file
 * order (the lookups behind the duplicate checks are hashed, the appends
 * take constant time), and duplicates among them are still caught with
 * the line of the first. */
START_TEST(test_many_sections)
{
	struct config *cfg;
	struct account *a;
	char *text, *err, name[32], want[64];
	int i = 0;

	text = many_text("");
	cfg = load_good(text);
	free(text);
	ck_assert_uint_eq(cfg->naccounts, MANY_SECTIONS + 1);
	for (a = cfg->accounts; a->next != NULL; a = a->next, i++) {
		snprintf(name, sizeof name, "a%d", i);
		ck_assert_str_eq(a->name, name);
		ck_assert_uint_eq(a->nfolders, 2);
		ck_assert_str_eq(a->folders[0], "A");
		ck_assert_str_eq(a->folders[1], "B");
	}
	ck_assert_int_eq(i, MANY_SECTIONS);
	ck_assert_str_eq(a->name, "many");
	ck_assert_uint_eq(a->nfolders, MANY_FOLDERS);
	for (i = 0; i < MANY_FOLDERS; i++) {
		snprintf(name, sizeof name, "f%d", i);
		ck_assert_str_eq(a->folders[i], name);
	}
	ck_assert_ptr_eq(config_find(cfg, "many"), a);
	ck_assert_str_eq(config_find(cfg, "a39999")->name, "a39999");
	config_free(cfg);

	/* [account ai] is line 8 + i, folder fi line 9 + MANY_SECTIONS + i,
	 * the tail line 9 + MANY_SECTIONS + MANY_FOLDERS. */
	text = many_text("[account a39999]\n");
	err = load_bad(text, 0, 0600);
	free(text);
	snprintf(want, sizeof want, ":%d: ", 9 + MANY_SECTIONS + MANY_FOLDERS);
	snprintf(name, sizeof name, "(first at line %d)", 8 + 39999);
	assert_err(err, want, "duplicate account name \"a39999\"");
	ck_assert_ptr_nonnull(strstr(err, name));
	free(err);

	text = many_text("folder = f4321\n");
	err = load_bad(text, 0, 0600);
	free(text);
	snprintf(want, sizeof want, ":%d: folder: ",
	    9 + MANY_SECTIONS + MANY_FOLDERS);
	snprintf(name, sizeof name, "already listed at line %d",
	    9 + MANY_SECTIONS + 4321);
	assert_err(err, want, name);
	free(err);
}
END_TEST

Suite *
suite_config(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("good");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_builtin_defaults);
	tcase_add_test(tc, test_harepoint);
	tcase_add_test(tc, test_not_harepoint);
	tcase_add_test(tc, test_microsoft);
	tcase_add_test(tc, test_generic_implied);
	tcase_add_test(tc, test_secret_pairs_inherit);
	tcase_add_test(tc, test_quoted);
	tcase_add_test(tc, test_syntax_edges);
	tcase_add_test(tc, test_tls_none_explicit);
	tcase_add_test(tc, test_pop3_settings);
	tcase_add_test(tc, test_oauth_flows);
	tcase_add_test(tc, test_deliver_targets);
	tcase_add_test(tc, test_default_path);
	tcase_add_test(tc, test_example);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_bad, 0,
	    (int)(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, test_open_error);
	tcase_add_test(tc, test_many_sections);
	suite_add_tcase(s, tc);

	tc = tcase_create("secrets");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_mode);
	tcase_add_test(tc, test_secret_file_mode);
	tcase_add_test(tc, test_secret_file_read);
	tcase_add_test(tc, test_command_timeout);
	suite_add_tcase(s, tc);
	return s;
}
