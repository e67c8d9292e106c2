/* IMAP4rev1 response parsing: pure functions, no I/O. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap-parse.h"

enum {
	ITEM_NAME = 0,		/* an item name or the closing paren is next */
	ITEM_UID,
	ITEM_SIZE,
	ITEM_BODY,
	ITEM_OTHER
};

/* Upper-case ASCII in place. */
static void
upcase(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
	}
}

/* 1 if c may appear in an atom (RFC 3501 ATOM-CHAR, plus ']'). */
static int
atom_char(int c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("(){%*\"\\", c) == NULL;
}

/* Parse the decimal digits [p, p+n) into *v; -1 when empty, not decimal
 * or larger than lim. */
static int
parse_num(const char *p, size_t n, uint64_t lim, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (x > (lim - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		x = x * 10 + (uint64_t)(p[i] - '0');
	}
	*v = x;
	return 0;
}

/* Compare [p, p+n) with the upper-case word w, ignoring case. */
static int
word_is(const char *p, size_t n, const char *w)
{
	size_t i;

	if (strlen(w) != n)
		return 0;
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != w[i])
			return 0;
	}
	return 1;
}

/* Release the strings of a parsed response. */
void
imap_resp_free(struct imap_resp *r)
{
	free(r->tag);
	free(r->word);
	free(r->code);
	free(r->text);
	memset(r, 0, sizeof *r);
}

/* Parse one response line into *r. */
int
imap_parse_resp(const char *line, size_t len, struct imap_resp *r,
    char **err)
{
	static const struct {
		const char *word;
		int status;
	} words[] = {
		{ "OK", IMAP_OK }, { "NO", IMAP_NO }, { "BAD", IMAP_BAD },
		{ "BYE", IMAP_BYE }, { "PREAUTH", IMAP_PREAUTH }
	};
	const char *p, *end = line + len, *q;
	uint64_t v;
	size_t i;
	char *c;

	memset(r, 0, sizeof *r);
	if (memchr(line, '\0', len) != NULL)
		return pmp_errf(err, PM_EPROTO, "NUL byte in server response");
	if (len == 0)
		return pmp_errf(err, PM_EPROTO, "empty server response line");

	if (line[0] == '+') {
		if (len > 1 && line[1] != ' ') {
			c = pmp_clean(line, len, 60);
			pmp_errf(err, PM_EPROTO, "malformed continuation \"%s\"", c);
			free(c);
			return PM_EPROTO;
		}
		r->type = IMAP_CONTINUE;
		r->status = IMAP_DATA;
		r->text = len > 2 ? pmp_xstrndup(line + 2, len - 2) :
		    pmp_xstrndup("", 0);
		return PM_OK;
	}

	if (line[0] == '*') {
		if (len < 3 || line[1] != ' ')
			return pmp_errf(err, PM_EPROTO, "malformed untagged response");
		r->type = IMAP_UNTAGGED;
		p = line + 2;
		if (*p >= '0' && *p <= '9') {
			for (q = p; q < end && *q >= '0' && *q <= '9'; q++)
				;
			if (parse_num(p, q - p, UINT32_MAX, &v) != 0)
				return pmp_errf(err, PM_EPROTO, "number out of range in "
				    "untagged response");
			if (q == end || *q != ' ')
				return pmp_errf(err, PM_EPROTO, "untagged number without "
				    "keyword");
			r->has_num = 1;
			r->num = (uint32_t)v;
			p = q + 1;
		}
	} else {
		for (p = line; p < end && *p != ' '; p++) {
			if (!atom_char((unsigned char)*p) || *p == '+')
				break;
		}
		if (p == line)
			return pmp_errf(err, PM_EPROTO, "server response without a tag");
		if (p == end || *p != ' ') {
			c = pmp_clean(line, len, 60);
			pmp_errf(err, PM_EPROTO, "malformed response \"%s\"", c);
			free(c);
			return PM_EPROTO;
		}
		r->type = IMAP_TAGGED;
		r->tag = pmp_xstrndup(line, p - line);
		p++;
	}

	for (q = p; q < end && *q != ' '; q++)
		;
	if (q == p) {
		imap_resp_free(r);
		return pmp_errf(err, PM_EPROTO, "server response without a keyword");
	}
	r->word = pmp_xstrndup(p, q - p);
	upcase(r->word);
	r->status = IMAP_DATA;
	if (!r->has_num) {
		for (i = 0; i < sizeof words / sizeof words[0]; i++) {
			if (strcmp(r->word, words[i].word) == 0)
				r->status = words[i].status;
		}
	}
	if (r->type == IMAP_TAGGED && r->status != IMAP_OK &&
	    r->status != IMAP_NO && r->status != IMAP_BAD) {
		c = pmp_clean(r->word, strlen(r->word), 30);
		imap_resp_free(r);
		pmp_errf(err, PM_EPROTO, "unknown status \"%s\" in tagged response", c);
		free(c);
		return PM_EPROTO;
	}
	p = q;
	if (p < end)
		p++;

	if (r->status != IMAP_DATA && p < end && *p == '[') {
		q = memchr(p, ']', end - p);
		if (q == NULL) {
			imap_resp_free(r);
			return pmp_errf(err, PM_EPROTO, "unterminated response code");
		}
		r->code = pmp_xstrndup(p + 1, q - p - 1);
		p = q + 1;
		if (p < end && *p == ' ')
			p++;
	}
	r->text = pmp_xstrndup(p, end - p);
	return PM_OK;
}

/* Release a capability set. */
void
imap_caps_free(struct imap_caps *c)
{
	free(c->mechs);
	memset(c, 0, sizeof *c);
}

/* Parse a capability list into *c. */
int
imap_parse_caps(const char *list, struct imap_caps *c, char **err)
{
	const char *p, *q;
	size_t n, mlen = 0, ntok = 0;
	char *mechs;

	imap_caps_free(c);
	mechs = pmp_xmalloc(strlen(list) + 1);
	mechs[0] = '\0';
	for (p = list; *p != '\0'; p = q) {
		if (*p == ' ') {
			q = p + 1;
			continue;
		}
		for (q = p; *q != '\0' && *q != ' '; q++) {
			if (!atom_char((unsigned char)*q)) {
				free(mechs);
				return pmp_errf(err, PM_EPROTO, "invalid character in "
				    "capability list");
			}
		}
		n = q - p;
		ntok++;
		if (word_is(p, n, "IMAP4REV1"))
			c->imap4rev1 = 1;
		else if (word_is(p, n, "STARTTLS"))
			c->starttls = 1;
		else if (word_is(p, n, "LOGINDISABLED"))
			c->logindisabled = 1;
		else if (word_is(p, n, "SASL-IR"))
			c->sasl_ir = 1;
		else if (word_is(p, n, "UIDPLUS"))
			c->uidplus = 1;
		else if (word_is(p, n, "IDLE"))
			c->idle = 1;
		else if (n > 5 && word_is(p, 5, "AUTH=")) {
			if (mlen > 0)
				mechs[mlen++] = ' ';
			memcpy(mechs + mlen, p + 5, n - 5);
			mlen += n - 5;
			mechs[mlen] = '\0';
		}
	}
	if (ntok == 0) {
		free(mechs);
		return pmp_errf(err, PM_EPROTO, "empty capability list");
	}
	upcase(mechs);
	c->mechs = mechs;
	return PM_OK;
}

/* 1 if [p, p+n) is a non-empty run of decimal digits. */
static int
all_digits(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
	}
	return n > 0;
}

/* Parse the size inside a literal's braces, [p, q) ("123" or "123+"). */
static int
literal_size(const char *p, const char *q, uint64_t max, uint64_t *n_r,
    char **err)
{
	char *c;

	if (q > p && q[-1] == '+')
		q--;
	if (!all_digits(p, q - p)) {
		c = pmp_clean(p, q - p, 30);
		pmp_errf(err, PM_EPROTO, "malformed literal size \"{%s}\"", c);
		free(c);
		return PM_EPROTO;
	}
	if (parse_num(p, q - p, UINT64_MAX, n_r) != 0)
		return pmp_errf(err, PM_EPROTO, "literal size out of range");
	if (*n_r > max)
		return pmp_errf(err, PM_EPROTO, "literal of %llu bytes exceeds the limit of "
		    "%llu bytes", (unsigned long long)*n_r,
		    (unsigned long long)max);
	return PM_OK;
}

/* Detect and parse a literal "{N}" at the end of a line. */
int
imap_literal(const char *line, size_t len, uint64_t max, int *found_r,
    uint64_t *n_r, char **err)
{
	const char *p, *end = line + len;

	*found_r = 0;
	*n_r = 0;
	if (memchr(line, '\0', len) != NULL)
		return pmp_errf(err, PM_EPROTO, "NUL byte in server response");
	if (len == 0 || end[-1] != '}')
		return PM_OK;
	for (p = end - 1; p > line; p--) {
		if (p[-1] == '{' || p[-1] == ' ')
			break;
	}
	if (p == line || p[-1] != '{')
		return PM_OK;	/* an atom ending in '}', not a literal */
	if (literal_size(p, end - 1, max, n_r, err) != PM_OK)
		return PM_EPROTO;
	*found_r = 1;
	return PM_OK;
}

/* Release what a FETCH parse allocated. */
void
imap_fetch_free(struct imap_fetch *f)
{
	free(f->quoted);
	f->quoted = NULL;
	f->quoted_len = 0;
}

/* Parse a quoted string at *pp (which points at '"'); *out_r, if not NULL,
 * gets the malloc'd unescaped bytes. */
static int
parse_quoted(const char **pp, const char *end, char **out_r, size_t *len_r,
    char **err)
{
	const char *p = *pp + 1;
	char *out = NULL;
	size_t n = 0;

	if (out_r != NULL)
		out = pmp_xmalloc(end - p + 1);
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (++p == end)
				break;
		}
		if (out != NULL)
			out[n] = *p;
		n++;
	}
	if (p == end) {
		free(out);
		return pmp_errf(err, PM_EPROTO, "unterminated quoted string");
	}
	*pp = p + 1;
	if (out != NULL) {
		out[n] = '\0';
		*out_r = out;
		*len_r = n;
	}
	return PM_OK;
}

/* Parse a literal header at p ('{'), which must end the line. */
static int
fetch_literal(const char *p, const char *end, uint64_t max,
    struct imap_fetch *f, char **err)
{
	const char *q;

	q = memchr(p, '}', end - p);
	if (q == NULL)
		return pmp_errf(err, PM_EPROTO, "literal without closing brace in FETCH "
		    "response");
	if (q + 1 != end)
		return pmp_errf(err, PM_EPROTO, "literal not at the end of a FETCH line");
	if (literal_size(p + 1, q, max, &f->literal, err) != PM_OK)
		return PM_EPROTO;
	f->literal_pending = 1;
	return PM_OK;
}

/* Parse FETCH items from p to the end of the line, resuming in f's state. */
static int
fetch_items(const char *p, const char *end, uint64_t max,
    struct imap_fetch *f, char **err)
{
	const char *q;
	uint64_t v;
	int depth_br;

	f->literal_pending = 0;
	f->literal_body = 0;
	f->literal = 0;
	if (memchr(p, '\0', end - p) != NULL)
		return pmp_errf(err, PM_EPROTO, "NUL byte in server response");
	if (f->done)
		return pmp_errf(err, PM_EPROTO, "data after the end of a FETCH response");

	for (;;) {
		if (f->depth > 0) {
			/* Inside a list value we do not care about. */
			if (p == end)
				return pmp_errf(err, PM_EPROTO, "FETCH response ends inside "
				    "a list");
			switch (*p) {
			case ' ':
				p++;
				break;
			case '(':
				f->depth++;
				p++;
				break;
			case ')':
				p++;
				if (--f->depth == 0)
					f->item = ITEM_NAME;
				break;
			case '"':
				if (parse_quoted(&p, end, NULL, NULL,
				    err) != PM_OK)
					return PM_EPROTO;
				break;
			case '{':
				return fetch_literal(p, end, max, f, err);
			default:
				while (p < end && *p != ' ' && *p != '(' &&
				    *p != ')' && *p != '"' && *p != '{')
					p++;
				break;
			}
			continue;
		}

		if (f->item == ITEM_NAME) {
			while (p < end && *p == ' ')
				p++;
			if (p == end)
				return pmp_errf(err, PM_EPROTO, "FETCH response without "
				    "closing parenthesis");
			if (*p == ')') {
				if (p + 1 != end)
					return pmp_errf(err, PM_EPROTO, "junk after FETCH "
					    "response");
				f->done = 1;
				return PM_OK;
			}
			/* The name; a [section] may hold spaces. */
			depth_br = 0;
			for (q = p; q < end; q++) {
				if (*q == '[')
					depth_br++;
				else if (*q == ']' && depth_br > 0)
					depth_br--;
				else if (depth_br == 0 && (*q == ' ' ||
				    *q == '(' || *q == ')' || *q == '"' ||
				    *q == '{'))
					break;
				else if ((unsigned char)*q < 0x20)
					break;
			}
			if (q == p || q == end || *q != ' ')
				return pmp_errf(err, PM_EPROTO, "malformed FETCH item");
			if (word_is(p, q - p, "UID"))
				f->item = ITEM_UID;
			else if (word_is(p, q - p, "RFC822.SIZE"))
				f->item = ITEM_SIZE;
			else if (word_is(p, q - p, "BODY[]"))
				f->item = ITEM_BODY;
			else
				f->item = ITEM_OTHER;
			p = q + 1;
			continue;
		}

		/* The value of the current item. */
		if (p == end)
			return pmp_errf(err, PM_EPROTO, "FETCH item without a value");
		if (*p == '(') {
			if (f->item != ITEM_OTHER)
				return pmp_errf(err, PM_EPROTO, "unexpected list in FETCH "
				    "response");
			f->depth = 1;
			p++;
			continue;
		}
		if (*p == '"') {
			if (f->item == ITEM_BODY) {
				free(f->quoted);
				f->quoted = NULL;
				if (parse_quoted(&p, end, &f->quoted,
				    &f->quoted_len, err) != PM_OK)
					return PM_EPROTO;
				f->body = IMAP_BODY_QUOTED;
			} else if (f->item == ITEM_OTHER) {
				if (parse_quoted(&p, end, NULL, NULL,
				    err) != PM_OK)
					return PM_EPROTO;
			} else
				return pmp_errf(err, PM_EPROTO, "unexpected string in FETCH "
				    "response");
			f->item = ITEM_NAME;
			continue;
		}
		if (*p == '{') {
			if (f->item == ITEM_UID || f->item == ITEM_SIZE)
				return pmp_errf(err, PM_EPROTO, "unexpected literal in FETCH "
				    "response");
			if (fetch_literal(p, end, max, f, err) != PM_OK)
				return PM_EPROTO;
			if (f->item == ITEM_BODY) {
				f->literal_body = 1;
				f->body = IMAP_BODY_LITERAL;
			}
			f->item = ITEM_NAME;
			return PM_OK;
		}
		for (q = p; q < end && *q != ' ' && *q != ')'; q++)
			;
		switch (f->item) {
		case ITEM_UID:
			if (parse_num(p, q - p, UINT32_MAX, &v) != 0 || v == 0)
				return pmp_errf(err, PM_EPROTO, "malformed UID in FETCH "
				    "response");
			f->has_uid = 1;
			f->uid = (uint32_t)v;
			break;
		case ITEM_SIZE:
			if (parse_num(p, q - p, UINT64_MAX, &v) != 0)
				return pmp_errf(err, PM_EPROTO, "malformed RFC822.SIZE in "
				    "FETCH response");
			f->has_size = 1;
			f->size = v;
			break;
		case ITEM_BODY:
			if (!word_is(p, q - p, "NIL"))
				return pmp_errf(err, PM_EPROTO, "malformed BODY[] in FETCH "
				    "response");
			f->body = IMAP_BODY_NIL;
			break;
		}
		f->item = ITEM_NAME;
		p = q;
	}
}

/* Start parsing a "* n FETCH (" line. */
int
imap_parse_fetch(const char *line, size_t len, uint64_t max,
    struct imap_fetch *f, char **err)
{
	const char *p, *q, *end = line + len;
	uint64_t v;

	memset(f, 0, sizeof *f);
	if (memchr(line, '\0', len) != NULL)
		return pmp_errf(err, PM_EPROTO, "NUL byte in server response");
	if (len < 2 || line[0] != '*' || line[1] != ' ')
		return pmp_errf(err, PM_EPROTO, "not an untagged FETCH response");
	p = line + 2;
	for (q = p; q < end && *q >= '0' && *q <= '9'; q++)
		;
	if (parse_num(p, q - p, UINT32_MAX, &v) != 0 || v == 0)
		return pmp_errf(err, PM_EPROTO, "malformed message number in FETCH "
		    "response");
	f->seq = (uint32_t)v;
	if (end - q < 8 || !word_is(q, 7, " FETCH ") || q[7] != '(')
		return pmp_errf(err, PM_EPROTO, "malformed FETCH response");
	return fetch_items(q + 8, end, max, f, err);
}

/* Continue a FETCH response with the line after a literal. */
int
imap_parse_fetch_more(const char *line, size_t len, uint64_t max,
    struct imap_fetch *f, char **err)
{
	return fetch_items(line, line + len, max, f, err);
}

/* Parse the UIDs of a SEARCH response. */
int
imap_parse_search(const char *text, uint32_t **uids_r, size_t *n_r,
    char **err)
{
	const char *p, *q;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	uint64_t v;

	*uids_r = NULL;
	*n_r = 0;
	for (p = text; *p != '\0'; p = q) {
		if (*p == ' ') {
			q = p + 1;
			continue;
		}
		for (q = p; *q != '\0' && *q != ' '; q++)
			;
		if (parse_num(p, q - p, UINT32_MAX, &v) != 0 || v == 0) {
			free(uids);
			return pmp_errf(err, PM_EPROTO, "malformed number in SEARCH "
			    "response");
		}
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			uids = pmp_xreallocarray(uids, cap, sizeof *uids);
		}
		uids[n++] = (uint32_t)v;
	}
	*uids_r = uids;
	*n_r = n;
	return PM_OK;
}

/* Build a compact UID set of at most max bytes from the start of uids. */
size_t
imap_uidset(const uint32_t *uids, size_t n, size_t max, char **set_r)
{
	char piece[32], *set;
	size_t i = 0, j, len = 0, plen;

	*set_r = NULL;
	if (n == 0)
		return 0;
	set = pmp_xmalloc(max + 1);
	set[0] = '\0';
	while (i < n) {
		for (j = i; j + 1 < n && (uids[j + 1] == uids[j] ||
		    uids[j + 1] == uids[j] + 1); j++)
			;
		if (uids[j] == uids[i])
			plen = snprintf(piece, sizeof piece, "%s%u",
			    len > 0 ? "," : "", uids[i]);
		else
			plen = snprintf(piece, sizeof piece, "%s%u:%u",
			    len > 0 ? "," : "", uids[i], uids[j]);
		if (len + plen > max)
			break;
		memcpy(set + len, piece, plen + 1);
		len += plen;
		i = j + 1;
	}
	if (len == 0) {
		free(set);
		return 0;
	}
	*set_r = set;
	return i;
}

/* Quote s as an IMAP quoted string. */
char *
imap_quote(const char *s)
{
	const char *p;
	char *out, *o;

	if (strpbrk(s, "\r\n") != NULL)
		return NULL;
	out = o = pmp_xmalloc(2 * strlen(s) + 3);
	*o++ = '"';
	for (p = s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* The most entries a folder listing may hold (see imap-parse.h). */
size_t
imap_list_limit(int has_exists, uint32_t exists)
{
	if (!has_exists || exists >= IMAP_LIST_MAX - IMAP_LIST_MARGIN)
		return IMAP_LIST_MAX;
	return (size_t)exists + IMAP_LIST_MARGIN;
}

/* --- mailbox names in modified UTF-7 (RFC 3501 5.1.3) ------------------ */

/* The digits of modified base64: RFC 2045's with ',' for '/'. */
static const char mb64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* The value of modified base64 digit c, or -1. */
static int
mb64_value(unsigned char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(mb64, c)) == NULL)
		return -1;
	return (int)(p - mb64);
}

/* 1 if c stands for itself in modified UTF-7 (printable US-ASCII). */
static int
mutf7_direct(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/*
 * The code point of the UTF-8 sequence at s (n bytes left) in *cp; returns
 * the sequence's length, or 0 when it is not valid UTF-8 (truncated,
 * overlong, a surrogate, beyond U+10FFFF).
 */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len, i;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* Write code point c as UTF-8 at o; returns the end. */
static char *
utf8_put(char *o, uint32_t c)
{
	if (c < 0x80)
		*o++ = (char)c;
	else if (c < 0x800) {
		*o++ = (char)(0xc0 | c >> 6);
		*o++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*o++ = (char)(0xe0 | c >> 12);
		*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	} else {
		*o++ = (char)(0xf0 | c >> 18);
		*o++ = (char)(0x80 | ((c >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((c >> 6) & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	}
	return o;
}

/* Encode a UTF-8 name in modified UTF-7 (see imap-parse.h). */
char *
imap_mutf7_encode(const char *name, char **err)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t len = strlen(name), i = 0, k;
	uint32_t c, bits, units[2];
	unsigned nbits, j, nunits;
	char *out, *o, *shown;

	/* At most five bytes ("&AAE-") for each byte of input. */
	out = o = pmp_xmalloc(5 * len + 1);
	while (i < len) {
		if (mutf7_direct(s[i])) {
			*o++ = (char)s[i];
			if (s[i++] == '&')
				*o++ = '-';
			continue;
		}
		*o++ = '&';
		bits = 0;
		nbits = 0;
		while (i < len && !mutf7_direct(s[i])) {
			if ((k = utf8_next(s + i, len - i, &c)) == 0) {
				free(out);
				shown = pmp_clean(name, len, 200);
				pmp_errf(err, PM_ECONFIG, "folder name "
				    "\"%s\" is not valid UTF-8 (byte %zu)",
				    shown, i + 1);
				free(shown);
				return NULL;
			}
			i += k;
			nunits = 1;
			units[0] = c;
			if (c >= 0x10000) {
				units[0] = 0xd800 | ((c - 0x10000) >> 10);
				units[1] = 0xdc00 | ((c - 0x10000) & 0x3ff);
				nunits = 2;
			}
			for (j = 0; j < nunits; j++) {
				bits = (bits << 16) | units[j];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					*o++ = mb64[(bits >> nbits) & 0x3f];
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits > 0)
			*o++ = mb64[(bits << (6 - nbits)) & 0x3f];
		*o++ = '-';
	}
	*o = '\0';
	return out;
}

/* Decode the modified UTF-7 s[0..len) (see imap-parse.h). */
char *
imap_mutf7_decode(const char *s, size_t len, char **err)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, start, run_end = (size_t)-1;
	uint32_t bits, u, hi;
	unsigned nbits, nunits;
	char *out, *o;
	const char *why;
	int v;

	/* Three digits or more (16 bits) for at most three bytes of UTF-8,
	 * or six (32 bits) for four: never twice the input. */
	out = o = pmp_xmalloc(2 * len + 1);
	while (i < len) {
		if (!mutf7_direct(p[i])) {
			why = "a byte that is not printable US-ASCII";
			start = i;
			goto bad;
		}
		if (p[i] != '&') {
			*o++ = (char)p[i++];
			continue;
		}
		start = i++;
		if (i < len && p[i] == '-') {
			*o++ = '&';
			i++;
			continue;
		}
		if (start == run_end) {
			why = "a run right after another";
			goto bad;
		}
		bits = hi = 0;
		nbits = nunits = 0;
		for (;;) {
			if (i >= len) {
				why = "'&' without its closing '-'";
				goto bad;
			}
			if (p[i] == '-') {
				i++;
				break;
			}
			if ((v = mb64_value(p[i++])) < 0) {
				why = "a byte that is not modified base64";
				start = i - 1;
				goto bad;
			}
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			nunits++;
			if (hi != 0) {
				if (u < 0xdc00 || u > 0xdfff) {
					why = "an unpaired surrogate";
					goto bad;
				}
				o = utf8_put(o, 0x10000 +
				    ((hi - 0xd800) << 10) + (u - 0xdc00));
				hi = 0;
			} else if (u >= 0xd800 && u <= 0xdbff)
				hi = u;
			else if (u >= 0xdc00 && u <= 0xdfff) {
				why = "an unpaired surrogate";
				goto bad;
			} else if (mutf7_direct(u) || u == 0) {
				why = "an encoded character that must be "
				    "written as itself";
				goto bad;
			} else
				o = utf8_put(o, u);
		}
		if (hi != 0) {
			why = "an unpaired surrogate";
			goto bad;
		}
		if (nunits == 0 || nbits >= 6 || bits != 0) {
			why = "an encoded run that is not whole UTF-16";
			goto bad;
		}
		run_end = i;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	out = pmp_clean(s, len, 200);
	pmp_errf(err, PM_EPROTO, "invalid modified UTF-7 \"%s\": %s at byte "
	    "%zu", out, why, start + 1);
	free(out);
	return NULL;
}

/* The form of a configured folder name to send (see imap-parse.h). */
char *
imap_mutf7_wire(const char *name, char **err)
{
	const unsigned char *p;
	char *d, *e = NULL;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p >= 0x80)
			return imap_mutf7_encode(name, err);
	}
	if (strchr(name, '&') != NULL &&
	    (d = imap_mutf7_decode(name, strlen(name), &e)) != NULL) {
		free(d);
		return pmp_xstrndup(name, strlen(name));
	}
	free(e);
	return imap_mutf7_encode(name, err);
}

/* Server text with its modified UTF-7 runs decoded (see imap-parse.h). */
char *
imap_mutf7_text(const char *text)
{
	const char *p = text, *amp, *dash;
	size_t len = strlen(text), n;
	char *out, *o, *d, *e, *q;
	int ok;

	/* A decoded run is less than twice as long (imap_mutf7_decode()). */
	out = o = pmp_xmalloc(2 * len + 1);
	while ((amp = strchr(p, '&')) != NULL &&
	    (dash = strchr(amp + 1, '-')) != NULL) {
		memcpy(o, p, (size_t)(amp - p));
		o += amp - p;
		n = (size_t)(dash + 1 - amp);
		e = NULL;
		d = imap_mutf7_decode(amp, n, &e);
		free(e);
		/* No control character (C0, DEL, C1) reaches a log. */
		ok = d != NULL;
		for (q = d; ok && *q != '\0'; q++) {
			if ((unsigned char)*q < 0x20 || *q == 0x7f ||
			    ((unsigned char)q[0] == 0xc2 &&
			    (unsigned char)q[1] >= 0x80 &&
			    (unsigned char)q[1] <= 0x9f))
				ok = 0;
		}
		if (ok) {
			memcpy(o, d, strlen(d));
			o += strlen(d);
		} else {
			memcpy(o, amp, n);
			o += n;
		}
		free(d);
		p = dash + 1;
	}
	memcpy(o, p, strlen(p) + 1);
	return out;
}

/* 1 if code point c may reach a log as it is: not a control character,
 * not a line or paragraph separator, not a bidirectional control. */
static int
text_printable(uint32_t c)
{
	if (c < 0x20 || (c >= 0x7f && c < 0xa0))
		return 0;
	if (c == 0x200e || c == 0x200f || (c >= 0x2028 && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xfeff)
		return 0;
	return 1;
}

/* Server text made safe for a log, keeping UTF-8 (see imap-parse.h). */
char *
imap_clean_text(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, k;
	uint32_t c;
	char *out, *o;

	out = o = pmp_xmalloc((len < max ? len : max) + 4);
	while (i < len) {
		k = utf8_next(p + i, len - i, &c);
		if (k == 0 || !text_printable(c)) {
			k = 1;
			c = '?';
		}
		if ((size_t)(o - out) + k > max) {
			memcpy(o, "...", 3);
			o += 3;
			break;
		}
		if (c == '?')
			*o++ = '?';
		else {
			memcpy(o, p + i, k);
			o += k;
		}
		i += k;
	}
	*o = '\0';
	return out;
}
