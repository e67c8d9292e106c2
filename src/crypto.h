/*
 * Hashes and random bytes for the token module (PKCE, state).  crypto.c is,
 * with transport.c, the only user of GnuTLS; this header shows none of its
 * types.
 */
#ifndef PM_CRYPTO_H
#define PM_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_LEN	32

/* n random bytes (GnuTLS's nonce-level generator).  0 or -1. */
int crypto_random(void *buf, size_t n);

/* SHA-256 of n bytes into out.  0 or -1. */
int crypto_sha256(const void *data, size_t n,
    unsigned char out[CRYPTO_SHA256_LEN]);

/* A random base64url string of nbytes random bytes (PKCE verifier, state);
 * malloc'd, or NULL when the generator fails. */
char *crypto_random_string(size_t nbytes);

#define CRYPTO_SHA1_LEN		20

/*
 * Sign n bytes with RS256 (RSASSA-PKCS1-v1_5, SHA-256) using the PEM
 * private key of key_len bytes (PKCS#8 or PKCS#1, unencrypted).  The
 * signature is malloc'd.  Errors: PM_ECONFIG (unusable key, not RSA),
 * PM_EINTERNAL.
 */
int crypto_rs256_sign(const char *key_pem, size_t key_len, const void *data,
    size_t n, unsigned char **sig_r, size_t *sig_len_r, char **err);

/* SHA-1 thumbprint of the DER form of the first certificate in a PEM file's
 * text (for a JWT's x5t).  Errors: PM_ECONFIG. */
int crypto_cert_sha1(const char *cert_pem, size_t len,
    unsigned char out[CRYPTO_SHA1_LEN], char **err);

#endif
