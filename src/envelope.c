/*
 * Envelope data from a message's header section.  Header text is hostile:
 * every address taken from it is checked strictly before it can reach an
 * MDA argument or an SMTP command, and anything doubtful becomes the empty
 * sender (<>).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "util.h"

/* RFC 5322 atext. */
static int
is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* 1 when s[0..len) is a dot-atom: atext runs joined by single dots. */
static int
dot_atom_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return 0;
		} else if (!is_atext((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* 1 when s[0..len) is a quoted string of printable ASCII. */
static int
quoted_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return 0;
	for (i = 1; i < len - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e)
			return 0;
		if (c == '\\') {
			if (++i >= len - 1)
				return 0;
			c = (unsigned char)s[i];
			if (c < 0x20 || c > 0x7e)
				return 0;
		} else if (c == '"')
			return 0;
	}
	return 1;
}

/* 1 when s[0..len) is a host name or an [address literal]. */
static int
domain_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0)
		return 0;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return 0;
		for (i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)s[i];

			if (!((c >= '0' && c <= '9') ||
			    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    c == '.' || c == ':' || c == '-'))
				return 0;
		}
		return 1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

/* 1 when addr is safe to use as an envelope address (see envelope.h). */
int
envelope_addr_valid(const char *addr, int need_domain)
{
	size_t len, i, at = 0;
	int inq = 0, found = 0;

	if (addr == NULL)
		return 0;
	len = strlen(addr);
	if (len == 0 || len > ENVELOPE_ADDR_MAX || addr[0] == '-')
		return 0;
	/* The '@' that ends the local part: the last one outside quotes. */
	for (i = 0; i < len; i++) {
		if (inq && addr[i] == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (addr[i] == '"')
			inq = !inq;
		else if (!inq && addr[i] == '@') {
			if (found)
				return 0;
			found = 1;
			at = i;
		}
	}
	if (inq)
		return 0;
	if (!found) {
		if (need_domain)
			return 0;
		at = len;
	} else if (!domain_valid(addr + at + 1, len - at - 1))
		return 0;
	if (addr[0] == '"')
		return quoted_valid(addr, at);
	return dot_atom_valid(addr, at);
}

/* The first header field called name, unfolded and malloc'd, or NULL. */
char *
envelope_header(const char *hdr, size_t len, const char *name)
{
	size_t nlen = strlen(name), i = 0, j, o;
	char *out;

	while (i < len) {
		/* hdr + i is the start of a line. */
		if (len - i > nlen && strncasecmp(hdr + i, name, nlen) == 0) {
			j = i + nlen;
			while (j < len && (hdr[j] == ' ' || hdr[j] == '\t'))
				j++;
			if (j < len && hdr[j] == ':') {
				j++;
				out = xmalloc(len - j + 1);
				for (o = 0; j < len; j++) {
					if (hdr[j] == '\r')
						continue;
					if (hdr[j] == '\n') {
						if (j + 1 < len &&
						    (hdr[j + 1] == ' ' ||
						    hdr[j + 1] == '\t'))
							continue;
						break;
					}
					out[o++] = hdr[j];
				}
				out[o] = '\0';
				return out;
			}
		}
		while (i < len && hdr[i] != '\n')
			i++;
		i++;
	}
	return NULL;
}

/* Copy value without comments and outside white space; NULL on a broken
 * comment or quote. */
static char *
strip_comments(const char *v)
{
	char *out = xmalloc(strlen(v) + 1);
	size_t o = 0;
	int depth = 0, inq = 0;

	for (; *v != '\0'; v++) {
		if (inq) {
			out[o++] = *v;
			if (*v == '\\' && v[1] != '\0')
				out[o++] = *++v;
			else if (*v == '"')
				inq = 0;
		} else if (depth > 0) {
			if (*v == '\\' && v[1] != '\0')
				v++;
			else if (*v == '(')
				depth++;
			else if (*v == ')')
				depth--;
		} else if (*v == '(')
			depth++;
		else if (*v == '"') {
			inq = 1;
			out[o++] = *v;
		} else
			out[o++] = *v;
	}
	out[o] = '\0';
	if (depth != 0 || inq) {
		free(out);
		return NULL;
	}
	return out;
}

/* Trim white space at both ends of s in place. */
static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* The single address in a header field value, not yet validated, or NULL. */
char *
envelope_extract(const char *value)
{
	char *v, *s, *lt = NULL, *gt = NULL, *out;
	int inq = 0;

	if ((v = strip_comments(value)) == NULL)
		return NULL;
	for (s = v; *s != '\0'; s++) {
		if (inq && *s == '\\' && s[1] != '\0') {
			s++;
			continue;
		}
		if (*s == '"')
			inq = !inq;
		else if (!inq && *s == '<' && lt == NULL)
			lt = s;
		else if (!inq && *s == '>' && lt != NULL && gt == NULL)
			gt = s;
		else if (!inq && *s == ',' && (lt == NULL || gt != NULL)) {
			/* A list of addresses: no single sender. */
			free(v);
			return NULL;
		}
	}
	if (lt != NULL) {
		if (gt == NULL) {
			free(v);
			return NULL;
		}
		*gt = '\0';
		out = xstrdup(trim(lt + 1));
	} else
		out = xstrdup(trim(v));
	free(v);
	return out;
}

/* The envelope sender from Return-Path, Sender or From; "" when none. */
char *
envelope_sender(const char *hdr, size_t len)
{
	static const char *const names[] = { "Return-Path", "Sender", "From" };
	char *value, *addr;
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if ((value = envelope_header(hdr, len, names[i])) == NULL)
			continue;
		addr = envelope_extract(value);
		free(value);
		if (addr == NULL)
			continue;
		/* A bounce says so: its sender is empty. */
		if (i == 0 && *addr == '\0')
			return addr;
		if (envelope_addr_valid(addr, 1))
			return addr;
		free(addr);
	}
	return xstrdup("");
}
