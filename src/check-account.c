/*
 * `pullmail check ACCOUNT`: walk the whole chain of one account, one line
 * per step, and stop at the first step that fails, saying what to do in
 * the admin's terms.  The steps and their exit statuses (pullmail(1)):
 *
 *   config and secret files   78 EX_CONFIG (checked by config_load)
 *   DNS                       68 EX_NOHOST
 *   TCP                       69 EX_UNAVAILABLE
 *   TLS and certificate       76 EX_PROTOCOL
 *   token request             77 EX_NOPERM (75 temporary, 78 config)
 *   token claims              77 EX_NOPERM
 *   login                     77 EX_NOPERM (75 temporary, 76 protocol)
 *   SELECT (POP3: LIST)       66 EX_NOINPUT
 *   delivery target           73 EX_CANTCREAT
 *
 * Nothing is fetched, flagged, deleted or delivered; the token cache gets
 * a fresh token (the check asks the endpoint, as a first run would).
 */
#include "autoconf.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "check-account.h"
#include "config.h"
#include "deliver.h"
#include "oauth.h"
#include "plugin.h"
#include "secret.h"
#include "session.h"
#include "transport.h"
#include "util.h"

/* Print "ACCOUNT: STEP: ok" with an optional detail in parentheses. */
static void PM_PRINTF(3, 4)
step_ok(const struct account *a, const char *step, const char *fmt, ...)
{
	va_list ap;
	char *detail = NULL;

	if (fmt != NULL) {
		va_start(ap, fmt);
		detail = xvasprintf(fmt, ap);
		va_end(ap);
	}
	printf("%s: %s: ok%s%s%s\n", a->name, step, detail != NULL ? " (" :
	    "", detail != NULL ? detail : "", detail != NULL ? ")" : "");
	free(detail);
}

/* Print "ACCOUNT: STEP: FAILED: why", free why and return code. */
static int
step_failed(const struct account *a, const char *step, char *why, int code)
{
	printf("%s: %s: FAILED: %s\n", a->name, step, why != NULL ? why :
	    "(no reason given)");
	free(why);
	fflush(stdout);
	return code;
}

/* The exit status of a failed token request or login of status r. */
static int
auth_code(int r)
{
	switch (r) {
	case PM_ETEMP:
		return EX_TEMPFAIL;
	case PM_ECONFIG:
		return EX_CONFIG;
	case PM_EPROTO:
	case PM_ETLS:
		return EX_PROTOCOL;
	case PM_EINTERNAL:
		return EX_SOFTWARE;
	default:
		return EX_NOPERM;
	}
}

/* The Exchange Online steps behind a login refused after a good token. */
static void
exchange_steps(const struct account *a)
{
	const char *user = a->user != NULL ? a->user : "<mailbox>";
	const char *id = a->oauth_client_id != NULL ? a->oauth_client_id :
	    "<client id>";
	int pop3 = strcmp(a->protocol, "pop3") == 0;
	int n = 1;

	printf("  The token was accepted by Entra ID but Exchange Online "
	    "refused the login.\n  In Exchange Online PowerShell "
	    "(Connect-ExchangeOnline) an administrator must have done, in "
	    "order:\n");
	if (a->oauth_flow == OAUTH_FLOW_CLIENT_CREDENTIALS &&
	    a->oauth_token_command == NULL) {
		printf("  %d. registered the app's service principal:\n"
		    "       New-ServicePrincipal -AppId %s -ObjectId <object "
		    "ID>\n     where <object ID> is the Object ID of the "
		    "ENTERPRISE APPLICATION (Entra ID > Enterprise "
		    "applications),\n     not the one of the app "
		    "registration\n", n++, id);
		printf("  %d. given the service principal this mailbox:\n"
		    "       Add-MailboxPermission -Identity %s -User "
		    "<object ID> -AccessRights FullAccess\n     (the same "
		    "object ID, of the enterprise application)\n", n++,
		    user);
	}
	printf("  %d. enabled %s for the mailbox:\n"
	    "       Set-CASMailbox -Identity %s -%sEnabled $true\n", n++,
	    pop3 ? "POP" : "IMAP", user, pop3 ? "Pop" : "Imap");
	printf("  %d. made sure user = %s is the mailbox's primary SMTP "
	    "address:\n       Get-EXOMailbox -Identity %s | Select "
	    "PrimarySmtpAddress\n", n, user, user);
	printf("  Changes in Exchange Online can take up to an hour to take "
	    "effect.\n");
}

/* selected() of session_probe(): the login, then one line per folder. */
static void
folder_selected(void *arg, const char *folder, uint64_t count)
{
	const struct account *a = arg;
	char *step;

	if (folder == NULL) {
		step_ok(a, "login", "as %s", a->user);
		return;
	}
	step = folder[0] == '\0' ? xstrdup("LIST") :
	    xasprintf("SELECT %s", folder);
	step_ok(a, step, "%llu message%s", (unsigned long long)count,
	    count == 1 ? "" : "s");
	free(step);
}

/* DNS, TCP and, for implicit TLS, the handshake and the certificate. */
static int
check_network(const struct account *a, unsigned port)
{
	struct addrinfo hints, *res, *ai;
	struct tls_opts opts;
	struct stream *s = NULL;
	char addr[NI_MAXHOST], *err = NULL, *all = NULL, *t;
	int r, gai;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(a->server, NULL, &hints, &res)) != 0)
		return step_failed(a, "DNS", xasprintf("cannot resolve %s: "
		    "%s; check server = %s and this machine's DNS "
		    "(resolv.conf)", a->server, gai_strerror(gai), a->server),
		    EX_NOHOST);
	all = NULL;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
		    sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		t = all == NULL ? xstrdup(addr) : xasprintf("%s %s", all, addr);
		free(all);
		all = t;
	}
	step_ok(a, "DNS", "%s is %s", a->server, all != NULL ? all : "?");
	free(all);
	all = NULL;
	for (ai = res; ai != NULL && s == NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
		    sizeof addr, NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		if (stream_connect(addr, port, (int)a->timeout * 1000, &s,
		    &err) == PM_OK)
			break;
		t = all == NULL ? xstrdup(err) : xasprintf("%s; %s", all, err);
		free(all);
		free(err);
		err = NULL;
		all = t;
	}
	freeaddrinfo(res);
	if (s == NULL) {
		t = xasprintf("%s; check server and port (%u), that the "
		    "server listens there and that no firewall is in the way",
		    all != NULL ? all : "no address to try", port);
		free(all);
		return step_failed(a, "TCP", t, EX_UNAVAILABLE);
	}
	free(all);
	step_ok(a, "TCP", "connected to %s port %u", addr, port);
	if (a->tls != PM_TLS_IMPLICIT) {
		stream_close(s);
		step_ok(a, "TLS", "%s", a->tls == PM_TLS_STARTTLS ?
		    "STARTTLS: checked at login" : "tls = none: no TLS");
		return 0;
	}
	memset(&opts, 0, sizeof opts);
	opts.server_name = a->server;
	opts.ca_file = a->ca_file;
	opts.fingerprint = a->tls_fingerprint;
	r = stream_starttls(s, &opts, &err);
	stream_close(s);
	if (r != PM_OK) {
		/* The transport's reason says what to do, but for an
		 * expired certificate. */
		t = xasprintf("%s%s", err, r != PM_ETLS ? "; check tls, "
		    "ca_file and tls_fingerprint" : strstr(err, "expired") !=
		    NULL ? "; the server's administrator must renew it (or "
		    "this machine's clock is wrong)" : "");
		free(err);
		return step_failed(a, "TLS", t, EX_PROTOCOL);
	}
	step_ok(a, "TLS", "certificate of %s verified", a->server);
	return 0;
}

/* The token request and the token's claims. */
static int
check_token(const struct account *a)
{
	struct account quiet;
	struct pm_secret *token = NULL;
	struct stat sb;
	char *err = NULL, *note = NULL, *cache_dir;
	int r, cached = 0;

	if (!account_uses_oauth(a)) {
		step_ok(a, "token", "skipped: the account logs in with a "
		    "password");
		return 0;
	}
	cache_dir = account_token_dir(a);
	/* Ask the endpoint, not the cache: that is what is checked. */
	if (stat(cache_dir, &sb) == 0)
		oauth_account_invalidate(a, cache_dir, NULL);
	/* The person running check reads the failure here: it is not
	 * notify_command's to tell. */
	quiet = *a;
	quiet.notify_command = NULL;
	r = oauth_account_token(&quiet, cache_dir, &token, &cached, &err);
	free(cache_dir);
	if (r != PM_OK)
		return step_failed(a, "token", err, auth_code(r));
	step_ok(a, "token", "%s, %zu bytes; never shown", cached ? "stored" :
	    "new", secret_len(token));
	r = oauth_account_claims(a, token, &note, &err);
	secret_free(token);
	if (r != PM_OK)
		return step_failed(a, "token claims", err, EX_NOPERM);
	step_ok(a, "token claims", "%s", note);
	free(note);
	return 0;
}

/* The login and the folders. */
static int
check_login(struct account *a, const struct pm_plugin *p)
{
	struct session_probe_result res;
	char *err = NULL, *step;
	int r;

	r = session_probe(a, p, folder_selected, a, &res, &err);
	if (r == PM_OK)
		return 0;
	if (res.logged_in) {
		step = res.failed_folder[0] == '\0' ? xstrdup("LIST") :
		    xasprintf("SELECT %s", res.failed_folder);
		printf("%s: %s: FAILED: %s; %s\n", a->name, step, err,
		    res.failed_folder[0] == '\0' ? "the mailbox cannot be "
		    "opened over POP3" : "check the folder setting (the "
		    "server's folder names, e.g. INBOX)");
		free(step);
		free(err);
		return EX_NOINPUT;
	}
	if (r == PM_ETLS)
		return step_failed(a, "TLS", err, EX_PROTOCOL);
	if (r == PM_EAUTH && res.token_refused &&
	    a->oauth_provider == OAUTH_MICROSOFT) {
		printf("%s: login: FAILED: %s\n", a->name, err);
		free(err);
		exchange_steps(a);
		return EX_NOPERM;
	}
	if (r == PM_EAUTH && res.token_refused) {
		step = xasprintf("%s; the token was good, so the mail server "
		    "does not accept it for user %s: check that it trusts "
		    "this issuer and client and that user is the name the "
		    "token is for", err, a->user);
		free(err);
		return step_failed(a, "login", step, EX_NOPERM);
	}
	return step_failed(a, "login", err, auth_code(r));
}

/* `pullmail check ACCOUNT` (contract in check-account.h). */
int
check_account(struct account *a, const char *plugdir)
{
	const struct pm_plugin *p;
	char *err = NULL, *note = NULL;
	unsigned port;
	int r;

	if ((r = plugin_load(plugdir, a->protocol, &p, &err)) != PM_OK)
		return step_failed(a, "config and secret files", err,
		    r == PM_ECONFIG ? EX_CONFIG : EX_SOFTWARE);
	step_ok(a, "config and secret files", "%s:%d", a->file, a->line);
	port = a->port != 0 ? a->port : (a->tls == PM_TLS_IMPLICIT ?
	    p->port_tls : p->port_plain);
	if ((r = check_network(a, port)) != 0 || (r = check_token(a)) != 0 ||
	    (r = check_login(a, p)) != 0)
		return r;
	if ((r = deliver_probe(a, &note, &err)) != PM_OK)
		return step_failed(a, "delivery", err, EX_CANTCREAT);
	step_ok(a, "delivery", "%s", note);
	free(note);
	printf("%s: every step passed\n", a->name);
	return 0;
}
