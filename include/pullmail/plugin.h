/*
 * pullmail plugin contract, part 2: what a backend plugin exports.
 *
 * A plugin is a shared object (libtool -module -avoid-version) exporting
 * exactly one data symbol, PM_PLUGIN_SYMBOL, of type struct pm_plugin.  The
 * core checks magic and abi before it calls anything in it.
 */
#ifndef PULLMAIL_PLUGIN_H
#define PULLMAIL_PLUGIN_H

#include <pullmail/host.h>

#define PM_PLUGIN_MAGIC 0x504d504cu	/* "PMPL" */
#define PM_PLUGIN_ABI 2u		/* bump on any change in include/pullmail/ */
#define PM_PLUGIN_SYMBOL "pullmail_plugin"

#if defined(__GNUC__)
#define PM_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PM_PLUGIN_EXPORT
#endif

struct pm_plugin {
	uint32_t magic;		/* PM_PLUGIN_MAGIC */
	uint32_t abi;		/* PM_PLUGIN_ABI the plugin was built for */
	const char *name;	/* protocol name: "imap", "pop3" */
	unsigned port_tls;	/* default port with implicit TLS (993) */
	unsigned port_plain;	/* default port otherwise (143) */
	/*
	 * Fetch every new message of the session's account and dispose of
	 * the delivered ones on the server as the account says.  Messages
	 * are handed to host->msg_*; the server is told to flag or delete a
	 * message only after host->commit() returned PM_OK for it.  Returns
	 * PM_OK or a status class with *err set (malloc'd).  A failure after
	 * some messages were committed still returns the failure; what was
	 * committed stays committed.
	 */
	int (*fetch)(const struct pm_host *host, struct pm_session *s,
	    char **err);
};

#endif
