/* Helpers of the core: error strings, files, hashing, secrets and the
 * protocol trace that must redact them. */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"
#include "suites.h"
#include "util.h"

START_TEST(test_errf)
{
	char *err = NULL;

	ck_assert_int_eq(errf(&err, PM_EPROTO, "bad %s %d", "line", 3),
	    PM_EPROTO);
	ck_assert_str_eq(err, "bad line 3");
	ck_assert_int_eq(errf(&err, PM_ETEMP, "second"), PM_ETEMP);
	ck_assert_str_eq(err, "second");
	err_prefix(&err, "%s:%d", "imap.example", 993);
	ck_assert_str_eq(err, "imap.example:993: second");
	free(err);
	ck_assert_int_eq(errf(NULL, PM_EAUTH, "ignored"), PM_EAUTH);
}
END_TEST

START_TEST(test_files)
{
	char *dir = test_tmpdir(), *deep, *path, *data;
	size_t len;
	struct stat sb;
	mode_t mask;

	deep = xasprintf("%s/a/b/c", dir);
	ck_assert_int_eq(mkdir_p(deep, 0700), 0);
	ck_assert_int_eq(stat(deep, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	ck_assert_int_eq(mkdir_p(deep, 0700), 0);
	ck_assert_int_eq(fsync_dir(deep), 0);

	path = test_write_file(dir, "f", "hello\n", 0600);
	ck_assert_int_eq(read_small_file(path, 100, &data, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(data, "hello\n");
	free(data);
	ck_assert_int_eq(read_small_file(path, 3, &data, &len), -1);
	ck_assert_int_eq(errno, EFBIG);
	ck_assert_int_eq(mkdir_p(path, 0700), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	/* Below a file: refused, nothing made. */
	free(deep);
	deep = xasprintf("%s/x/y", path);
	ck_assert_int_eq(mkdir_p(deep, 0700), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	free(deep);
	/* Doubled and trailing slashes, several levels missing. */
	deep = xasprintf("%s//d/e//f/", dir);
	ck_assert_int_eq(mkdir_p(deep, 0750), 0);
	free(deep);
	deep = xasprintf("%s/d/e/f", dir);
	ck_assert_int_eq(stat(deep, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	mask = umask(0);
	umask(mask);
	ck_assert_uint_eq(sb.st_mode & 0777, 0750 & ~mask);
	free(deep);
	/* Relative to the working directory. */
	deep = xasprintf("%s/g", dir);
	ck_assert_int_eq(chdir(dir), 0);
	ck_assert_int_eq(mkdir_p("g/h/i", 0700), 0);
	ck_assert_int_eq(mkdir_p("g/h/i/", 0700), 0);
	ck_assert_int_eq(chdir("/"), 0);
	free(deep);
	deep = xasprintf("%s/g/h/i", dir);
	ck_assert_int_eq(stat(deep, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	free(path);
	free(deep);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_hash)
{
	char a[17], b[17], c[17];

	hash_hex("https://idp/token\nclient\nscope", a);
	hash_hex("https://idp/token\nclient\nscope", b);
	hash_hex("https://idp/token\nclient\nscope2", c);
	ck_assert_str_eq(a, b);
	ck_assert_str_ne(a, c);
	ck_assert_uint_eq(strlen(a), 16);
	hash_hex("", a);
	ck_assert_str_eq(a, "cbf29ce484222325");
}
END_TEST

START_TEST(test_secret)
{
	struct pm_secret *s = secret_new("ab\0cd", 5), *t;

	ck_assert_uint_eq(secret_len(s), 5);
	ck_assert_mem_eq(secret_reveal(s), "ab\0cd", 6);
	t = secret_dup(s);
	ck_assert(secret_equal(s, t));
	secret_free(t);
	t = secret_from_str("ab");
	ck_assert(!secret_equal(s, t));
	secret_free(t);
	secret_free(s);
	secret_free(NULL);
}
END_TEST

/* With stderr sent to a file, log line (and secret) through log_trace, or
 * when warn is not NULL log_warnx("acct: WARN"); return what was written. */
static char *
capture_log(const char *line, const struct pm_secret *secret,
    const char *warn)
{
	char *dir = test_tmpdir(), *path = xasprintf("%s/err", dir), *data;
	int fd, saved;
	size_t len;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 0, warn == NULL, 0);
	if (warn != NULL)
		log_warnx("acct: %s", warn);
	else
		log_trace("acct", "C", line, strlen(line), secret);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(path, 1 << 20, &data, &len), 0);
	free(path);
	test_rm_rf(dir);
	free(dir);
	return data;
}

/* What log_trace writes for line and secret. */
static char *
capture_trace(const char *line, const struct pm_secret *secret)
{
	return capture_log(line, secret, NULL);
}

START_TEST(test_trace_redacts)
{
	struct pm_secret *blob = secret_from_str(
	    "dXNlcj1hQGIBYXV0aD1CZWFyZXIgc2VjcmV0LXRva2VuAQE=");
	char *out;

	out = capture_trace("A1 AUTHENTICATE XOAUTH2 ", blob);
	ck_assert_ptr_nonnull(strstr(out,
	    "acct C: A1 AUTHENTICATE XOAUTH2 <redacted, 48 bytes>"));
	ck_assert_ptr_null(strstr(out, "dXNlcj1h"));
	free(out);
	secret_free(blob);
}
END_TEST

START_TEST(test_trace_escapes)
{
	char *out;

	out = capture_trace("* OK hi\x1b[31m\\\r\n", NULL);
	ck_assert_ptr_nonnull(strstr(out, "acct C: * OK hi\\x1b[31m\\\\\\r\\n"));
	ck_assert_ptr_null(strchr(out, '\x1b'));
	free(out);
}
END_TEST

START_TEST(test_trace_off)
{
	char *dir = test_tmpdir(), *path = xasprintf("%s/err", dir), *data;
	int fd, saved;
	size_t len;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_init("pullmail", 2, 0, 0);
	log_trace("acct", "C", "A1 LOGIN x y", 12, NULL);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	ck_assert_int_eq(read_small_file(path, 1 << 16, &data, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(data);
	free(path);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

/* --- redaction of secrets in every encoding ------------------------------ */

/* A secret with bytes every encoding treats differently. */
#define RSECRET		"Zq8/v+K e&=%2\"w\\~"
#define RCLIENT		"client-id.1"

/* %XX-encoding of s with hex digits from hex; space as sp ("+", "%20"). */
static char *
pct(const char *s, const char *hex, const char *sp)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c) != NULL)
			*o++ = (char)c;
		else if (c == ' ') {
			memcpy(o, sp, strlen(sp));
			o += strlen(sp);
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Base64 of s with the alphabet's last two characters c62 and c63. */
static char *
b64_with(const char *s, char c62, char c63)
{
	char tab[65] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789..";
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i;
	char *out = xmalloc(n / 3 * 4 + 5), *o = out;
	unsigned v;

	tab[62] = c62;
	tab[63] = c63;
	for (i = 0; i < n; i += 3) {
		v = (unsigned)u[i] << 16 | (i + 1 < n ? u[i + 1] << 8 : 0) |
		    (i + 2 < n ? u[i + 2] : 0);
		*o++ = tab[v >> 18];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* RSECRET as a JSON string body ("\/" for '/', \u0026 for '&'). */
static char *
json_escaped(void)
{
	return xstrdup("Zq8\\/v+K e\\u0026=%2\\\"w\\\\~");
}

/* Every form the message "<head>FORM<tail>" must not keep. */
static char *
encoded(int which)
{
	char *a, *b, *c, *out;

	switch (which) {
	case 0:
		return xstrdup(RSECRET);
	case 1:
		return pct(RSECRET, "0123456789ABCDEF", "+");
	case 2:
		return pct(RSECRET, "0123456789abcdef", "+");
	case 3:
		return pct(RSECRET, "0123456789ABCDEF", "%20");
	case 4:
		return json_escaped();
	case 5:		/* HTTP Basic: base64 of form-encoded id:secret */
		a = pct(RCLIENT, "0123456789ABCDEF", "+");
		b = pct(RSECRET, "0123456789ABCDEF", "+");
		c = xasprintf("%s:%s", a, b);
		out = xasprintf("Basic %s", (free(a), free(b),
		    a = b64_with(c, '+', '/')));
		free(a);
		free(c);
		return out;
	case 6:		/* Basic with the raw secret */
		c = xasprintf("%s:%s", RCLIENT, RSECRET);
		out = b64_with(c, '+', '/');
		free(c);
		return out;
	case 7:		/* the secret alone in a longer blob, 3 alignments */
	case 8:
	case 9:
		c = xasprintf("%.*s%sblob-tail", which - 7, "user=ab",
		    RSECRET);
		out = b64_with(c, '+', '/');
		free(c);
		return out;
	case 10:	/* base64url */
		c = xasprintf("x%s", RSECRET);
		out = b64_with(c, '-', '_');
		free(c);
		return out;
	case 11:	/* form-encoded, then mixed-case hex */
		out = pct(RSECRET, "0123456789ABCDEF", "+");
		for (a = out; (a = strstr(a, "%2F")) != NULL; a += 3)
			a[2] = 'f';
		return out;
	case 12:	/* base64 of the form-encoded secret, form-encoded */
		a = pct(RSECRET, "0123456789ABCDEF", "+");
		b = b64_with(a, '+', '/');
		out = pct(b, "0123456789ABCDEF", "+");
		free(a);
		free(b);
		return out;
	default:
		return NULL;
	}
}

START_TEST(test_redact_encodings)
{
	struct pm_secret *s = secret_from_str(RSECRET);
	char *form, *msg, *out, *again;

	form = encoded(_i);
	ck_assert_ptr_nonnull(form);
	msg = xasprintf("token endpoint refused: echo [%s] end", form);
	out = secret_redacted(msg);
	ck_assert_msg(out != NULL, "not redacted: %s", msg);
	ck_assert_msg(strstr(out, "<redacted>") != NULL, "%s", out);
	ck_assert_msg(strncmp(out, "token endpoint refused: echo [", 30) == 0,
	    "head lost: %s", out);
	ck_assert_msg(strstr(out, "] end") != NULL, "tail lost: %s", out);
	/* Nothing of it is left in any form. */
	again = secret_redacted(out);
	ck_assert_msg(again == NULL, "left in %s", out);
	ck_assert_msg(strstr(out, form) == NULL, "kept: %s", out);
	free(out);
	/* Gone with the secret. */
	secret_free(s);
	ck_assert_ptr_null(secret_redacted(msg));
	free(msg);
	free(form);
}
END_TEST

/* In place, overlapping and repeated finds, other text kept exactly. */
START_TEST(test_redact_in_place)
{
	struct pm_secret *a = secret_from_str("alpha-secret-1"),
	    *b = secret_from_str("secret-1-beta");
	char *msg;

	msg = xstrdup("x alpha-secret-1-beta y alpha%2Dsecret%2D1 z");
	secret_redact(&msg);
	ck_assert_str_eq(msg, "x <redacted> y <redacted> z");
	secret_redact(&msg);
	ck_assert_str_eq(msg, "x <redacted> y <redacted> z");
	free(msg);
	msg = NULL;
	secret_redact(&msg);
	secret_redact(NULL);
	secret_free(a);
	secret_free(b);
	ck_assert_ptr_null(secret_redacted("alpha-secret-1"));
}
END_TEST

/* Short secrets would match words: not looked for.  Thousands of secrets
 * are all found (the registry grows) and all leave with secret_free. */
START_TEST(test_redact_registry)
{
	struct pm_secret *s[3000], *shorty = secret_from_str("wrong");
	char *msg, *out;
	size_t i;

	ck_assert_ptr_null(secret_redacted("the client secret is wrong"));
	for (i = 0; i < 3000; i++) {
		msg = xasprintf("pw-%05zu-secret", i);
		s[i] = secret_from_str(msg);
		free(msg);
	}
	for (i = 0; i < 3000; i += 7) {
		msg = xasprintf("LOGIN failed for pw-%05zu-secret!", i);
		out = secret_redacted(msg);
		ck_assert_msg(out != NULL, "%zu", i);
		ck_assert_str_eq(out, "LOGIN failed for <redacted>!");
		free(out);
		free(msg);
	}
	for (i = 0; i < 3000; i++)
		secret_free(s[i]);
	ck_assert_ptr_null(secret_redacted("LOGIN failed for pw-00007-secret"));
	secret_free(shorty);
}
END_TEST

/* Every log line is redacted, whatever printed the secret into it. */
START_TEST(test_log_redacts)
{
	struct pm_secret *s = secret_from_str(RSECRET);
	char *form = encoded(1), *out;

	out = capture_log(NULL, NULL, form);
	ck_assert_str_eq(out, "pullmail: acct: <redacted>\n");
	free(out);
	secret_free(s);
	free(form);
}
END_TEST

/* Whatever bytes a caller hands the log, one line comes out: controls,
 * DEL and broken or dangerous UTF-8 escaped, printable UTF-8 kept. */
static const struct {
	const char *in;
	const char *out;	/* after "pullmail: acct: " */
} log_escape_cases[] = {
	{ "NO bad\r\npullmail: acct: 5 messages delivered",
	  "NO bad\\r\\npullmail: acct: 5 messages delivered" },
	{ "lone\rcr lone\nlf", "lone\\rcr lone\\nlf" },
	{ "esc \x1b[31mred\x1b[0m", "esc \\x1b[31mred\\x1b[0m" },
	{ "bel\a bs\b del\x7f tab\t vt\v", "bel\\x07 bs\\x08 del\\x7f tab\\t vt\\x0b" },
	{ "\x01\x1f", "\\x01\\x1f" },
	{ "8-bit \xff\xfe and \xe9t\xe9", "8-bit \\xff\\xfe and \\xe9t\\xe9" },
	{ "cut \xc3\x84\xe2\x82", "cut \xc3\x84\\xe2\\x82" },
	{ "overlong \xc0\xaf surrogate \xed\xa0\x80",
	  "overlong \\xc0\\xaf surrogate \\xed\\xa0\\x80" },
	{ "c1 \xc2\x85 rlo \xe2\x80\xae ls \xe2\x80\xa8 bom \xef\xbb\xbf",
	  "c1 \\xc2\\x85 rlo \\xe2\\x80\\xae ls \\xe2\\x80\\xa8 bom "
	  "\\xef\\xbb\\xbf" },
	{ "Birnen-\xc3\x84pfel \xe2\x82\xac \xf0\x9f\x93\xa7",
	  "Birnen-\xc3\x84pfel \xe2\x82\xac \xf0\x9f\x93\xa7" },
	{ "C:\\mail\\n and \\x41", "C:\\mail\\n and \\x41" },
};

START_TEST(test_log_escapes)
{
	char *out, *want;

	out = capture_log(NULL, NULL, log_escape_cases[_i].in);
	want = xasprintf("pullmail: acct: %s\n", log_escape_cases[_i].out);
	ck_assert_str_eq(out, want);
	free(want);
	free(out);
}
END_TEST

/* A long text full of line breaks is one whole line, every break escaped. */
START_TEST(test_log_escapes_long)
{
	size_t i, n = 20000;
	char *in = xmalloc(n * 4 + 1), *out, *p;

	for (i = 0; i < n; i++)
		memcpy(in + i * 4, "ab\r\n", 4);
	in[n * 4] = '\0';
	out = capture_log(NULL, NULL, in);
	ck_assert_uint_eq(strlen(out), strlen("pullmail: acct: ") + n * 6 + 1);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_ptr_null(strchr(out, '\r'));
	for (i = 0, p = out + strlen("pullmail: acct: "); i < n; i++, p += 6)
		ck_assert_int_eq(memcmp(p, "ab\\r\\n", 6), 0);
	free(out);
	free(in);
}
END_TEST

/* Which endpoint URLs may carry credentials. */
static const struct {
	const char *url;
	int ok;
} endpoint_cases[] = {
	{ "https://login.microsoftonline.com/t/oauth2/v2.0/token", 1 },
	{ "HTTPS://idp.example", 1 },
	{ "http://127.0.0.1:8080/token", 1 },
	{ "http://127.255.3.4/token", 1 },
	{ "http://localhost/token", 1 },
	{ "http://LocalHost.:99?x", 1 },
	{ "http://[::1]:8080/token", 1 },
	{ "http://[0:0:0:0:0:0:0:1]/", 1 },
	{ "http://127.0.0.1", 1 },
	{ "http://idp.example/token", 0 },
	{ "http://10.1.2.3/token", 0 },
	{ "http://128.0.0.1/token", 0 },
	{ "http://127.0.0.1.nip.io/token", 0 },
	{ "http://localhost.evil.example/", 0 },
	{ "http://127.0.0.1@evil.example/", 0 },
	{ "http://evil.example\\@127.0.0.1/", 0 },
	{ "http://[::2]/token", 0 },
	{ "http://[::1/token", 0 },
	{ "http://[::1]evil/token", 0 },
	{ "http://[::ffff:10.0.0.1]/", 0 },
	{ "http:///token", 0 },
	{ "ftp://127.0.0.1/", 0 },
	{ "127.0.0.1/token", 0 },
};

START_TEST(test_url_check_endpoint)
{
	const char *why = NULL;
	int rc = url_check_endpoint(endpoint_cases[_i].url, &why);

	ck_assert_msg((rc == 0) == endpoint_cases[_i].ok, "%s: %d",
	    endpoint_cases[_i].url, rc);
	if (rc != 0)
		ck_assert_ptr_nonnull(why);
}
END_TEST

/* exec_resolve finds what execvp would run, before fork(). */
START_TEST(test_exec_resolve)
{
	char *dir = test_tmpdir(), *prog, *p, *saved;
	const char *path = getenv("PATH");

	saved = path != NULL ? xstrdup(path) : NULL;
	prog = test_write_file(dir, "pm-prog", "#!/bin/sh\n", 0755);
	p = xasprintf("/nonexistent:%s", dir);
	setenv("PATH", p, 1);
	free(p);
	p = exec_resolve("pm-prog");
	ck_assert_str_eq(p, prog);
	free(p);
	/* With a slash: as it is; not found: NULL and ENOENT. */
	p = exec_resolve("./x/pm-prog");
	ck_assert_str_eq(p, "./x/pm-prog");
	free(p);
	errno = 0;
	ck_assert_ptr_null(exec_resolve("pm-no-such-program"));
	ck_assert_int_eq(errno, ENOENT);
	/* Not executable, or a directory: skipped. */
	chmod(prog, 0644);
	ck_assert_ptr_null(exec_resolve("pm-prog"));
	/* An empty entry is the current directory. */
	chmod(prog, 0755);
	setenv("PATH", "/nonexistent:", 1);
	ck_assert_int_eq(chdir(dir), 0);
	p = exec_resolve("pm-prog");
	ck_assert_str_eq(p, "./pm-prog");
	free(p);
	if (saved != NULL)
		setenv("PATH", saved, 1);
	free(saved);
	free(prog);
	test_rm_rf(dir);
	free(dir);
}
END_TEST

/* Hexadecimal digits in both cases, and what is not one. */
START_TEST(test_hex_value)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		ck_assert_int_eq(hex_value((unsigned char)digits[i]), i);
		ck_assert_int_eq(hex_value((unsigned char)toupper(digits[i])),
		    i);
	}
	ck_assert_int_eq(hex_value('g'), -1);
	ck_assert_int_eq(hex_value('G'), -1);
	ck_assert_int_eq(hex_value('/'), -1);
	ck_assert_int_eq(hex_value(':'), -1);
	ck_assert_int_eq(hex_value('\0'), -1);
	ck_assert_int_eq(hex_value(0xe6), -1);
}
END_TEST

/* The one clock: it goes forward, sleeps are seen in both units, and
 * milliseconds are the microseconds cut. */
START_TEST(test_mono_clock)
{
	long long us0, ms0, us1, ms1;

	us0 = mono_us();
	ms0 = mono_ms();
	ck_assert_int_ge(ms0, us0 / 1000);
	usleep(20000);
	ms1 = mono_ms();
	us1 = mono_us();
	ck_assert_int_ge(ms1 - ms0, 20);
	ck_assert_int_ge(us1 - us0, 20000);
	ck_assert_int_le(ms1, us1 / 1000);
}
END_TEST

/* Write n bytes of a pattern to fd in a child, in pieces of at most
 * chunk bytes, then close it: the reader sees a stream whose size it
 * cannot know beforehand. */
static pid_t
feed_pipe(int fd, size_t n, size_t chunk)
{
	pid_t pid = fork();
	char buf[1000];
	size_t i, off = 0, k;

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	while (off < n) {
		k = n - off < chunk ? n - off : chunk;
		for (i = 0; i < k; i++)
			buf[i] = (char)('a' + (off + i) % 23);
		if (write(fd, buf, k) != (ssize_t)k)
			_exit(1);
		off += k;
	}
	_exit(0);
}

static void
check_pattern(const struct pm_secret *s, size_t n)
{
	size_t i;

	ck_assert_uint_eq(secret_len(s), n);
	for (i = 0; i < n; i++)
		if (secret_reveal(s)[i] != (char)('a' + i % 23))
			ck_abort_msg("byte %zu differs", i);
	ck_assert_int_eq(secret_reveal(s)[n], '\0');
}

/* secret_read_fd: whatever the hint says, the bytes come back whole, and
 * max is enforced. */
START_TEST(test_secret_read_fd)
{
	static const struct {
		size_t n, max, hint;
		int ok;
	} cases[] = {
		{ 0, 100, 0, 1 },		/* empty */
		{ 100000, 200000, 0, 1 },	/* no hint: grows 4 KiB up */
		{ 100000, 200000, 5000, 1 },	/* the hint was too small */
		{ 10, 200000, 150000, 1 },	/* too large */
		{ 65536, 65536, 0, 1 },		/* exactly max, grown to it */
		{ 65536, 65536, 65536, 1 },	/* exactly max, as hinted */
		{ 65537, 65536, 0, 0 },		/* one byte over */
		{ 65537, 65536, 65537, 0 },
		{ 1048577, 1048576, 0, 0 },
	};
	struct pm_secret *s;
	size_t i;
	int p[2], status;
	pid_t pid;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(pipe(p), 0);
		pid = feed_pipe(p[1], cases[i].n, 1000);
		close(p[1]);
		s = NULL;
		errno = 0;
		if (cases[i].ok) {
			ck_assert_msg(secret_read_fd(p[0], cases[i].max,
			    cases[i].hint, &s) == 0, "case %zu", i);
			check_pattern(s, cases[i].n);
			secret_free(s);
		} else {
			ck_assert_msg(secret_read_fd(p[0], cases[i].max,
			    cases[i].hint, &s) == -1, "case %zu", i);
			ck_assert_int_eq(errno, EFBIG);
			ck_assert_ptr_null(s);
		}
		close(p[0]);	/* the writer may still be blocked: EPIPE */
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	}
	/* A read error is passed on. */
	ck_assert_int_eq(secret_read_fd(-1, 100, 0, &s), -1);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

Suite *
suite_util(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");

	tcase_add_test(tc, test_errf);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_hash);
	tcase_add_test(tc, test_secret);
	tcase_add_test(tc, test_secret_read_fd);
	tcase_add_test(tc, test_trace_redacts);
	tcase_add_test(tc, test_trace_escapes);
	tcase_add_test(tc, test_trace_off);
	tcase_add_loop_test(tc, test_redact_encodings, 0, 13);
	tcase_add_test(tc, test_redact_in_place);
	tcase_add_test(tc, test_redact_registry);
	tcase_add_test(tc, test_log_redacts);
	tcase_add_loop_test(tc, test_log_escapes, 0,
	    sizeof log_escape_cases / sizeof log_escape_cases[0]);
	tcase_add_test(tc, test_log_escapes_long);
	tcase_add_test(tc, test_exec_resolve);
	tcase_add_test(tc, test_mono_clock);
	tcase_add_test(tc, test_hex_value);
	tcase_add_loop_test(tc, test_url_check_endpoint, 0,
	    sizeof endpoint_cases / sizeof endpoint_cases[0]);
	suite_add_tcase(s, tc);
	return s;
}
