/*
 * The token module (src/oauth/), as the rest of pullmail sees it: an
 * account's access token by whatever its configuration says (client
 * credentials with a secret or certificate, a delegated flow's refresh
 * token, an external command), OpenID discovery of its endpoints, and the
 * `pullmail authorize` and `pullmail token --info` commands.  libcurl and
 * json-c appear only inside src/oauth/.  The module keeps what it derives
 * (discovered endpoints) in its own state keyed by the account; it never
 * writes into struct account.
 */
#ifndef PM_OAUTH_H
#define PM_OAUTH_H

#include <time.h>

#include "secret.h"

struct account;

/* Initialise libcurl now rather than at the first request: call it once
 * before starting threads.  Errors: PM_EINTERNAL. */
int oauth_global_init(char **err);

/* Release libcurl, which the first request initialises, the tokens held
 * for apps and the endpoints discovered; at exit, with no other thread in
 * the token module. */
void oauth_global_deinit(void);

/*
 * The access token of account a, whose token files live in cache_dir:
 * its endpoints discovered first when it names an issuer (once per
 * process and account settings), then from the cache or store when still
 * valid for a while, else from the token endpoint (client credentials:
 * one request for all the mailboxes of one app; delegated: the refresh
 * token, rotated atomically; oauth_token_command: what it prints).
 * *cached_r (may be NULL) is 1 when the token came from a cache.  Errors:
 * PM_EAUTH (refused; for a delegated account when a human must run
 * `pullmail authorize`, with notify_command run once), PM_ECONFIG,
 * PM_ETEMP (network, 5xx, a lock held too long), PM_EPROTO.
 */
int oauth_account_token(const struct account *a, const char *cache_dir,
    struct pm_secret **token_r, int *cached_r, char **err);

/* Drop a's cached token after the server refused the token refused, unless
 * the cache holds another one by now (another mailbox got a new one);
 * refused NULL drops it whatever it is.  A delegated store keeps its
 * refresh token. */
void oauth_account_invalidate(const struct account *a, const char *cache_dir,
    const struct pm_secret *refused);

/* When token (from oauth_account_token; NULL: whatever is recorded)
 * expires, as recorded next to it; 0 when unknown.  No network. */
time_t oauth_account_expiry(const struct account *a, const char *cache_dir,
    const struct pm_secret *token);

/*
 * `pullmail authorize ACCOUNT`: run a's delegated flow (device code, or
 * authorization code with PKCE; without a configured flow the latter when
 * a display is there and the issuer has an authorization endpoint) and
 * store the refresh token.  Progress goes to stdout.  Errors: PM_EAUTH
 * (denied, expired, no refresh token issued), PM_ECONFIG (flow not
 * delegated, endpoint missing), PM_ETEMP, PM_EPROTO.
 */
int oauth_account_authorize(const struct account *a, const char *cache_dir,
    char **err);

/*
 * `pullmail token ACCOUNT --info`: get a's token as a fetch would and
 * print its kind, length, expiry and, for a JWT, its claims, never the
 * token; warn when the provider table says they cannot fit a->user and
 * a->protocol.  Errors: those of oauth_account_token; PM_EAUTH after a
 * warning.
 */
int oauth_account_info(const struct account *a, const char *cache_dir,
    char **err);

/*
 * `pullmail check`: whether the claims of token (a's, from
 * oauth_account_token) fit a, by the provider table: the audience
 * (Exchange Online for Microsoft), the grant for a->protocol (roles
 * IMAP.AccessAsApp for an app-only token, scp IMAP.AccessAsUser.All for a
 * delegated one; POP. for POP3) and a delegated token's user.  PM_OK with
 * *note_r (malloc'd) saying what was checked, or why nothing was (an
 * opaque token, an issuer the table does not know).  Errors: PM_EAUTH
 * naming the claim and what the admin must change.  Never shows the token.
 */
int oauth_account_claims(const struct account *a,
    const struct pm_secret *token, char **note_r, char **err);

#endif
