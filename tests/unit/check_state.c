/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_state(void)
{
	return suite_create("state");
}
