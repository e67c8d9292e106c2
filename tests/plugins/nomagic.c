/* A shared object that exports the symbol but is no pullmail plugin. */
#include <pullmail/plugin.h>

PM_PLUGIN_EXPORT const unsigned char pullmail_plugin[64] = { 'n', 'o' };
