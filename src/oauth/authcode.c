/*
 * `pullmail authorize` with the authorization code grant, PKCE (RFC 7636)
 * and a loopback redirect (RFC 8252): listen on 127.0.0.1, print (and
 * open) the URL, check the state, exchange the code with its verifier.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "base64.h"
#include "crypto.h"
#include "log.h"
#include "oauth-int.h"
#include "secret.h"
#include "util.h"

/* Decode %XX and '+' in place. */
static void
url_decode(char *s)
{
	char *o = s, hex[3] = { 0, 0, 0 };

	for (; *s != '\0'; s++) {
		if (*s == '+')
			*o++ = ' ';
		else if (*s == '%' && s[1] != '\0' && s[2] != '\0' &&
		    strchr("0123456789abcdefABCDEF", s[1]) != NULL &&
		    strchr("0123456789abcdefABCDEF", s[2]) != NULL) {
			hex[0] = s[1];
			hex[1] = s[2];
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

/* The value of name in query (decoded, malloc'd), or NULL. */
static char *
query_get(const char *query, const char *name)
{
	size_t n = strlen(name), len;
	const char *p = query, *end;
	char *v;

	while (p != NULL && *p != '\0') {
		end = strchr(p, '&');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
			v = xstrndup(p + n + 1, len - n - 1);
			url_decode(v);
			return v;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

/* Answer the browser and close the connection. */
static void
http_answer(int fd, int status, const char *text)
{
	char *resp;

	resp = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "Cache-Control: no-store\r\n\r\n%s", status, status == 200 ? "OK" :
	    status == 400 ? "Bad Request" : "Not Found", strlen(text), text);
	(void)write_full(fd, resp, strlen(resp));
	free(resp);
	close(fd);
}

/* Read a request head from fd (at most a few KiB, 10 s); NULL on failure. */
static char *
read_head(int fd)
{
	struct pollfd pfd;
	char *buf = xmalloc(REDIRECT_MAX_REQUEST + 1);
	size_t len = 0;
	ssize_t n;

	while (len < REDIRECT_MAX_REQUEST) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		n = read(fd, buf + len, REDIRECT_MAX_REQUEST - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL ||
		    strstr(buf, "\n\n") != NULL)
			return buf;
	}
	free(buf);
	return NULL;
}

/* A listening socket on 127.0.0.1:port (0: any) in *fd_r, its port in
 * *port_r. */
static int
listen_loopback(unsigned port, int *fd_r, unsigned *port_r, char **err)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errf(err, PM_ETEMP, "socket: %s", pm_strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) < 0) {
		close(fd);
		return errf(err, port != 0 ? PM_ECONFIG : PM_ETEMP,
		    "cannot listen on 127.0.0.1:%u: %s", port,
		    pm_strerror(errno));
	}
	*port_r = ntohs(sin.sin_port);
	*fd_r = fd;
	return PM_OK;
}

/*
 * Open url in a browser when there is a graphical session (no shell).
 * xdg-open runs in a grandchild: the child exits at once and is reaped
 * here, so xdg-open (and whatever it starts) is init's to reap, never a
 * zombie of ours while we wait for the redirect, however long that is.
 * Both children make only async-signal-safe calls.
 */
static void
open_browser(const char *url)
{
	char *av[3], *path;
	pid_t pid;
	int fd;

	if (getenv("DISPLAY") == NULL && getenv("WAYLAND_DISPLAY") == NULL)
		return;
	if ((path = exec_resolve("xdg-open")) == NULL)
		return;
	av[0] = "xdg-open";
	av[1] = (char *)url;
	av[2] = NULL;
	pid = fork();
	if (pid == 0) {
		if (fork() != 0)
			_exit(0);
		if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execve(path, av, environ);
		_exit(127);
	}
	free(path);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* The authorization URL with all its parameters. */
static char *
authorize_url(const struct oauth_request *req, const char *redirect,
    const char *state, const char *challenge)
{
	char *id, *red, *scope, *url;

	id = oauth_form_encode(req->client_id, strlen(req->client_id));
	red = oauth_form_encode(redirect, strlen(redirect));
	scope = req->scope != NULL ? oauth_form_encode(req->scope,
	    strlen(req->scope)) : xstrdup("");
	url = xasprintf("%s%cresponse_type=code&client_id=%s&redirect_uri=%s"
	    "%s%s&state=%s&code_challenge=%s&code_challenge_method=S256",
	    req->authorize_url, strchr(req->authorize_url, '?') != NULL ?
	    '&' : '?', id, red, *scope != '\0' ? "&scope=" : "", scope, state,
	    challenge);
	free(id);
	free(red);
	free(scope);
	return url;
}

/* Wait for the redirect carrying the code; exchange it. */
static int
redirect_wait(const struct oauth_request *req, int lfd, const char *redirect,
    const char *state, const char *verifier, char **err)
{
	struct oauth_token tok;
	struct pollfd pfd;
	time_t deadline = time(NULL) + REDIRECT_WAIT;
	char *head, *path, *q, *sp, *code, *got_state, *error, *grant;
	char *ecode, *ered, *ever, *c;
	int fd, rc;

	for (;;) {
		if (time(NULL) >= deadline)
			return errf(err, PM_EAUTH, "no redirect arrived within "
			    "%d s; run pullmail authorize %s again",
			    REDIRECT_WAIT, who(req));
		pfd.fd = lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		if ((head = read_head(fd)) == NULL) {
			close(fd);
			continue;
		}
		if (strncmp(head, "GET ", 4) != 0 ||
		    (sp = strchr(head + 4, ' ')) == NULL) {
			http_answer(fd, 400, "pullmail: not a GET request\n");
			free(head);
			continue;
		}
		*sp = '\0';
		path = head + 4;
		q = strchr(path, '?');
		if (q != NULL)
			*q++ = '\0';
		if (strcmp(path, "/") != 0 || q == NULL) {
			http_answer(fd, 404, "pullmail: nothing here\n");
			free(head);
			continue;
		}
		got_state = query_get(q, "state");
		code = query_get(q, "code");
		error = query_get(q, "error");
		free(head);
		if (got_state == NULL || strcmp(got_state, state) != 0) {
			log_warnx("%s: refused a redirect whose state does "
			    "not match this authorization (forged or stale)",
			    who(req));
			http_answer(fd, 400, "pullmail: the state does not "
			    "match this authorization; refused\n");
			free(got_state);
			oauth_free_wiped(code);
			free(error);
			continue;
		}
		free(got_state);
		if (error != NULL || code == NULL) {
			c = oauth_clean_text(error != NULL ? error : "no code",
			    64);
			http_answer(fd, 200, "pullmail: the authorization "
			    "failed\n");
			rc = errf(err, PM_EAUTH, "the authorization server "
			    "redirected with error %s", c);
			free(c);
			free(error);
			oauth_free_wiped(code);
			return rc;
		}
		ecode = oauth_form_encode(code, strlen(code));
		ered = oauth_form_encode(redirect, strlen(redirect));
		ever = oauth_form_encode(verifier, strlen(verifier));
		grant = xasprintf("grant_type=authorization_code&code=%s"
		    "&redirect_uri=%s&code_verifier=%s", ecode, ered, ever);
		oauth_free_wiped(code);
		oauth_free_wiped(ecode);
		oauth_free_wiped(ever);
		free(ered);
		rc = oauth_exchange(req, grant, &tok, err);
		oauth_free_wiped(grant);
		if (rc == PM_OK)
			rc = oauth_store_save(req, &tok, err);
		oauth_token_clear(&tok);
		http_answer(fd, 200, rc == PM_OK ? "pullmail is authorized; "
		    "you may close this window.\n" : "pullmail: the code "
		    "exchange failed; see pullmail's output.\n");
		return rc;
	}
}

/* The authorization code flow with PKCE and the loopback listener. */
int
oauth_code_authorize(const struct oauth_request *req, char **err)
{
	unsigned char digest[CRYPTO_SHA256_LEN];
	char *verifier, *state, *challenge, *redirect, *url;
	unsigned port = 0;
	int lfd = -1, rc;

	if (req->authorize_url == NULL)
		return errf(err, PM_ECONFIG, "no authorization endpoint: set "
		    "oauth_authorize_url");
	verifier = crypto_random_string(32);
	state = crypto_random_string(16);
	if (verifier == NULL || state == NULL ||
	    crypto_sha256(verifier, strlen(verifier), digest) < 0) {
		oauth_free_wiped(verifier);
		free(state);
		return errf(err, PM_EINTERNAL, "no random bytes");
	}
	challenge = base64_encode(BASE64_URL, digest, sizeof digest);
	rc = listen_loopback(req->redirect_port, &lfd, &port, err);
	if (rc != PM_OK) {
		oauth_free_wiped(verifier);
		free(state);
		free(challenge);
		return rc;
	}
	redirect = xasprintf("http://127.0.0.1:%u/", port);
	url = authorize_url(req, redirect, state, challenge);
	printf("To authorize pullmail for %s, open this URL in a browser:\n"
	    "%s\nWaiting for the redirect to %s ...\n", who(req), url,
	    redirect);
	fflush(stdout);
	open_browser(url);
	rc = redirect_wait(req, lfd, redirect, state, verifier, err);
	close(lfd);
	oauth_free_wiped(verifier);
	free(state);
	free(challenge);
	free(redirect);
	free(url);
	return rc;
}
