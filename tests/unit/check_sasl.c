/* placeholder: being written */
#include "config.h"
#include "suites.h"

Suite *
suite_sasl(void)
{
	return suite_create("sasl");
}
