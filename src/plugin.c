/*
 * Finding and loading backend plugins.  A plugin is DIR/NAME.so exporting
 * one struct pm_plugin named PM_PLUGIN_SYMBOL; magic, ABI version and name
 * are checked before anything in it is called.
 */
#include "autoconf.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"
#include "util.h"

#ifndef PM_PLUGIN_INSTALL_DIR
#define PM_PLUGIN_INSTALL_DIR "/usr/local/lib/pullmail"
#endif

/* The plugin directory: --plugin-dir, else $PULLMAIL_PLUGIN_DIR, else the
 * installed one. */
const char *
plugin_dir(const char *dir_opt)
{
	const char *env;

	if (dir_opt != NULL && *dir_opt != '\0')
		return dir_opt;
	env = getenv("PULLMAIL_PLUGIN_DIR");
	if (env != NULL && *env != '\0')
		return env;
	return PM_PLUGIN_INSTALL_DIR;
}

/* Protocol names are short lowercase words: no paths sneak in. */
static int
valid_name(const char *name)
{
	const char *s;

	if (*name == '\0' || strlen(name) > 32)
		return 0;
	for (s = name; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

/* dlopen path and check its magic, ABI and protocol name before use. */
int
plugin_load_file(const char *path, const char *name,
    const struct pm_plugin **p_r, char **err)
{
	const struct pm_plugin *p;
	void *handle;
	const char *e;

	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		e = dlerror();
		return errf(err, PM_EINTERNAL, "%s: cannot load plugin: %s",
		    path, e != NULL ? e : "unknown error");
	}
	dlerror();
	p = dlsym(handle, PM_PLUGIN_SYMBOL);
	if (p == NULL) {
		dlclose(handle);
		return errf(err, PM_EINTERNAL, "%s: not a pullmail plugin "
		    "(no symbol %s)", path, PM_PLUGIN_SYMBOL);
	}
	if (p->magic != PM_PLUGIN_MAGIC) {
		unsigned magic = p->magic;

		dlclose(handle);
		return errf(err, PM_EINTERNAL, "%s: not a pullmail plugin "
		    "(bad magic 0x%08x)", path, magic);
	}
	if (p->abi != PM_PLUGIN_ABI) {
		unsigned abi = p->abi;

		dlclose(handle);
		return errf(err, PM_EINTERNAL, "%s: plugin ABI version %u, "
		    "pullmail %s expects %u; install the plugins that came "
		    "with this pullmail", path, abi, PACKAGE_VERSION,
		    PM_PLUGIN_ABI);
	}
	if (p->name == NULL || strcmp(p->name, name) != 0 ||
	    p->open == NULL || p->select == NULL || p->list == NULL ||
	    p->fetch == NULL || p->dispose == NULL || p->close == NULL) {
		dlclose(handle);
		return errf(err, PM_EINTERNAL, "%s: plugin does not implement "
		    "protocol '%s'", path, name);
	}
	/* The handle stays open for the life of the process. */
	*p_r = p;
	return PM_OK;
}

/* Load the plugin for protocol name from DIR/NAME.so. */
int
plugin_load(const char *dir, const char *name, const struct pm_plugin **p_r,
    char **err)
{
	struct stat sb;
	char *path;
	int r;

	if (!valid_name(name))
		return errf(err, PM_ECONFIG, "invalid protocol name '%s'",
		    name);
	path = xasprintf("%s/%s.so", dir, name);
	if (stat(path, &sb) < 0) {
		r = errf(err, PM_ECONFIG, "no plugin for protocol '%s': %s: "
		    "%s (set --plugin-dir or PULLMAIL_PLUGIN_DIR)", name, path,
		    pm_strerror(errno));
		free(path);
		return r;
	}
	r = plugin_load_file(path, name, p_r, err);
	free(path);
	return r;
}
