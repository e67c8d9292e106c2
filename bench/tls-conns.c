/*
 * What a TLS connection costs in memory: open N verified TLS streams
 * (the transport's own stream_connect and stream_starttls, then a
 * greeting line read as an IMAP client would) to a small GnuTLS server in
 * a child process and print the client's resident set
 * before and after, in total and per connection.  (A Check test only
 * because testcert.c, which makes the certificates, asserts with Check.)
 *
 *	tls-conns N MODE
 *
 * MODE says where the trust anchors come from:
 *   cafile  the test CA only (no_system_trust)
 *   bundle  the system's CA bundle, anchors picked per peer, and the CA
 *   whole   the whole system store (the bundle named cannot be read), and
 *           the CA
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <gnutls/gnutls.h>

#include "suites.h"
#include "testcert.h"
#include "transport.h"
#include "util.h"

/* What testcert.c needs of the unit tests' runner. */
char *
test_write_file(const char *dir, const char *name, const char *text,
    unsigned mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write_full(fd, text, strlen(text)) < 0 || close(fd) < 0)
		abort();
	return path;
}

/* The resident set of this process in KB, from /proc. */
static long
rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The server child: accept and handshake n connections, then hold them
 * until killed. */
static void
serve(int lfd, int n, const struct tcert *leaf, const struct tcert *ca)
{
	gnutls_certificate_credentials_t cred;
	gnutls_x509_crt_t chain[2];
	gnutls_session_t tls;
	int i, fd, r;

	chain[0] = leaf->crt;
	chain[1] = ca->crt;
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key(cred, chain, 2, leaf->key) < 0)
		_exit(1);
	for (i = 0; i < n; i++) {
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			_exit(1);
		if (gnutls_init(&tls, GNUTLS_SERVER) < 0 ||
		    gnutls_set_default_priority(tls) < 0 ||
		    gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE,
		    cred) < 0)
			_exit(1);
		gnutls_transport_set_int(tls, fd);
		do {
			r = gnutls_handshake(tls);
		} while (r < 0 && !gnutls_error_is_fatal(r));
		/* A greeting, as an IMAP server sends; then the session
		 * stays: the client keeps the connection. */
		if (r == 0)
			(void)gnutls_record_send(tls, "* OK ready\r\n", 12);
	}
	pause();
	_exit(0);
}

static int nconns;
static const char *mode;

/* The measurement, run as a Check test: testcert.c asserts with Check. */
START_TEST(measure)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct tcert ca, leaf;
	struct tls_opts opts;
	struct stream **s;
	char dir[] = "/tmp/pm-tls-conns-XXXXXX", *pem, *ca_path, *err = NULL;
	const char *line;
	size_t len;
	long before = 0, after;
	time_t now = time(NULL);
	pid_t pid;
	int n = nconns, i, lfd;

	ck_assert_msg(transport_init(&err) == PM_OK, "%s", err);
	tcert_make(&ca, "CN=pullmail bench CA", 1, NULL, now - 3600,
	    now + 86400, 1);
	tcert_make(&leaf, "CN=localhost", 0, &ca, now - 3600, now + 86400, 2);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	pem = tcert_pem(&ca);
	ca_path = test_write_file(dir, "ca.pem", pem, 0644);
	free(pem);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sin,
	    sizeof sin) == 0 && listen(lfd, 64) == 0 &&
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) == 0);
	if ((pid = fork()) == 0)
		serve(lfd, n, &leaf, &ca);
	close(lfd);

	memset(&opts, 0, sizeof opts);
	opts.ca_file = ca_path;
	opts.no_system_trust = strcmp(mode, "cafile") == 0;
	if (strcmp(mode, "whole") == 0)
		opts.system_bundle = "/nonexistent/ca-bundle.crt";
	s = xcalloc((size_t)n, sizeof *s);
	/* One connection first: what every process pays once (GnuTLS's
	 * own start-up, the first credentials) is not per connection. */
	for (i = 0; i < n; i++) {
		if (i == 1)
			before = rss_kb();
		ck_assert_msg(stream_connect("127.0.0.1", ntohs(sin.sin_port),
		    10000, &s[i], &err) == PM_OK && stream_starttls(s[i],
		    &opts, &err) == PM_OK && stream_read_line(s[i], 1000,
		    &line, &len, &err) == PM_OK, "connection %d: %s", i + 1,
		    err);
	}
	after = rss_kb();
	if (n > 1)
		printf("%s: %d TLS connections: RSS %ld KB after the first, "
		    "%ld KB after all: %.1f KB per connection\n", mode, n,
		    before, after, (double)(after - before) / (n - 1));
	for (i = 0; i < n; i++)
		stream_close(s[i]);
	free(s);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(ca_path);
	rmdir(dir);
	free(ca_path);
	tcert_free(&leaf);
	tcert_free(&ca);
	transport_deinit();
}
END_TEST

int
main(int argc, char **argv)
{
	SRunner *sr;
	Suite *su;
	TCase *tc;
	int failed;

	if (argc != 3 || (nconns = atoi(argv[1])) <= 0 ||
	    (strcmp(argv[2], "cafile") != 0 && strcmp(argv[2], "bundle") != 0 &&
	    strcmp(argv[2], "whole") != 0)) {
		fprintf(stderr, "usage: tls-conns N cafile|bundle|whole\n");
		return 2;
	}
	mode = argv[2];
	su = suite_create("tls-conns");
	tc = tcase_create("measure");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, measure);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
