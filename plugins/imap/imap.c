/* placeholder: being written */
#include <pullmail/plugin.h>

static int
imap_fetch(const struct pm_host *host, struct pm_session *s, char **err)
{
	(void)host;
	(void)s;
	(void)err;
	return PM_EINTERNAL;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI,
	.name = "imap",
	.port_tls = 993,
	.port_plain = 143,
	.fetch = imap_fetch,
};
