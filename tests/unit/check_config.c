/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_config(void)
{
	return suite_create("config");
}
