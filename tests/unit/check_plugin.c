/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_plugin(void)
{
	return suite_create("plugin");
}
