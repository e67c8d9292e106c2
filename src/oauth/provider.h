/*
 * The provider table (provider.c): what pullmail knows of the OAuth
 * providers it has defaults for.  Plain data and lookups; no I/O.
 */
#ifndef PM_OAUTH_PROVIDER_H
#define PM_OAUTH_PROVIDER_H

/* The number after "AADSTS" in text, or 0. */
long provider_aadsts_code(const char *text);

/* The hint for an OAuth error code and a Microsoft AADSTS code (0: none),
 * or NULL. */
const char *provider_hint(const char *error, long code);

#endif
