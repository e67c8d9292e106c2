/* A plugin built for a future ABI: the loader must refuse it. */
#include <pullmail/plugin.h>

static int
badabi_open(const struct pm_host *host, struct pm_session *s,
    struct pm_conn **conn_r, char **err)
{
	(void)host;
	(void)s;
	(void)conn_r;
	(void)err;
	return PM_EINTERNAL;
}

PM_PLUGIN_EXPORT const struct pm_plugin pullmail_plugin = {
	.magic = PM_PLUGIN_MAGIC,
	.abi = PM_PLUGIN_ABI + 1,
	.name = "badabi",
	.port_tls = 1,
	.port_plain = 1,
	.open = badabi_open,
};
