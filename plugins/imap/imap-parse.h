#ifndef PM_IMAP_PARSE_H
#define PM_IMAP_PARSE_H
#endif
