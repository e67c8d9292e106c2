/* SASL mechanisms and the engine shared by all protocol plugins. */
#ifndef PM_SASL_H
#define PM_SASL_H

#include <stddef.h>

#include "secret.h"

/* Base64 (RFC 4648, with padding).  encode returns a malloc'd string;
 * decode returns -1 on malformed input. */
char *base64_encode(const void *data, size_t len);
int base64_decode(const char *in, size_t inlen, unsigned char **out_r,
    size_t *outlen_r);

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

/* Pick a mechanism name for auth (enum auth_mech) given the server's
 * space-separated mechanisms and whether the account has OAuth configured.
 * Returns NULL and sets *err when none fits. */
const char *sasl_choose(int auth, int oauth, const char *server_mechs,
    char **err);

#endif
