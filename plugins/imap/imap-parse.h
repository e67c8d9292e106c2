/*
 * IMAP4rev1 (RFC 3501) response parsing for the imap plugin: pure
 * functions, no I/O, so the unit tests can feed them broken input.
 *
 * Every fallible function returns PM_OK or PM_EPROTO and then sets *err
 * to a malloc'd one-line reason.  Server text quoted in a reason is made
 * printable first.
 */
#ifndef PM_IMAP_PARSE_H
#define PM_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <pullmail/host.h>

#include "plugin-util.h"

/* Largest literal accepted from a server (message or otherwise). */
#define IMAP_LITERAL_MAX ((uint64_t)2 << 30)

/* Kinds of response line. */
enum imap_type {
	IMAP_TAGGED = 0,	/* "A1 OK ..." */
	IMAP_UNTAGGED,		/* "* ..." */
	IMAP_CONTINUE		/* "+ ..." */
};

/* Status of a status response; IMAP_DATA for untagged data ("* 3 EXISTS"). */
enum imap_status {
	IMAP_DATA = 0,
	IMAP_OK,
	IMAP_NO,
	IMAP_BAD,
	IMAP_BYE,
	IMAP_PREAUTH
};

/* One parsed response line.  All strings are malloc'd (imap_resp_free). */
struct imap_resp {
	int type;		/* enum imap_type */
	char *tag;		/* IMAP_TAGGED: the tag; else NULL */
	int status;		/* enum imap_status; IMAP_DATA for data */
	int has_num;		/* "* n WORD": the number was present */
	uint32_t num;
	char *word;		/* upper-cased keyword: "OK", "EXISTS", ... */
	char *code;		/* response code without brackets, or NULL */
	char *text;		/* the rest of the line; "" when none; for
				 * IMAP_CONTINUE the text after "+ " */
};

/*
 * Parse one response line of len bytes (CRLF already removed).  Rejects
 * NUL bytes, a missing tag, an unknown tagged status and an unterminated
 * response code.  On success *r must be released with imap_resp_free().
 */
int imap_parse_resp(const char *line, size_t len, struct imap_resp *r,
    char **err);
void imap_resp_free(struct imap_resp *r);

/* What a CAPABILITY list says, as far as pullmail cares. */
struct imap_caps {
	int imap4rev1;
	int starttls;
	int logindisabled;
	int sasl_ir;
	int uidplus;
	int idle;		/* IDLE (RFC 2177) */
	char *mechs;		/* space-separated AUTH= mechanisms, upper
				 * case; "" when none (malloc'd) */
};

/*
 * Parse a space-separated capability list ("IMAP4rev1 AUTH=PLAIN ...", the
 * text after "* CAPABILITY" or the response code after "CAPABILITY ").
 * Replaces *c (imap_caps_free() it afterwards).
 */
int imap_parse_caps(const char *list, struct imap_caps *c, char **err);
void imap_caps_free(struct imap_caps *c);

/*
 * Detect a literal "{N}" or "{N+}" at the very end of a line of len
 * bytes.  Sets *found_r to 1 and *n_r to N when there is one, *found_r to 0
 * when the line does not end with a brace.  A malformed size (empty,
 * not decimal, negative, overflowing) or one above max is PM_EPROTO.
 */
int imap_literal(const char *line, size_t len, uint64_t max, int *found_r,
    uint64_t *n_r, char **err);

/* How BODY[] appeared in a FETCH response. */
enum imap_body {
	IMAP_BODY_NONE = 0,	/* not (yet) seen */
	IMAP_BODY_LITERAL,	/* as a literal: f->literal bytes follow */
	IMAP_BODY_NIL,		/* NIL: the message is gone */
	IMAP_BODY_QUOTED	/* as a quoted string: f->quoted */
};

/*
 * The state of one FETCH response, which may span several lines when it
 * carries literals.  imap_parse_fetch() starts it from a line beginning
 * "* n FETCH (", imap_parse_fetch_more() continues it with the line read
 * after a literal.  After each call either f->done is 1 (the closing
 * parenthesis was the end of the line) or f->literal_pending is 1 and
 * f->literal bytes must be read before the next line.
 */
struct imap_fetch {
	uint32_t seq;		/* message sequence number */
	int has_uid;
	uint32_t uid;
	int has_size;
	uint64_t size;		/* RFC822.SIZE */
	int body;		/* enum imap_body */
	char *quoted;		/* IMAP_BODY_QUOTED: the unquoted bytes */
	size_t quoted_len;
	int literal_pending;	/* a literal follows this line */
	int literal_body;	/* 1: that literal is the BODY[] value */
	uint64_t literal;	/* its size */
	int done;		/* the response is complete */
	/* Parser state between lines. */
	unsigned depth;		/* nesting inside a skipped list value */
	int item;		/* which item's value comes next (internal) */
};

/* Start parsing a FETCH response line; *f is reset first.  max bounds any
 * literal size.  Release with imap_fetch_free(). */
int imap_parse_fetch(const char *line, size_t len, uint64_t max,
    struct imap_fetch *f, char **err);
/* Continue after a literal with the next line. */
int imap_parse_fetch_more(const char *line, size_t len, uint64_t max,
    struct imap_fetch *f, char **err);
void imap_fetch_free(struct imap_fetch *f);

/*
 * Parse the numbers of a "* SEARCH" response (the text after "SEARCH").
 * *uids_r is malloc'd (NULL when *n_r is 0).
 */
int imap_parse_search(const char *text, uint32_t **uids_r, size_t *n_r,
    char **err);

/*
 * Build a compact UID set ("1:5,8") from the start of uids[0..n), which
 * must be ascending, stopping before the set would exceed max bytes.
 * *set_r is malloc'd.  Returns how many UIDs the set covers (at least 1
 * when n > 0 and max >= 10; 0 only when n is 0 or max is too small).
 */
size_t imap_uidset(const uint32_t *uids, size_t n, size_t max, char **set_r);

/*
 * Quote s as an IMAP quoted string, escaping '\\' and '"'.  Returns a
 * malloc'd string, or NULL when s holds CR or LF (which no quoted string
 * can carry).
 */
char *imap_quote(const char *s);

/*
 * Mailbox names in modified UTF-7 (RFC 3501 5.1.3): printable US-ASCII
 * stands for itself ("&" as "&-"), anything else is UTF-16 in modified
 * base64 between "&" and "-".
 *
 * imap_mutf7_encode() encodes a UTF-8 name; NULL with *err set
 * (PM_ECONFIG) when it is not valid UTF-8.
 *
 * imap_mutf7_decode() decodes s[0..len) into UTF-8; NULL with *err set
 * (PM_EPROTO) when s is not valid modified UTF-7: a byte outside printable
 * US-ASCII, an unclosed or empty run, a digit outside modified base64,
 * leftover bits, a broken surrogate pair, NUL or a printable character
 * encoded, a run right after another (RFC 3501's "&U,BTFw-&ZeVnLIqe-").
 *
 * imap_mutf7_wire() is the form of a configured folder name to send: a
 * name with bytes beyond ASCII is UTF-8 and encoded; an ASCII name that
 * is valid modified UTF-7 with an "&" (say "&AMQ-pfel") is sent as it is;
 * any other is encoded ("R&D" becomes "R&-D").  Errors as for
 * imap_mutf7_encode().
 *
 * imap_mutf7_text() copies server text (say the text of a NO) with every
 * valid modified UTF-7 run decoded; runs that are invalid or decode to a
 * control character are kept as they are.
 *
 * All return malloc'd strings.
 */
char *imap_mutf7_encode(const char *name, char **err);
char *imap_mutf7_decode(const char *s, size_t len, char **err);
char *imap_mutf7_wire(const char *name, char **err);
char *imap_mutf7_text(const char *text);

/*
 * Server text (a status response's text or code) made safe for a log: at
 * most max bytes, with "..." when cut; valid UTF-8 is kept (Dovecot names
 * mailboxes in UTF-8 there) except for control, separator and
 * bidirectional characters, which become '?' like any byte that is not
 * UTF-8.  Returns a malloc'd string.
 */
char *imap_clean_text(const char *s, size_t max);

/* Hard bound on the entries of a folder listing (UID FETCH 1:*), whatever
 * EXISTS says, and the bound when the server sent no EXISTS. */
#define IMAP_LIST_MAX		10000000
/* Room above EXISTS for messages that arrive while the listing runs and
 * for repeated FETCH responses (an unsolicited one with the UID). */
#define IMAP_LIST_MARGIN	1000

/*
 * The most entries a folder listing may hold when the server reported
 * exists messages (has_exists 0: it reported none): a server sending more
 * is broken or hostile, and holding them all would exhaust memory.
 */
size_t imap_list_limit(int has_exists, uint32_t exists);

#endif
