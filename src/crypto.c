/*
 * Hashes and random bytes over GnuTLS.  With transport.c, this is the only
 * file that includes GnuTLS headers; crypto.h exposes none of its types.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "base64.h"
#include "crypto.h"
#include "secret.h"
#include "util.h"

/* n random bytes from GnuTLS. */
int
crypto_random(void *buf, size_t n)
{
	return gnutls_rnd(GNUTLS_RND_NONCE, buf, n) == 0 ? 0 : -1;
}

/* SHA-256 of n bytes. */
int
crypto_sha256(const void *data, size_t n,
    unsigned char out[CRYPTO_SHA256_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, out) == 0 ? 0 : -1;
}

/* A random base64url string of nbytes random bytes. */
char *
crypto_random_string(size_t nbytes)
{
	unsigned char buf[64];
	char *s;

	if (nbytes > sizeof buf || crypto_random(buf, nbytes) < 0)
		return NULL;
	s = base64_encode(BASE64_URL, buf, nbytes);
	secret_wipe((char *)buf, sizeof buf);
	return s;
}

/* RS256 signature with a PEM private key. */
int
crypto_rs256_sign(const char *key_pem, size_t key_len, const void *data,
    size_t n, unsigned char **sig_r, size_t *sig_len_r, char **err)
{
	gnutls_privkey_t key;
	gnutls_datum_t pem, in, sig = { NULL, 0 };
	int rc;

	*sig_r = NULL;
	pem.data = (unsigned char *)key_pem;
	pem.size = (unsigned)key_len;
	if (gnutls_privkey_init(&key) < 0)
		return errf(err, PM_EINTERNAL, "cannot initialise a key");
	rc = gnutls_privkey_import_x509_raw(key, &pem, GNUTLS_X509_FMT_PEM,
	    NULL, 0);
	if (rc < 0) {
		gnutls_privkey_deinit(key);
		return errf(err, PM_ECONFIG, "the client key is not an "
		    "unencrypted PEM private key: %s", gnutls_strerror(rc));
	}
	if (gnutls_privkey_get_pk_algorithm(key, NULL) != GNUTLS_PK_RSA) {
		gnutls_privkey_deinit(key);
		return errf(err, PM_ECONFIG, "the client key is not an RSA "
		    "key (RS256 needs one)");
	}
	in.data = (unsigned char *)data;
	in.size = (unsigned)n;
	rc = gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &in, &sig);
	gnutls_privkey_deinit(key);
	if (rc < 0)
		return errf(err, PM_EINTERNAL, "signing failed: %s",
		    gnutls_strerror(rc));
	*sig_r = xmalloc(sig.size);
	memcpy(*sig_r, sig.data, sig.size);
	*sig_len_r = sig.size;
	gnutls_free(sig.data);
	return PM_OK;
}

/* SHA-1 thumbprint of a PEM certificate. */
int
crypto_cert_sha1(const char *cert_pem, size_t len,
    unsigned char out[CRYPTO_SHA1_LEN], char **err)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t pem;
	size_t size = CRYPTO_SHA1_LEN;
	int rc;

	pem.data = (unsigned char *)cert_pem;
	pem.size = (unsigned)len;
	if (gnutls_x509_crt_init(&crt) < 0)
		return errf(err, PM_EINTERNAL, "cannot initialise a "
		    "certificate");
	rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA1, out,
		    &size);
	gnutls_x509_crt_deinit(crt);
	if (rc < 0 || size != CRYPTO_SHA1_LEN)
		return errf(err, PM_ECONFIG, "the client certificate is not a "
		    "PEM X.509 certificate: %s", gnutls_strerror(rc));
	return PM_OK;
}
