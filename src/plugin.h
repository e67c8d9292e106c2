/* Finding and loading backend plugins with dlopen. */
#ifndef PM_PLUGIN_LOADER_H
#define PM_PLUGIN_LOADER_H

#include <pullmail/plugin.h>

/*
 * The directory plugins are loaded from: dir_opt (--plugin-dir) if not
 * NULL, else $PULLMAIL_PLUGIN_DIR, else the installed $(pkglibdir).
 */
const char *plugin_dir(const char *dir_opt);

/*
 * Load DIR/NAME.so and check its magic, ABI version and name.  The handle
 * stays open for the life of the process.  Errors: PM_ECONFIG for an unknown
 * protocol or a missing file, PM_EINTERNAL for a module that is not a
 * pullmail plugin or was built for another ABI ("FILE: plugin ABI 2, pullmail
 * expects 1").
 */
int plugin_load(const char *dir, const char *name,
    const struct pm_plugin **p_r, char **err);

/* Load an exact file (tests). */
int plugin_load_file(const char *path, const char *name,
    const struct pm_plugin **p_r, char **err);

#endif
