/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_maildir(void)
{
	return suite_create("maildir");
}
