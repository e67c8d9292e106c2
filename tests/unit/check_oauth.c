/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_oauth(void)
{
	return suite_create("oauth");
}
