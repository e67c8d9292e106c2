/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_transport(void)
{
	return suite_create("transport");
}
