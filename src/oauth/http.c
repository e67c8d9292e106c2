/*
 * The token module's HTTP client: one POST (or discovery GET) to an
 * endpoint over libcurl, with the client's credentials in the body or as
 * Basic, the trust anchors of the endpoint, a bounded response and a
 * redacted debug trace.  The only file that includes libcurl.
 *
 * Threads: libcurl's global state is set up once under curl_lock (by
 * oauth_global_init before the worker threads start, or by the first
 * request); every request has its own easy handle.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "trust.h"
#include "util.h"


/* 1 once libcurl is initialised: at the first request, not at start-up,
 * since a run with a cached token needs none of it (about 1.7 MB of peak
 * RSS: libcurl's own start-up initialises libssh2 and OpenSSL), unless
 * oauth_global_init asks for it before threads start. */
static int curl_started;
static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;

/* Initialise libcurl before its first use (contract in oauth.h). */
int
oauth_global_init(char **err)
{
	CURLcode rc = CURLE_OK;

	pthread_mutex_lock(&curl_lock);
	if (!curl_started) {
		rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_started = rc == CURLE_OK;
	}
	pthread_mutex_unlock(&curl_lock);
	if (rc != CURLE_OK)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl: %s",
		    curl_easy_strerror(rc));
	return PM_OK;
}

/* Release libcurl's global state, if a request started it (contract in
 * oauth-int.h). */
void
oauth_http_deinit(void)
{
	pthread_mutex_lock(&curl_lock);
	if (curl_started)
		curl_global_cleanup();
	curl_started = 0;
	pthread_mutex_unlock(&curl_lock);
}

/* Collect the response body, refusing more than OAUTH_MAX_RESPONSE. */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;
	char *grown;

	if (n > OAUTH_MAX_RESPONSE - r->len) {
		r->too_large = 1;
		return 0;
	}
	grown = xmalloc(r->len + n + 1);
	if (r->len > 0)
		memcpy(grown, r->body, r->len);
	memcpy(grown + r->len, data, n);
	grown[r->len + n] = '\0';
	secret_wipe_free(r->body, r->len);
	r->body = grown;
	r->len += n;
	return n;
}

/* Log one line of libcurl's -vv output with its control bytes escaped. */
static void
debug_line(const char *what, const char *s, size_t n)
{
	char *line, *clean;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (n == 0)
		return;
	line = xstrndup(s, n);
	clean = oauth_clean_text(line, 512);
	log_debug("oauth", "%s %s", what, clean);
	free(clean);
	free(line);
}

/*
 * libcurl's verbose output, for -vv only: informational text and headers,
 * with any Authorization header and both bodies redacted.
 */
static int
debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	const char *p = data, *end = data + size, *nl;
	const char *what;

	switch (type) {
	case CURLINFO_TEXT:
		what = "*";
		break;
	case CURLINFO_HEADER_OUT:
		what = ">";
		break;
	case CURLINFO_HEADER_IN:
		what = "<";
		break;
	case CURLINFO_DATA_OUT:
		log_debug("oauth", "> <request body redacted, %zu bytes>",
		    size);
		return 0;
	case CURLINFO_DATA_IN:
		log_debug("oauth", "< <response body redacted, %zu bytes>",
		    size);
		return 0;
	default:
		return 0;
	}
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (type == CURLINFO_HEADER_OUT &&
		    ((size_t)(nl - p) >= 14 &&
		    strncasecmp(p, "Authorization:", 14) == 0))
			log_debug("oauth", "> Authorization: <redacted>");
		else if (type == CURLINFO_HEADER_OUT &&
		    ((size_t)(nl - p) >= 20 &&
		    strncasecmp(p, "Proxy-Authorization:", 20) == 0))
			log_debug("oauth", "> Proxy-Authorization: <redacted>");
		else
			debug_line(what, p, (size_t)(nl - p));
		p = nl < end ? nl + 1 : end;
	}
	return 0;
}

/* Map a libcurl failure to a status class. */
static int
curl_status(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return PM_ECONFIG;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return PM_ETLS;
	case CURLE_WRITE_ERROR:
		return PM_EPROTO;
	default:
		return PM_ETEMP;
	}
}

/*
 * Refuse a URL credentials may not travel to: url_check_endpoint, and the
 * host as libcurl itself parses it, so that no difference between the two
 * parsers lets a plain http request leave this host.  PM_ECONFIG.
 */
static int
endpoint_refused(const char *url, char **err)
{
	const char *why = NULL;
	char *scheme = NULL, *host = NULL;
	CURLU *u;
	int rc = PM_OK;

	if (url_check_endpoint(url, &why) != 0)
		return errf(err, PM_ECONFIG, "%s: %s", url, why);
	if ((u = curl_url()) == NULL)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		rc = errf(err, PM_ECONFIG, "%s: not a URL", url);
	else if (strcasecmp(scheme, "https") != 0 &&
	    !host_is_loopback(host, strlen(host)))
		rc = errf(err, PM_ECONFIG, "%s: plain http:// is allowed only "
		    "to this host; use https://", url);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/*
 * The system's trust anchors for the TLS server of url, as PEM (malloc'd),
 * or NULL when they cannot be told (not https, no CA bundle, no chain).
 * A first connection only shakes hands, sending nothing and verifying
 * nothing, to see the chain the server sends (CURLINFO_CERTINFO); of the
 * system CA bundle, trust_select keeps the certificates that chain names.
 * The request itself is then verified against those: a subset of the
 * bundle, and a few certificates parsed instead of all of them (3.8 MB of
 * peak RSS with the bundle, 7.6 MB with Debian's default CA directory).
 * *rc_r: how that connection went (its message in errbuf), so that a
 * server that cannot be reached is not waited for twice.
 */
static char *
anchors_for(const char *url, const char *bundle, long timeout,
    char *errbuf, CURLcode *rc_r)
{
	struct curl_certinfo *ci = NULL;
	struct trust_der *chain;
	struct curl_slist *l;
	unsigned char *der;
	char *pem = NULL;
	size_t n = 0, i, len, count = 0;
	CURLcode rc;
	CURL *h;

	*rc_r = CURLE_OK;
	if (bundle == NULL || strncasecmp(url, "https://", 8) != 0 ||
	    (h = curl_easy_init()) == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	*rc_r = rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci);
	if (rc != CURLE_OK || ci == NULL || ci->num_of_certs <= 0) {
		log_debug("oauth", "%s: no certificate chain seen (%s); "
		    "trusting all of %s", url, curl_easy_strerror(rc), bundle);
		curl_easy_cleanup(h);
		return NULL;
	}
	chain = xcalloc((size_t)ci->num_of_certs, sizeof *chain);
	for (i = 0; i < (size_t)ci->num_of_certs; i++)
		for (l = ci->certinfo[i]; l != NULL; l = l->next)
			if (strncmp(l->data, "Cert:", 5) == 0 &&
			    trust_pem_der(l->data + 5, &der, &len) == 0) {
				chain[n].data = der;
				chain[n++].len = len;
				break;
			}
	curl_easy_cleanup(h);
	if (trust_select(bundle, chain, n, &pem, &count) != 0)
		log_debug("oauth", "CA bundle %s: %s", bundle,
		    pm_strerror(errno));
	else
		log_debug("oauth", "%s: %zu trust anchor%s from %s", url,
		    count, count == 1 ? "" : "s", bundle);
	for (i = 0; i < n; i++)
		free((void *)chain[i].data);
	free(chain);
	return pem;
}

/*
 * Make h trust the anchors in pem (from anchors_for), else the whole CA
 * bundle, else (bundle NULL) libcurl's defaults.  *fd_r: a descriptor to
 * close after the request, or -1.
 */
static void
trust_setopt(CURL *h, const char *bundle, const char *pem, int *fd_r)
{
	*fd_r = -1;
	if (bundle == NULL)
		return;
	/* Debian's libcurl defaults to the CA directory, whose every file
	 * GnuTLS would parse: the bundle holds the same certificates. */
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
#if LIBCURL_VERSION_NUM >= 0x074d00
	if (pem != NULL) {
		struct curl_blob blob = { (void *)pem, strlen(pem),
		    CURL_BLOB_COPY };

		if (curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob) ==
		    CURLE_OK)
			return;
	} else
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, NULL);
#endif
#ifdef HAVE_MEMFD_CREATE
	/* A TLS backend without CA blobs (GnuTLS before libcurl 8.x) reads
	 * a file: one in memory. */
	if (pem != NULL && (*fd_r = memfd_create("pullmail-anchors",
	    MFD_CLOEXEC)) >= 0) {
		if (write_full(*fd_r, pem, strlen(pem)) == 0) {
			char *path = xasprintf("/proc/self/fd/%d", *fd_r);

			curl_easy_setopt(h, CURLOPT_CAINFO, path);
			free(path);
			return;
		}
		close(*fd_r);
		*fd_r = -1;
	}
#endif
	curl_easy_setopt(h, CURLOPT_CAINFO, bundle);
}

/* grant followed by the client's credentials, for the request body. */
static char *
request_body(const struct oauth_request *req, const char *grant)
{
	char *id, *secret = NULL, *body, *jwt = NULL, *err = NULL;
	int in_body;

	if (req->client_key != NULL && req->client_cert != NULL) {
		if (oauth_client_assertion(req, &jwt, &err) != PM_OK) {
			log_warnx("%s: no client assertion: %s", req->account !=
			    NULL ? req->account : "oauth", err);
			free(err);
			return NULL;
		}
		id = oauth_form_encode(req->client_id, strlen(req->client_id));
		body = xasprintf("%s&client_id=%s&client_assertion_type="
		    "urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type"
		    "%%3Ajwt-bearer&client_assertion=%s", grant, id, jwt);
		free(id);
		oauth_free_wiped(jwt);
		return body;
	}

	in_body = req->client_secret == NULL ||
	    req->client_auth != OAUTH_CLIENT_BASIC;
	id = oauth_form_encode(req->client_id, strlen(req->client_id));
	if (req->client_secret != NULL && in_body)
		secret = oauth_form_encode(secret_reveal(req->client_secret),
		    secret_len(req->client_secret));
	body = xasprintf("%s%s%s%s%s", grant,
	    in_body ? "&client_id=" : "", in_body ? id : "",
	    secret != NULL ? "&client_secret=" : "",
	    secret != NULL ? secret : "");
	free(id);
	oauth_free_wiped(secret);
	return body;
}

/* POST grant (and the client's credentials) to url; the reply's status
 * and body (contract in oauth-int.h). */
int
oauth_http_post(const struct oauth_request *req, const char *url,
    const char *grant, struct http_reply *reply, char **err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *headers = NULL;
	char *body, *user = NULL, *pass = NULL, *anchors;
	const char *bundle;
	long timeout;
	CURLcode rc;
	CURL *h;
	int status, cafd;

	memset(reply, 0, sizeof *reply);
	reply->retry_after = -1;
	if ((status = oauth_global_init(err)) != PM_OK ||
	    (status = endpoint_refused(url, err)) != PM_OK)
		return status;
	h = curl_easy_init();
	if (h == NULL)
		return errf(err, PM_EINTERNAL, "cannot initialise libcurl");
	if (grant == NULL)
		body = NULL;	/* a GET: OpenID discovery */
	else if ((body = request_body(req, grant)) == NULL) {
		curl_easy_cleanup(h);
		return errf(err, PM_ECONFIG, "cannot build the client "
		    "assertion from oauth_client_certificate and "
		    "oauth_client_key (see the warning above)");
	}
	timeout = req->timeout > 0 ? req->timeout : OAUTH_DEFAULT_TIMEOUT;
	errbuf[0] = '\0';
	headers = curl_slist_append(headers, "Accept: application/json");

	curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP));
#endif
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	/* Plain http goes to this host only (endpoint_refused): never to a
	 * proxy elsewhere. */
	if (strncasecmp(url, "http://", 7) == 0)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pullmail");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
	if (body != NULL && req->client_secret != NULL &&
	    req->client_auth == OAUTH_CLIENT_BASIC) {
		/* RFC 6749 2.3.1: both form-encoded before Basic encoding. */
		user = oauth_form_encode(req->client_id,
		    strlen(req->client_id));
		pass = oauth_form_encode(secret_reveal(req->client_secret),
		    secret_len(req->client_secret));
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, pass);
	}
	if (log_verbosity() >= 2) {
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	}

	/* Without a readable bundle: libcurl's own defaults. */
	bundle = req->ca_bundle != NULL ? req->ca_bundle : trust_bundle_path();
	if (bundle != NULL && access(bundle, R_OK) != 0)
		bundle = NULL;
	anchors = anchors_for(url, bundle, timeout, errbuf, &rc);
	trust_setopt(h, bundle, anchors, &cafd);
	if (rc != CURLE_COULDNT_RESOLVE_PROXY &&
	    rc != CURLE_COULDNT_RESOLVE_HOST && rc != CURLE_COULDNT_CONNECT &&
	    rc != CURLE_OPERATION_TIMEDOUT) {
		errbuf[0] = '\0';
		rc = curl_easy_perform(h);
	}
	if (anchors != NULL && (rc == CURLE_PEER_FAILED_VERIFICATION ||
	    rc == CURLE_SSL_CACERT_BADFILE)) {
		/* Another chain than the first connection saw (a server
		 * behind a balancer, say): nothing was sent; again with the
		 * whole bundle. */
		log_debug("oauth", "%s: %s; again trusting all of %s", url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc),
		    bundle);
		if (cafd >= 0)
			close(cafd);
		trust_setopt(h, bundle, NULL, &cafd);
		errbuf[0] = '\0';
		rc = curl_easy_perform(h);
	}
	if (rc == CURLE_OK) {
		curl_off_t ra = -1;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
#if LIBCURL_VERSION_NUM >= 0x074200
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) ==
		    CURLE_OK && ra > 0)
			reply->retry_after = ra > 86400 ? 86400 : (long)ra;
#endif
		status = PM_OK;
	} else if (reply->too_large)
		status = errf(err, PM_EPROTO, "%s: response larger than %d "
		    "bytes", url, OAUTH_MAX_RESPONSE);
	else
		status = errf(err, curl_status(rc), "%s: %s", url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	/* A body cut short (size cap, timeout, dropped connection) may hold
	 * a token: never left to the caller. */
	if (status != PM_OK)
		oauth_reply_free(reply);

	curl_easy_cleanup(h);
	if (cafd >= 0)
		close(cafd);
	free(anchors);
	curl_slist_free_all(headers);
	oauth_free_wiped(body);
	oauth_free_wiped(user);
	oauth_free_wiped(pass);
	return status;
}

/* Wipe and free a reply's body, complete or not, and zero the reply. */
void
oauth_reply_free(struct http_reply *reply)
{
	secret_wipe_free(reply->body, reply->len);
	memset(reply, 0, sizeof *reply);
	reply->retry_after = -1;
}
