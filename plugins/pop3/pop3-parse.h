/*
 * POP3 (RFC 1939, 2449, 5034) parsing for the pop3 plugin: pure functions
 * over bytes, no I/O, so that every one of them can be tested with broken
 * input.  The plugin links nothing from the core: the small allocation
 * helpers live here too (they abort on failure, as the core's do).
 */
#ifndef PM_POP3_PARSE_H
#define PM_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <pullmail/host.h>

#include "plugin-util.h"

#define POP3_STATUS_MAX	4096	/* longest status or list line accepted
				 * (RFC 2449 allows 512 octets) */
#define POP3_UID_MAX	70	/* RFC 1939: a UIDL is 1 to 70 octets */
#define POP3_CAPA_LINES_MAX 100	/* most lines a CAPA response may have */
#define POP3_CAPA_BYTES_MAX 16384 /* most bytes it may have (Dovecot's and
				 * Microsoft 365's are under 200) */

/* What a status line says. */
enum pop3_status {
	POP3_OK = 0,	/* "+OK" */
	POP3_ERR,	/* "-ERR" */
	POP3_CONT	/* "+" or "+ text": a SASL challenge (RFC 5034) */
};

/* What CAPA (RFC 2449) announced. */
struct pop3_caps {
	int known;		/* the server answered CAPA */
	int stls;
	int user;
	int uidl;
	int pipelining;
	int top;
	char *mechs;		/* SASL mechanisms, upper case, space
				 * separated; "" for none; malloc'd */
	size_t mlen, mcap;	/* its length and allocated size */
	size_t nlines, nbytes;	/* the CAPA response so far */
};

/* The dot-unstuffing and terminator state machine of a multi-line body. */
struct pop3_undot {
	int state;
};

/*
 * Parse a status line of len bytes.  With sasl set, "+" and "+ text" are
 * challenges (POP3_CONT).  *text_r points into line, at the text after the
 * indicator and one space ("" when there is none).  Errors: PM_EPROTO for
 * anything but "+OK", "-ERR" (then end of line or a space) or, with sasl,
 * "+"; for a NUL byte; for a line longer than POP3_STATUS_MAX.
 */
int pop3_parse_status(const char *line, size_t len, int sasl,
    int *status_r, const char **text_r, char **err);

/* Reset caps (freeing what they held) before a new CAPA. */
void pop3_caps_reset(struct pop3_caps *c);
void pop3_caps_free(struct pop3_caps *c);
/* Take one capability line of a CAPA response, in time linear in its
 * length.  Errors: PM_EPROTO for control characters, a line longer than
 * POP3_STATUS_MAX, or a response (the lines taken since the reset) of more
 * than POP3_CAPA_LINES_MAX lines or POP3_CAPA_BYTES_MAX bytes. */
int pop3_caps_line(const char *line, size_t len, struct pop3_caps *c,
    char **err);

/*
 * One line of a UIDL listing: "NUM UID".  *uid_r points into line, *ulen_r
 * is its length.  Errors: PM_EPROTO for a bad number (0, not decimal,
 * beyond 2^31), a UID outside 1 to 70 octets of 0x21 to 0x7e, or anything
 * else on the line.
 */
int pop3_parse_uidl(const char *line, size_t len, unsigned long *num_r,
    const char **uid_r, size_t *ulen_r, char **err);

/* One line of a LIST listing: "NUM SIZE [more]".  Errors: PM_EPROTO. */
int pop3_parse_list(const char *line, size_t len, unsigned long *num_r,
    uint64_t *size_r, char **err);

void pop3_undot_init(struct pop3_undot *u);

/*
 * Feed len bytes of a multi-line body (the bytes after the "+OK" line) to
 * the state machine.  The unstuffed bytes go to out, which must hold
 * len + 1 bytes; *olen_r says how many (CRLF line ends kept; a CR held
 * back at a chunk's end comes out with the next one).  Returns 1 when the
 * terminating CRLF "." CRLF ended within in (a bare LF neither ends a
 * line nor the response: see pop3-parse.c), with *used_r
 * the bytes of in consumed up to and including it: the rest belongs to the
 * next response.  Returns 0 when more input is needed (*used_r == len).
 * Correct across any split of the input.
 */
int pop3_undot(struct pop3_undot *u, const char *in, size_t len, char *out,
    size_t *olen_r, size_t *used_r);

#endif
