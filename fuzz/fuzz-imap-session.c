/* Fuzz target: the IMAP plugin's response reader (imap.c) as a whole, fed
 * a server's side of a session (see fuzz-plugin-session.h). */
#define FUZZ_PORT	993
#define FUZZ_FOLDER	"INBOX"
#include "fuzz-plugin-session.h"
