/* The system's CA bundle, read for just the trust anchors one server's
 * chain can use, instead of parsing every certificate in it (a few MB of
 * memory with GnuTLS).  No TLS library here: DER is walked by hand. */
#ifndef PM_TRUST_H
#define PM_TRUST_H

#include <stddef.h>

/* One certificate, DER. */
struct trust_der {
	const unsigned char *data;
	size_t len;
};

/*
 * The bundle chosen at build time (configure --with-ca-bundle), or NULL
 * when there is none and the TLS library's own system trust is used whole.
 */
const char *trust_bundle_path(void);

/*
 * Read the PEM bundle at path one certificate at a time and keep those
 * whose subject name is, byte for byte, the subject or the issuer name of
 * one of the n certificates of chain.  Those are the only certificates a
 * verifier finds as anchors for that chain: GnuTLS looks issuers up by the
 * raw name, so the result verifies exactly as the whole bundle would.
 * *pem_r: the kept certificates as PEM (malloc'd, NUL-terminated; NULL
 * when none), *count_r their number.  Certificates in the bundle that do
 * not parse are skipped (GnuTLS would refuse the whole file).  Errors: -1
 * with errno when path cannot be read (the caller falls back to the whole
 * store).  The last few selections are remembered (thread-safe) while the
 * file at path keeps its device, inode, size and modification time: a run
 * over many mailboxes of one server reads the bundle once.
 */
int trust_select(const char *path, const struct trust_der *chain, size_t n,
    char **pem_r, size_t *count_r);

/*
 * The DER of the PEM certificate in text ("-----BEGIN CERTIFICATE-----",
 * base64 lines, "-----END CERTIFICATE-----"): malloc'd in *der_r, its
 * length in *len_r.  -1 when text holds no such certificate.
 */
int trust_pem_der(const char *text, unsigned char **der_r, size_t *len_r);

#endif
