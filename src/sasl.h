/* SASL mechanisms and the engine shared by all protocol plugins. */
#ifndef PM_SASL_H
#define PM_SASL_H

#include <stddef.h>

#include "base64.h"
#include "secret.h"

/*
 * The builders below return NULL only when the input cannot be framed:
 * a ^A in user, host or token (XOAUTH2, OAUTHBEARER), a NUL in the
 * password (PLAIN).  Intermediate buffers are wiped.
 */
/* XOAUTH2 initial response, base64:
 * "user=" user ^A "auth=Bearer " token ^A ^A */
struct pm_secret *sasl_xoauth2(const char *user, const struct pm_secret *tok);
/* OAUTHBEARER (RFC 7628) initial response, base64:
 * "n,a=" user "," ^A "host=" host ^A "port=" port ^A
 * "auth=Bearer " token ^A ^A  (user's ',' and '=' escaped as =2C and =3D) */
struct pm_secret *sasl_oauthbearer(const char *user, const char *host,
    unsigned port, const struct pm_secret *tok);
/* PLAIN (RFC 4616) response, base64: authzid NUL user NUL password */
struct pm_secret *sasl_plain(const char *user, const struct pm_secret *pw);

/* Flags for sasl_choose()'s oauth argument; a plain boolean 1 means
 * SASL_HAVE_OAUTH alone.  SASL_HAVE_PASSWORD matters only with OAuth (a
 * password account always has a password). */
#define SASL_HAVE_OAUTH		0x1	/* OAuth (token module) configured */
#define SASL_HAVE_PASSWORD	0x2	/* a login password too */

/*
 * Pick a mechanism name for auth (enum auth_mech) given the server's
 * space-separated mechanisms (NULL or "" for none) and whether the account
 * has OAuth configured.  auto: XOAUTH2 then OAUTHBEARER with OAuth, else
 * PLAIN then LOGIN; an explicit choice must be advertised.  Returns NULL
 * and sets *err (PM_ECONFIG) when none fits.
 */
const char *sasl_choose(int auth, int oauth, const char *server_mechs,
    char **err);

/*
 * Decode an OAuth error challenge (base64 of a small JSON object such as
 * {"status":"401","schemes":"bearer","scope":"mail"}).  On success returns
 * 0 with *status_r the status ("401") and *summary_r a printable one-line
 * summary ("status 401, schemes bearer, scope mail"); both malloc'd.  On
 * malformed input returns -1, *status_r NULL and *summary_r a message
 * saying the challenge could not be decoded.
 */
int sasl_oauth_error(const char *challenge_b64, char **status_r,
    char **summary_r);

/* 1 when mech is XOAUTH2 or OAUTHBEARER (any case). */
int sasl_is_oauth(const char *mech);

/* Challenges answered in one exchange before the server is taken to be
 * looping. */
#define SASL_MAX_ROUNDS 8

struct pm_sasl_proto;

/* What one SASL exchange sends (sasl_exchange()); all owned by the
 * caller. */
struct sasl_login {
	const char *mech;		/* from sasl_choose() */
	const char *user;		/* LOGIN's first answer; named in
					 * errors */
	const struct pm_secret *password; /* LOGIN's second answer, or
					 * NULL */
	const struct pm_secret *ir;	/* initial response (base64), NULL
					 * for LOGIN */
	int server_ir;			/* the protocol may carry it on the
					 * start line (SASL-IR, POP3 AUTH) */
};

/*
 * Run the exchange of l over protocol p (ctx is p's own): start (with the
 * initial response when it fits, see struct pm_sasl_proto), answer every
 * challenge, read the final reply.  An OAuth error challenge (base64 JSON)
 * is answered as its mechanism requires and its summary quoted in the
 * error.  Returns PM_OK on success; PM_EAUTH with *err quoting the
 * server's text when the server refuses, and then *token_refused_r = 1
 * for XOAUTH2 and OAUTHBEARER (the access token must not be used again);
 * PM_EPROTO after more than SASL_MAX_ROUNDS challenges; else the status
 * p's slot failed with (PM_ETEMP for a dropped connection, PM_EPROTO for
 * a reply it cannot parse), *err as p set it.
 */
int sasl_exchange(const struct pm_sasl_proto *p, void *ctx,
    const struct sasl_login *l, int *token_refused_r, char **err);

#endif
