/* `pullmail check ACCOUNT`: every step from the configuration to the
 * delivery target of one account, checked in order.  (Named so that it
 * cannot shadow the Check library's <check.h>.) */
#ifndef PM_CHECK_ACCOUNT_H
#define PM_CHECK_ACCOUNT_H

struct account;

/*
 * Check account a (its config already loaded) with the protocol plugins
 * of plugdir: DNS, TCP, TLS, the token request and its claims, the login,
 * each folder (SELECT; POP3: UIDL and LIST), the delivery target.  One
 * line per step on stdout, "ok" or "FAILED" with what to do; stops at the
 * first failure.  Returns 0, or the exit status of the failing step (the
 * table at the top of check-account.c and in pullmail(1)).  Never prints
 * a secret.
 */
int check_account(struct account *a, const char *plugdir);

#endif
