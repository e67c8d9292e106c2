/* Envelope data taken from a message's header section, and the strict
 * address checks that keep hostile header text out of MDA arguments and
 * SMTP commands. */
#ifndef PM_ENVELOPE_H
#define PM_ENVELOPE_H

#include <stddef.h>

/* Longest address accepted (RFC 5321 path limit, without the brackets). */
#define ENVELOPE_ADDR_MAX 254

/*
 * 1 when addr is a safe envelope address: local@domain (dot-atom or quoted
 * local part of printable ASCII; host name or [address literal] domain),
 * or, when need_domain is 0, a bare local part.  Never accepts control
 * characters, 8-bit bytes, white space outside quotes, angle brackets, a
 * leading '-', or more than ENVELOPE_ADDR_MAX bytes.
 */
int envelope_addr_valid(const char *addr, int need_domain);

/*
 * The first field called name (case-insensitive) of the header section
 * hdr[0..len), unfolded (line breaks removed), or NULL.  malloc'd.
 */
char *envelope_header(const char *hdr, size_t len, const char *name);

/*
 * The address in one header field value: what is inside the first <...>
 * outside quotes and comments, else the value without comments and
 * surrounding white space.  NULL when there is none or the value lists
 * several addresses.  malloc'd; not yet validated.
 */
char *envelope_extract(const char *value);

/*
 * The envelope sender of a message from its header section: the address of
 * Return-Path, else Sender, else From, the first that is valid.  An
 * explicit "Return-Path: <>" gives "".  "" when none is valid.  malloc'd.
 */
char *envelope_sender(const char *hdr, size_t len);

#endif
