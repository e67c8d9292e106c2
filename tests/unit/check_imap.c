/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_imap(void)
{
	return suite_create("imap");
}
