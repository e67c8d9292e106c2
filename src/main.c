/*
 * pullmail: fetch mail from IMAP and POP3 servers that demand OAuth 2.0 and
 * deliver it locally.  This file holds the command line and the account
 * loop; everything else is a service of the core or a plugin.
 */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "check-account.h"
#include "config.h"
#include "daemon.h"
#include "import.h"
#include "log.h"
#include "oauth.h"
#include "plugin.h"
#include "session.h"
#include "status.h"
#include "transport.h"
#include "util.h"

static const char usage_text[] =
    "usage: pullmail [-c FILE] [-v] [-q] [--trace] [--plugin-dir DIR]\n"
    "                [--check-config] [--syslog] [ACCOUNT...]\n"
    "       pullmail [-c FILE] [-v] [-q] [--syslog] --daemon\n"
    "       pullmail [-c FILE] [-v] authorize ACCOUNT\n"
    "       pullmail [-c FILE] [-v] token ACCOUNT --info\n"
    "       pullmail [-c FILE] status [ACCOUNT...]\n"
    "       pullmail import fetchmailrc|getmailrc [--secrets-dir DIR] "
    "[FILE]\n"
    "       pullmail [-c FILE] [-v] [--plugin-dir DIR] check ACCOUNT\n"
    "       pullmail --version | --help\n";

static const char help_text[] =
    "Fetch mail from IMAP/POP3 servers with OAuth 2.0 and deliver it "
    "locally.\n\n"
    "  -c, --config FILE    configuration file (default: "
    "$XDG_CONFIG_HOME/pullmail/config,\n"
    "                       else " SYSCONFDIR "/pullmail.conf)\n"
    "  -v, --verbose        say more; twice for debugging output\n"
    "  -q, --quiet          print no summary lines\n"
    "      --trace          show the protocol dialogue (secrets redacted)\n"
    "      --plugin-dir DIR load protocol plugins from DIR\n"
    "      --check-config   validate the configuration and exit\n"
    "      --syslog         log to syslog (facility mail)\n"
    "      --daemon         keep fetching until stopped: IMAP IDLE or a\n"
    "                       poll every poll_interval; SIGHUP reloads,\n"
    "                       SIGUSR1 polls now, SIGTERM stops\n"
    "  -V, --version        print the version and exit\n"
    "  -h, --help           print this help and exit\n\n"
    "  authorize ACCOUNT    sign in for a delegated account (oauth_flow\n"
    "                       device or authorization_code); stores the\n"
    "                       refresh token\n"
    "  token ACCOUNT --info show the access token's expiry, scopes and\n"
    "                       claims (never the token itself)\n"
    "  status [ACCOUNT...]  what each account is doing or did last: state,\n"
    "                       last success and error, token expiry\n"
    "  import fetchmailrc|getmailrc [FILE]\n"
    "                       print a pullmail configuration made from a\n"
    "                       fetchmail or getmail6 file; exit 1 when\n"
    "                       something important had no equivalent\n\n"
    "  check ACCOUNT        check every step of one account (DNS, TCP, TLS,\n"
    "                       token and claims, login, folders, delivery)\n"
    "                       and say what to fix; fetches nothing\n\n"
    "Exit status: 0 mail delivered, 1 nothing new, 64 usage, 70 internal,\n"
    "73 delivery failed, 75 temporary failure, 76 protocol or TLS error,\n"
    "77 authentication failed, 78 configuration error.  See pullmail(1).\n";

/* Keep secrets out of core dumps. */
static void
harden(void)
{
	struct rlimit rl = { 0, 0 };

	setrlimit(RLIMIT_CORE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer cannot work in a non-dumpable process. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
	signal(SIGPIPE, SIG_IGN);
}

/* `pullmail authorize ACCOUNT`: the delegated sign-in of one account. */
static int
run_authorize(const struct account *a)
{
	char *err = NULL, *cache_dir;
	int r;

	cache_dir = account_token_dir(a);
	r = oauth_account_authorize(a, cache_dir, &err);
	if (r != PM_OK) {
		log_errx("%s: %s", a->name, err != NULL ? err :
		    "authorization failed");
		free(err);
	}
	free(cache_dir);
	return r == PM_OK ? 0 : status_exit(r);
}

/* `pullmail token ACCOUNT --info`: describe the account's access token. */
static int
run_token_info(const struct account *a)
{
	char *err = NULL, *cache_dir;
	int r;

	if (!account_uses_oauth(a)) {
		log_errx("%s: does not log in with OAuth", a->name);
		return EX_USAGE;
	}
	cache_dir = account_token_dir(a);
	r = oauth_account_info(a, cache_dir, &err);
	if (r != PM_OK) {
		log_errx("%s: %s", a->name, err != NULL ? err :
		    "no token");
		free(err);
	}
	free(cache_dir);
	return r == PM_OK ? 0 : status_exit(r);
}

/* Keep the status file of cfg from now on. */
static void
open_status(const struct config *cfg)
{
	char *path = status_path(cfg);

	if (path != NULL)
		status_open(path);
	free(path);
}

/* `pullmail status [ACCOUNT...]`: the status file of cfg, for the named
 * accounts or all of them; exits as status_report says. */
static int
run_status(const struct config *cfg, int argc, char **argv)
{
	const struct account *a;
	char **names, *path;
	size_t n = 0;
	int code;

	if ((path = status_path(cfg)) == NULL)
		return EX_CONFIG;
	names = xcalloc(cfg->naccounts + (size_t)argc + 1, sizeof *names);
	for (a = cfg->accounts; argc == 0 && a != NULL; a = a->next)
		names[n++] = a->name;
	for (; n < (size_t)argc; n++)
		names[n] = argv[n];
	code = status_report(path, names, n, time(NULL), stdout);
	free(names);
	free(path);
	return code;
}

/* Parse the command line, load the config and fetch the chosen accounts
 * (or run authorize/token); exit with the worst account's code. */
/*
 * Where "import" stands among the arguments, if it is the command: first,
 * or after nothing but -v and -q (`pullmail -v import ...`; import has
 * nothing they would change).  0 when the command is something else.
 */
static int
import_position(int argc, char **argv)
{
	const char *p;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "import") == 0)
			break;
		if (strcmp(argv[i], "--verbose") == 0 ||
		    strcmp(argv[i], "--quiet") == 0)
			continue;
		if (argv[i][0] != '-' || argv[i][1] == '-' ||
		    argv[i][1] == '\0')
			return 0;
		for (p = argv[i] + 1; *p == 'v' || *p == 'q'; p++)
			;
		if (*p != '\0')
			return 0;
	}
	return i < argc ? i : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "trace", no_argument, NULL, 't' },
		{ "plugin-dir", required_argument, NULL, 'P' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "syslog", no_argument, NULL, 'S' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "info", no_argument, NULL, 'I' },
		{ "daemon", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};
	const char *config_path = NULL, *plugdir_opt = NULL, *subcommand = NULL;
	char *default_path = NULL, *err = NULL;
	struct config *cfg = NULL;
	struct account *a;
	int ch, verbose = 0, quiet = 0, trace = 0, check = 0, use_syslog = 0;
	int info = 0, progress, daemon = 0;
	struct run_opts ro;
	int i, code = -1, r;

	harden();
	/* import has options of its own and reads no pullmail config. */
	if ((i = import_position(argc, argv)) > 0)
		return import_main(argc - i, argv + i);
	while ((ch = getopt_long(argc, argv, "c:vqVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = 1;
			break;
		case 't':
			trace = 1;
			break;
		case 'P':
			plugdir_opt = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'S':
			use_syslog = 1;
			break;
		case 'I':
			info = 1;
			break;
		case 'D':
			daemon = 1;
			break;
		case 'V':
			printf("pullmail %s (plugin ABI %u)\n", PACKAGE_VERSION,
			    PM_PLUGIN_ABI);
			return 0;
		case 'h':
			fputs(usage_text, stdout);
			fputs("\n", stdout);
			fputs(help_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	log_init("pullmail", verbose, trace,
	    use_syslog);
	/* A progress line only for a person at a terminal whose screen no
	 * log lines scroll through. */
	progress = !quiet && !use_syslog && !verbose && !trace &&
	    isatty(STDERR_FILENO) && getenv("TERM") != NULL &&
	    strcmp(getenv("TERM"), "dumb") != 0;

	if (argc > 0 && (strcmp(argv[0], "authorize") == 0 ||
	    strcmp(argv[0], "token") == 0)) {
		if (argc != 2 || check || (info != (argv[0][0] == 't'))) {
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
		subcommand = argv[0];
		argc--;
		argv++;
	} else if (argc > 0 && (strcmp(argv[0], "status") == 0 ||
	    strcmp(argv[0], "check") == 0)) {
		if (check || info || daemon || (argv[0][0] == 'c' &&
		    argc != 2)) {
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
		subcommand = argv[0];
		argc--;
		argv++;
	} else if (info || (daemon && (argc > 0 || check))) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}

	if (config_path == NULL)
		config_path = default_path = config_default_path();
	r = config_load(config_path, &cfg, &err);
	if (r != PM_OK && default_path != NULL && access(default_path, F_OK) < 0) {
		/* No -c and nothing at the default places: say where we
		 * looked and what to do. */
		char *user = config_user_path();

		log_errx("no configuration file: write %s%s%s (see "
		    "pullmail.conf(5)) or name one with -c FILE",
		    user != NULL ? user : "", user != NULL ? " or " : "",
		    default_path);
		free(user);
		free(err);
		free(default_path);
		return EX_CONFIG;
	}
	if (r != PM_OK) {
		/* check reports every step on stdout, this one too (once:
		 * not again on stderr). */
		if (subcommand != NULL && strcmp(subcommand, "check") == 0)
			printf("%s: config and secret files: FAILED: %s\n",
			    argv[0], err);
		else
			log_errx("%s", err);
		free(err);
		free(default_path);
		/* A secret command that timed out may work next time. */
		return r == PM_ETEMP ? EX_TEMPFAIL : EX_CONFIG;
	}
	for (i = 0; i < argc; i++) {
		if (config_find(cfg, argv[i]) == NULL) {
			log_errx("%s: no account named '%s'", cfg->file,
			    argv[i]);
			config_free(cfg);
			free(default_path);
			return EX_USAGE;
		}
	}
	if (subcommand != NULL && strcmp(subcommand, "status") == 0) {
		code = run_status(cfg, argc, argv);
		config_free(cfg);
		free(default_path);
		return code;
	}
	if (check) {
		if (!quiet)
			printf("%s: OK, %zu account%s\n", cfg->file,
			    cfg->naccounts, cfg->naccounts == 1 ? "" : "s");
		config_free(cfg);
		free(default_path);
		return 0;
	}

	if (transport_init(&err) != PM_OK) {
		log_errx("%s", err);
		free(err);
		config_free(cfg);
		free(default_path);
		return EX_SOFTWARE;
	}
	if (subcommand == NULL)
		open_status(cfg);
	else if (strcmp(subcommand, "check") == 0) {
		code = check_account(config_find(cfg, argv[0]),
		    plugin_dir(plugdir_opt));
		argc = -1;	/* no fetching */
	} else {
		a = config_find(cfg, argv[0]);
		code = subcommand[0] == 't' ? run_token_info(a) :
		    run_authorize(a);
		argc = -1;	/* no fetching */
	}
	memset(&ro, 0, sizeof ro);
	ro.plugdir = plugin_dir(plugdir_opt);
	ro.quiet = quiet;
	ro.progress = progress;
	if (daemon)
		code = run_daemon(config_path, &cfg, &ro);
	else if (argc >= 0)
		code = run_once(cfg, argv, (size_t)argc, &ro);
	status_close();
	oauth_global_deinit();
	transport_deinit();
	config_free(cfg);
	free(default_path);
	return code < 0 ? EXIT_NOTHING : code;
}
