/* Certificates made in process for the TLS tests (see testcert.h). */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "suites.h"
#include "testcert.h"
#include "util.h"

/* Make an ECDSA P-256 key (fast to generate). */
static gnutls_x509_privkey_t
make_key(void)
{
	gnutls_x509_privkey_t key;

	ck_assert_int_eq(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_eq(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	return key;
}

/* Make a certificate (see testcert.h). */
void
tcert_make(struct tcert *tc, const char *dn, int is_ca,
    const struct tcert *issuer, time_t from, time_t until,
    unsigned char serial)
{
	static const unsigned char v4[4] = { 127, 0, 0, 1 };
	static const unsigned char v6[16] = { [15] = 1 };
	unsigned char	 sn[2] = { 0x01, serial };
	unsigned char	 fp[32];
	size_t		 fplen = sizeof fp, i;
	const char	*errpos;
	gnutls_datum_t	 der;

	tc->key = make_key();
	ck_assert_int_eq(gnutls_x509_crt_init(&tc->crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_version(tc->crt, 3), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_serial(tc->crt, sn, sizeof sn),
	    0);
	ck_assert_int_eq(gnutls_x509_crt_set_dn(tc->crt, dn, &errpos), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_key(tc->crt, tc->key), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_activation_time(tc->crt, from),
	    0);
	ck_assert_int_eq(gnutls_x509_crt_set_expiration_time(tc->crt, until),
	    0);
	ck_assert_int_eq(gnutls_x509_crt_set_basic_constraints(tc->crt,
	    is_ca, -1), 0);
	if (is_ca)
		ck_assert_int_eq(gnutls_x509_crt_set_key_usage(tc->crt,
		    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), 0);
	else {
		ck_assert_int_eq(gnutls_x509_crt_set_key_usage(tc->crt,
		    GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
		ck_assert_int_eq(gnutls_x509_crt_set_key_purpose_oid(tc->crt,
		    GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
		ck_assert_int_eq(gnutls_x509_crt_set_subject_alt_name(tc->crt,
		    GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND),
		    0);
		ck_assert_int_eq(gnutls_x509_crt_set_subject_alt_name(tc->crt,
		    GNUTLS_SAN_IPADDRESS, v4, sizeof v4, GNUTLS_FSAN_APPEND),
		    0);
		ck_assert_int_eq(gnutls_x509_crt_set_subject_alt_name(tc->crt,
		    GNUTLS_SAN_IPADDRESS, v6, sizeof v6, GNUTLS_FSAN_APPEND),
		    0);
	}
	if (issuer == NULL)
		ck_assert_int_eq(gnutls_x509_crt_sign2(tc->crt, tc->crt,
		    tc->key, GNUTLS_DIG_SHA256, 0), 0);
	else
		ck_assert_int_eq(gnutls_x509_crt_sign2(tc->crt, issuer->crt,
		    issuer->key, GNUTLS_DIG_SHA256, 0), 0);

	/* GnuTLS fills its cache of a certificate's raw names, by which it
	 * orders the chain a server sends, only on import. */
	ck_assert_int_eq(gnutls_x509_crt_export2(tc->crt, GNUTLS_X509_FMT_DER,
	    &der), 0);
	gnutls_x509_crt_deinit(tc->crt);
	ck_assert_int_eq(gnutls_x509_crt_init(&tc->crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_import(tc->crt, &der,
	    GNUTLS_X509_FMT_DER), 0);
	gnutls_free(der.data);

	ck_assert_int_eq(gnutls_x509_crt_get_fingerprint(tc->crt,
	    GNUTLS_DIG_SHA256, fp, &fplen), 0);
	ck_assert_uint_eq(fplen, 32);
	for (i = 0; i < 32; i++) {
		snprintf(tc->pin + i * 3, 4, "%02X%s", fp[i], i == 31 ? "" :
		    ":");
		snprintf(tc->pin_plain + i * 2, 3, "%02x", fp[i]);
	}
}

/* Release the certificate and its key. */
void
tcert_free(struct tcert *tc)
{
	gnutls_x509_crt_deinit(tc->crt);
	gnutls_x509_privkey_deinit(tc->key);
}

/* The certificate as PEM text; malloc'd. */
char *
tcert_pem(const struct tcert *tc)
{
	gnutls_datum_t	 pem;
	char		*text;

	ck_assert_int_eq(gnutls_x509_crt_export2(tc->crt, GNUTLS_X509_FMT_PEM,
	    &pem), 0);
	text = xstrndup((const char *)pem.data, pem.size);
	gnutls_free(pem.data);
	return text;
}

/* Write a CA bundle (see testcert.h). */
char *
tcert_write_bundle(const char *dir, const char *name,
    const struct tcert *const *certs, size_t n, int broken)
{
	char	*text, *pem, *next, *path, *p;
	size_t	 i, j;

	text = xstrdup(broken ? "# A bundle with a broken block.\n\n"
	    "-----BEGIN CERTIFICATE-----\nnot*base64\n"
	    "-----END CERTIFICATE-----\n" :
	    "# A bundle as distributions make them.\n");
	for (i = 0; i < n; i++) {
		pem = tcert_pem(certs[i]);
		if (i % 2 == 1) {
			next = xmalloc(strlen(pem) * 2 + 1);
			for (j = 0, p = next; pem[j] != '\0'; j++) {
				if (pem[j] == '\n')
					*p++ = '\r';
				*p++ = pem[j];
			}
			*p = '\0';
			free(pem);
			pem = next;
		}
		next = xasprintf("%s\n# certificate %zu\n%s", text, i, pem);
		free(text);
		free(pem);
		text = next;
	}
	path = test_write_file(dir, name, text, 0644);
	free(text);
	return path;
}
