#!/bin/sh
# pullmail demo: start a real OAuth 2.0 server (oidc-provider) and a real
# Dovecot on loopback, seed a mailbox, and let pullmail fetch it over IMAPS
# with a client-credentials token into ./demo-Maildir.
#
#   sh demo/run.sh            (or `make demo` in the build directory)
#
# Environment: PULLMAIL (default ./pullmail if it exists, else pullmail on
# PATH), PULLMAIL_TEST_NODE_MODULES (a node_modules with oidc-provider, to
# skip `npm ci`).  The servers live in ./demo-run and are stopped at the end.

top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
SRV_DIR=$top_srcdir/tests/servers
HERE=$(pwd)
SRV_NPM_DIR=$HERE/demo-run/npm
. "$SRV_DIR/servers.sh"

if [ -z "${PULLMAIL:-}" ]; then
	if [ -x ./pullmail ]; then
		PULLMAIL=$HERE/pullmail
		# A build tree: use its plugin, not an installed one.
		if [ -z "${PULLMAIL_PLUGIN_DIR:-}" ] && [ -d ./plugins/.libs ]; then
			PULLMAIL_PLUGIN_DIR=$HERE/plugins/.libs
			export PULLMAIL_PLUGIN_DIR
		fi
	else
		PULLMAIL=pullmail
	fi
fi
command -v "$PULLMAIL" >/dev/null 2>&1 ||
	srv_die "no pullmail: build it first or set PULLMAIL"
missing=$(srv_missing_programs)
[ -z "$missing" ] || srv_die "missing: $missing (see README for the packages)"

run=$HERE/demo-run/servers
tmprun=
mkdir -p "$HERE/demo-run"
if [ "$(id -u)" = 0 ]; then
	# Dovecot's mail processes run as nobody, who must reach the run dir.
	d=$HERE
	while [ "$d" != / ]; do
		case $(stat -c %A "$d") in *[xt]) ;; *) break ;; esac
		d=$(dirname "$d")
	done
	if [ "$d" != / ]; then
		run=$(mktemp -d /tmp/pullmail-demo.XXXXXX)
		tmprun=$run
		echo "demo: $d is closed to others; the servers run in $run"
	fi
fi

trap 'srv_stop_all; [ -z "$tmprun" ] || rm -rf "$tmprun"' EXIT
trap 'exit 130' INT TERM HUP

# A fresh start: the servers' mailbox and pullmail's state are new each time.
rm -rf "$HERE/demo-Maildir"
echo "demo: starting oidc-provider and Dovecot on 127.0.0.1 ..."
srv_init "$run"
srv_start_all
echo "demo: OAuth token endpoint $OAUTH_TOKEN_URL"
echo "demo: IMAPS 127.0.0.1:$IMAPS_PORT (test CA $CA_FILE)"

mailbox=demo@$MAIL_DOMAIN
msgs=$run/seed
mkdir -p "$msgs"
cat >"$msgs/1.eml" <<EOF
From: Ada Lovelace <ada@example.org>
To: Demo User <$mailbox>
Subject: Welcome to pullmail
Date: Mon, 02 Jun 2025 09:00:00 +0000
Message-ID: <welcome.1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello!

This message was fetched over IMAPS, after pullmail obtained an OAuth 2.0
access token with the client-credentials grant, exactly as it does for a
Microsoft 365 mailbox.

Ada
EOF
cat >"$msgs/2.eml" <<EOF
From: Billing <billing@example.net>
To: $mailbox
Subject: Invoice 2025-0042
Date: Tue, 03 Jun 2025 10:15:00 +0000
Message-ID: <invoice-2025-0042@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inv42"

--inv42
Content-Type: text/plain; charset=us-ascii

Please find invoice 2025-0042 attached.

--inv42
Content-Type: text/csv; name="invoice.csv"
Content-Disposition: attachment; filename="invoice.csv"

item,amount
consulting,1200.00
travel,310.50

--inv42--
EOF
cat >"$msgs/3.eml" <<EOF
From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.fr>
To: $mailbox
Subject: =?UTF-8?Q?R=C3=A9union_de_jeudi?=
Date: Wed, 04 Jun 2025 16:40:00 +0200
Message-ID: <reunion@example.fr>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Bonjour, la réunion de jeudi est déplacée à 14 h.
EOF
srv_seed "$mailbox" INBOX "$msgs"/*.eml || srv_die "seeding failed"
echo "demo: seeded $mailbox with 3 messages"

cfg=$run/pullmail.conf
(umask 077 && cat >"$cfg") <<EOF
# The demo account: the app "$APP_ID" may read every mailbox of
# $MAIL_DOMAIN (app-only access, as with Microsoft 365).
[account demo]
server = 127.0.0.1
port = $IMAPS_PORT
tls = implicit
ca_file = $CA_FILE
user = $mailbox
oauth_provider = generic
oauth_token_url = $OAUTH_TOKEN_URL
oauth_client_id = $APP_ID
oauth_client_secret = $APP_SECRET
oauth_scope = imap
keep = yes
deliver = maildir:$HERE/demo-Maildir
state_dir = $run/state
EOF

echo "demo: running $PULLMAIL -v -c $cfg"
echo
"$PULLMAIL" -v -c "$cfg"
rc=$?
echo
case $rc in
0) echo "demo: pullmail delivered mail (exit 0)" ;;
1) echo "demo: pullmail found nothing new (exit 1)" ;;
*) echo "demo: pullmail failed (exit $rc)" ;;
esac
echo "demo: in $HERE/demo-Maildir:"
for f in "$HERE"/demo-Maildir/new/* "$HERE"/demo-Maildir/cur/*; do
	[ -f "$f" ] || continue
	printf '  %-60s %s\n' "$(basename "$f")" \
		"$(sed -n 's/^Subject: //p' "$f" | head -n 1)"
done
[ $rc -le 1 ]
