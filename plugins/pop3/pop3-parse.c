/*
 * POP3 parsing: status lines, CAPA, UIDL and LIST listings, and the
 * dot-unstuffing state machine that streams a RETR body (RFC 1939 3: a
 * line starting with "." has it doubled; a line of a single "." ends the
 * response).  No I/O here.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pop3-parse.h"

/* Whether the indicator word of len bytes starts line and ends there or
 * at a space. */
static int
word_is(const char *line, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && strncasecmp(line, word, n) == 0 &&
	    (len == n || line[n] == ' ');
}

/* Report a line as garbage, quoting its start. */
static int
garbage(const char *what, const char *line, size_t len, char **err)
{
	char *t;
	int rc;

	t = pmp_clean(line, len, 60);
	rc = pmp_errf(err, PM_EPROTO, "malformed %s \"%s\"", what, t);
	free(t);
	return rc;
}

/* Classify a status line as +OK, -ERR or (with sasl) a challenge. */
int
pop3_parse_status(const char *line, size_t len, int sasl, int *status_r,
    const char **text_r, char **err)
{
	size_t skip;

	if (len > POP3_STATUS_MAX)
		return pmp_errf(err, PM_EPROTO, "status line too long (%zu bytes)", len);
	if (memchr(line, '\0', len) != NULL)
		return pmp_errf(err, PM_EPROTO, "NUL byte in a status line");
	if (word_is(line, len, "+OK")) {
		*status_r = POP3_OK;
		skip = 3;
	} else if (word_is(line, len, "-ERR")) {
		*status_r = POP3_ERR;
		skip = 4;
	} else if (sasl && len >= 1 && line[0] == '+' &&
	    (len == 1 || line[1] == ' ')) {
		*status_r = POP3_CONT;
		skip = 1;
	} else
		return garbage("status line", line, len, err);
	if (skip < len)
		skip++;		/* the space */
	*text_r = line + skip;
	return PM_OK;
}

/* Free what the CAPA results hold. */
void
pop3_caps_free(struct pop3_caps *c)
{
	free(c->mechs);
	c->mechs = NULL;
}

/* Clear the CAPA results before a new CAPA. */
void
pop3_caps_reset(struct pop3_caps *c)
{
	pop3_caps_free(c);
	memset(c, 0, sizeof *c);
	c->mcap = 64;
	c->mechs = pmp_xmalloc(c->mcap);
	c->mechs[0] = '\0';
}

/* Append the mechanism word of len bytes to c->mechs, upper-cased: in
 * place, the buffer doubling when full, so a CAPA costs time linear in
 * its length. */
static void
add_mech(struct pop3_caps *c, const char *w, size_t len)
{
	size_t i, need = c->mlen + len + 2;

	if (need > c->mcap) {
		while (c->mcap < need)
			c->mcap *= 2;
		c->mechs = pmp_xreallocarray(c->mechs, c->mcap, 1);
	}
	if (c->mlen > 0)
		c->mechs[c->mlen++] = ' ';
	for (i = 0; i < len; i++) {
		c->mechs[c->mlen++] = (w[i] >= 'a' && w[i] <= 'z') ?
		    (char)(w[i] - 'a' + 'A') : w[i];
	}
	c->mechs[c->mlen] = '\0';
}

/* Note what one line of a CAPA response announces. */
int
pop3_caps_line(const char *line, size_t len, struct pop3_caps *c,
    char **err)
{
	size_t i, kw, w;

	if (len > POP3_STATUS_MAX)
		return pmp_errf(err, PM_EPROTO, "CAPA line too long (%zu bytes)", len);
	/* Anyone on the path can send the CAPA before STLS: bound it. */
	c->nlines++;
	c->nbytes += len + 2;
	if (c->nlines > POP3_CAPA_LINES_MAX || c->nbytes > POP3_CAPA_BYTES_MAX)
		return pmp_errf(err, PM_EPROTO, "the CAPA response is longer "
		    "than %d lines or %d bytes: not a POP3 server's list of "
		    "capabilities", POP3_CAPA_LINES_MAX, POP3_CAPA_BYTES_MAX);
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return garbage("CAPA line", line, len, err);
	}
	for (kw = 0; kw < len && line[kw] != ' ' && line[kw] != '\t'; kw++)
		;
	if (kw == 4 && strncasecmp(line, "STLS", 4) == 0)
		c->stls = 1;
	else if (kw == 4 && strncasecmp(line, "USER", 4) == 0)
		c->user = 1;
	else if (kw == 4 && strncasecmp(line, "UIDL", 4) == 0)
		c->uidl = 1;
	else if (kw == 3 && strncasecmp(line, "TOP", 3) == 0)
		c->top = 1;
	else if (kw == 10 && strncasecmp(line, "PIPELINING", 10) == 0)
		c->pipelining = 1;
	else if (kw == 4 && strncasecmp(line, "SASL", 4) == 0) {
		for (i = kw; i < len; i += w) {
			while (i < len && (line[i] == ' ' || line[i] == '\t'))
				i++;
			for (w = 0; i + w < len && line[i + w] != ' ' &&
			    line[i + w] != '\t'; w++)
				;
			if (w > 0)
				add_mech(c, line + i, w);
		}
	}
	return PM_OK;
}

/* Parse a message number at *p (up to end), advancing *p. */
static int
parse_num(const char **p, const char *end, unsigned long *n_r)
{
	unsigned long n = 0;
	const char *s = *p;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > 0x7fffffffUL)
			return -1;
	}
	if (n == 0)
		return -1;
	*p = s;
	*n_r = n;
	return 0;
}

/* Parse one "NUM UID" line of a UIDL listing. */
int
pop3_parse_uidl(const char *line, size_t len, unsigned long *num_r,
    const char **uid_r, size_t *ulen_r, char **err)
{
	const char *p = line, *end = line + len, *uid;
	size_t i;

	if (len > POP3_STATUS_MAX)
		return pmp_errf(err, PM_EPROTO, "UIDL line too long (%zu bytes)", len);
	if (parse_num(&p, end, num_r) != 0 || p == end || *p != ' ')
		return garbage("UIDL line", line, len, err);
	uid = ++p;
	while (end > uid && end[-1] == ' ')
		end--;		/* trailing spaces some servers send */
	if (end == uid)
		return garbage("UIDL line", line, len, err);
	if ((size_t)(end - uid) > POP3_UID_MAX)
		return pmp_errf(err, PM_EPROTO, "UIDL of message %lu longer than %d "
		    "characters", *num_r, POP3_UID_MAX);
	for (i = 0; uid + i < end; i++) {
		if (uid[i] < 0x21 || uid[i] > 0x7e)
			return garbage("UIDL line", line, len, err);
	}
	*uid_r = uid;
	*ulen_r = (size_t)(end - uid);
	return PM_OK;
}

/* Parse one "NUM SIZE" line of a LIST listing. */
int
pop3_parse_list(const char *line, size_t len, unsigned long *num_r,
    uint64_t *size_r, char **err)
{
	const char *p = line, *end = line + len;
	uint64_t n = 0;
	unsigned d;

	if (len > POP3_STATUS_MAX)
		return pmp_errf(err, PM_EPROTO, "LIST line too long (%zu bytes)", len);
	if (parse_num(&p, end, num_r) != 0 || p == end || *p != ' ')
		return garbage("LIST line", line, len, err);
	p++;
	if (p == end || *p < '0' || *p > '9')
		return garbage("LIST line", line, len, err);
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		d = (unsigned)(*p - '0');
		if (n > UINT64_MAX / 10 ||
		    (n == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return garbage("LIST line", line, len, err);
		n = n * 10 + d;
	}
	if (p != end && *p != ' ')
		return garbage("LIST line", line, len, err);
	*size_r = n;
	return PM_OK;
}

/*
 * The multi-line reader.  RFC 1939 3 defines lines as ending in CRLF, and
 * servers stuff (double) a leading "." only at the start of such a line:
 * a "." after a bare LF is message text that the server sent as it is.
 * So only CRLF "." CRLF ends a response, and a "." is taken for stuffing
 * only right after a CRLF (or at the start of the body).  A bare-LF "."
 * line ("\n.\n", "\n.\r\n") is kept in the message whole, and a "." line
 * that starts after a CRLF but ends in a bare LF ("\r\n.\n") loses its
 * leading "." as any other line starting with "." and more than CRLF
 * does (RFC 1939 3).  Taking a bare LF for a line end instead would let a
 * message's own text end it early: the rest would then be read as the
 * reply to the next command.  The other reading of a server that stuffs
 * after bare LFs too only costs an extra "." in such a line.
 */
enum {
	U_BOL = 0,	/* at the start of a line (after CRLF) */
	U_MID,		/* inside a line, after a bare LF too */
	U_CR,		/* after a CR */
	U_DOT,		/* after a "." at the start of a line */
	U_DOTCR		/* after "." and CR at the start of a line */
};

/* Set the undot state machine to the start of a body. */
void
pop3_undot_init(struct pop3_undot *u)
{
	u->state = U_BOL;
}

/* Undo dot-stuffing in a chunk of body; 1 when the closing "." came. */
int
pop3_undot(struct pop3_undot *u, const char *in, size_t len, char *out,
    size_t *olen_r, size_t *used_r)
{
	const char *nl;
	size_t i, o = 0, run;
	char c;

	for (i = 0; i < len; i++) {
		/* Inside a line only a line feed matters: copy up to the
		 * next one at once. */
		if ((u->state == U_MID || u->state == U_CR) && in[i] != '\n') {
			nl = memchr(in + i, '\n', len - i);
			run = (nl != NULL ? (size_t)(nl - in) : len) - i;
			memcpy(out + o, in + i, run);
			o += run;
			i += run;
			u->state = in[i - 1] == '\r' ? U_CR : U_MID;
			if (i == len)
				break;
		}
		c = in[i];
		switch (u->state) {
		case U_BOL:
			if (c == '.') {
				u->state = U_DOT;
				continue;
			}
			break;
		case U_DOT:
			if (c == '\r') {
				u->state = U_DOTCR;
				continue;
			}
			/* A stuffed dot: it goes, c stays. */
			break;
		case U_DOTCR:
			if (c == '\n')
				goto done;
			/* ".\r" then more: the line was a stuffed "\r...". */
			out[o++] = '\r';
			u->state = U_CR;
			break;
		}
		out[o++] = c;
		if (c == '\n')
			/* Only CRLF starts a line. */
			u->state = u->state == U_CR ? U_BOL : U_MID;
		else
			u->state = c == '\r' ? U_CR : U_MID;
	}
	*olen_r = o;
	*used_r = len;
	return 0;
done:
	u->state = U_BOL;
	*olen_r = o;
	*used_r = i + 1;
	return 1;
}
