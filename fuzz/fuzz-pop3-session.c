/* Fuzz target: the POP3 plugin's reply and multi-line readers (pop3.c) as
 * a whole, fed a server's side of a session (see fuzz-plugin-session.h). */
#define FUZZ_PORT	995
#define FUZZ_FOLDER	""
#include "fuzz-plugin-session.h"
