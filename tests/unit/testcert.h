/* Certificates made in process with the GnuTLS x509 API, for the tests of
 * the transport and of the token module over https. */
#ifndef PM_TEST_TESTCERT_H
#define PM_TEST_TESTCERT_H

#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* One certificate with its key. */
struct tcert {
	gnutls_x509_crt_t	 crt;
	gnutls_x509_privkey_t	 key;
	char			 pin[32 * 3];	/* "AB:CD:..." sha256 */
	char			 pin_plain[32 * 2 + 1];	/* "abcd..." */
};

/*
 * Make a certificate for dn, valid from..until, with an ECDSA P-256 key.
 * is_ca: a CA certificate; otherwise a server certificate for localhost,
 * 127.0.0.1 and ::1.  issuer NULL: self-signed.
 */
void tcert_make(struct tcert *tc, const char *dn, int is_ca,
    const struct tcert *issuer, time_t from, time_t until,
    unsigned char serial);

/* Release the certificate and its key. */
void tcert_free(struct tcert *tc);

/* The certificate as PEM text; malloc'd. */
char *tcert_pem(const struct tcert *tc);

/*
 * Write dir/name: a CA bundle of the n certificates the way distributions
 * make them, with comments between them; every other one with CRLF line
 * ends.  broken: first a block that is not base64 (GnuTLS refuses such a
 * file whole).  Returns the malloc'd path.
 */
char *tcert_write_bundle(const char *dir, const char *name,
    const struct tcert *const *certs, size_t n, int broken);

#endif
