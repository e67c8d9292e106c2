# Real servers on loopback for pullmail's end-to-end tests and the demo.
# Sourced (POSIX sh + local) by tests/e2e/lib.sh and demo/run.sh.
#
#   srv_init RUNDIR           create the run directory (world-traversable:
#                             Dovecot's mail processes run as nobody)
#   srv_node_modules          locate or install oidc-provider and
#                             hoodiecrow-imap; sets SRV_NODE_MODULES
#   srv_certs                 test CA, server cert (localhost, 127.0.0.1, ::1),
#                             an unrelated CA; sets CA_FILE, OTHER_CA_FILE
#   srv_oauth_start           start oidc-provider; sets OAUTH_PORT, OAUTH_URL
#   srv_dovecot_start         start Dovecot; sets IMAP_PORT IMAPS_PORT
#                             POP3_PORT POP3S_PORT
#   srv_start_all             all of the above, in order
#   srv_oauth_stop            stop oidc-provider (srv_oauth_start "$OAUTH_PORT"
#                             starts it again)
#   srv_oauth_restart         restart oidc-provider on its port (it forgets
#                             every token it issued)
#   srv_stop_all              stop whatever was started (never hangs)
#   srv_closed_port           CLOSED_PORT: a port held refusing connections
#   srv_seed USER FOLDER FILE...      put messages into USER's Maildir
#   srv_maildir USER [FOLDER] the server's Maildir of USER/FOLDER
#   srv_server_files USER [FOLDER]    list the server's message files
#   srv_doveadm ARG...        doveadm against this instance
#   srv_flags USER [FOLDER]   "UID FLAGS" per message, through doveadm
#   srv_count USER [FOLDER]   number of messages, through doveadm
#   srv_token CLIENT SECRET SCOPE [CURL-ARG...]
#                             an access token straight from the server
#   srv_token_requests CLIENT successful token requests logged so far
#   srv_hoodiecrow_start NAME CONFIG  start hoodiecrow-imap (a second IMAP
#                             server, in memory) with the JSON CONFIG
#                             (tests/servers/hoodiecrow.mjs); sets HC_PORT
#   srv_hoodiecrow_dump NAME  what that server holds: "FOLDER UID SHA256
#                             FLAGS" per message
#
# SRV_OAUTH_EXTRA_CLIENTS (optional): more client objects (JSON, comma
# separated) for oidc-provider's configuration, e.g. delegated clients.
# SRV_PASSWORD_USERS (optional): more users (space separated) that, like
# $PASSWORD_USER, log in with the password $PASSWORD_SECRET (the benchmark's
# peers, which cannot log in with OAuth 2.0, need them).
# SRV_DOVECOT_EXTRA (optional): lines appended to the rendered dovecot.conf
# (the scale benchmark raises Dovecot's connection limits with them).
# SRV_OAUTH_JWT=1 (optional): access tokens are JWTs (RS256) that Dovecot
# validates locally, as Exchange Online does with Microsoft's: no
# introspection request per login (the scale benchmark), and so no
# revocation either: a token stays good until it expires, even across
# srv_oauth_restart.  The signing key ($SRV_RUN/certs/jwt.key) is made once
# per run; its public half is in Dovecot's key dictionary
# ($SRV_RUN/jwt-keys/default/RS256/$SRV_JWT_KID).  Default: opaque tokens
# and introspection, which the tests that count INTROSPECT lines or revoke
# tokens need.
#
# Fixed names (clients, tenant, domain) are set below; srv_init makes fresh
# random secrets for every run.  The OAuth server's log ($OAUTH_LOG) has one
# line per token request (TOKEN client=... status=... access_token=...),
# followed by one with that exchange's other secrets in full (SECRETS
# issued_rt=... code=... code_verifier=...; issued_code=... when a redirect
# carries an authorization code), and per introspection (INTROSPECT ...
# active=...).
#
# The needed programs: node, npm (only if node_modules must be installed),
# dovecot, doveadm, certtool, python3, curl.

# The application every test uses: one client of one tenant, whose token
# opens every mailbox of example.test.
MAIL_DOMAIN=example.test
APP_ID=pullmail-app
BASIC_ID=pullmail-basic
SHORT_ID=pullmail-short
POP3ONLY_ID=pullmail-pop3only
INTRO_ID=dovecot-introspection
# The HarePoint form uses Microsoft's shapes: GUIDs for client and tenant.
MS_CLIENT_ID=3f2b8c1e-7d4a-4e6b-9a15-2c8d0f6e4b71
MS_TENANT_ID=5e0d9a6c-1b7f-4c2e-8d3a-9f4b6e2c1a08
PASSWORD_USER=bob@$MAIL_DOMAIN
# SRV_OAUTH_JWT=1: the key id in the JWT header, and the resource server
# (claim aud) every token is issued for, Exchange Online's.
SRV_JWT_KID=pullmail-e2e
SRV_JWT_AUDIENCE=https://outlook.office365.com

srv_die() {
	echo "servers: $*" >&2
	exit 1
}

# Where servers.sh lives: the source tree's tests/servers.
: "${SRV_DIR:?SRV_DIR must name the tests/servers directory}"

# python3 from the system if there is one (a pyenv shim is slow to start).
if [ -x /usr/bin/python3 ]; then
	SRV_PYTHON=/usr/bin/python3
else
	SRV_PYTHON=python3
fi

# As root, Dovecot's mail processes run as nobody; otherwise everything runs
# as the calling user.
if [ "$(id -u)" = 0 ]; then
	SRV_MAIL_USER=nobody
	SRV_MAIL_GROUP=nogroup
	SRV_UNPRIVILEGED='#'
else
	SRV_MAIL_USER=$(id -un)
	SRV_MAIL_GROUP=$(id -gn)
	SRV_UNPRIVILEGED=
fi

srv_have() {
	command -v "$1" >/dev/null 2>&1
}

# Programs the servers need; prints the missing ones.
srv_missing_programs() {
	local p missing=
	for p in node dovecot doveadm certtool python3 curl; do
		srv_have "$p" || missing="$missing $p"
	done
	echo "${missing# }"
}

# A random hex string of $1 bytes.
srv_random() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

srv_init() {
	SRV_RUN=$1
	rm -rf "$SRV_RUN"
	mkdir -p "$SRV_RUN" || srv_die "cannot create $SRV_RUN"
	SRV_RUN=$(cd "$SRV_RUN" && pwd)
	chmod 0755 "$SRV_RUN"
	mkdir -p "$SRV_RUN/certs" "$SRV_RUN/mail" "$SRV_RUN/home"
	SRV_PIDS=
	SRV_DOVECOT_CONF=
	SRV_BASE=
	APP_SECRET=app-$(srv_random 16)
	BASIC_SECRET=basic-$(srv_random 16)
	SHORT_SECRET=short-$(srv_random 16)
	POP3ONLY_SECRET=pop3only-$(srv_random 16)
	INTRO_SECRET=intro-$(srv_random 16)
	MS_CLIENT_SECRET=ms~$(srv_random 16)
	PASSWORD_SECRET=pw-$(srv_random 8)
	# As root, every directory above the run dir must be traversable by
	# nobody.
	local d=$SRV_RUN
	[ "$(id -u)" = 0 ] || d=/
	while [ "$d" != / ] && [ -n "$d" ]; do
		case $(stat -c %A "$d") in
		*[xt]) ;;
		*) srv_die "$d is not traversable by others (Dovecot runs mail processes as nobody); set PULLMAIL_TEST_RUN_BASE";;
		esac
		d=$(dirname "$d")
	done
}

# Give the mail files to the mail processes' user (as root only).
srv_chown() {
	[ "$(id -u)" = 0 ] || return 0
	chown -R "$SRV_MAIL_USER:$SRV_MAIL_GROUP" "$@"
}

# A lock-protected `npm ci` into DIR (package.json and lock copied there).
srv_npm_ci() {
	local dir=$1 lockfile stamp want
	mkdir -p "$dir" || return 1
	if [ "$(cd "$dir" && pwd)" != "$(cd "$SRV_DIR" && pwd)" ]; then
		cp "$SRV_DIR/package.json" "$SRV_DIR/package-lock.json" "$dir/" || return 1
		chmod u+w "$dir/package.json" "$dir/package-lock.json"
	fi
	want=$(cksum <"$SRV_DIR/package-lock.json")
	stamp=$dir/node_modules/.pullmail-stamp
	lockfile=$dir/.npm-ci.lock
	(
		if srv_have flock; then
			flock 9 || exit 1
		fi
		if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
			exit 0
		fi
		echo "servers: npm ci in $dir" >&2
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error \
			</dev/null >"$dir/npm-ci.log" 2>&1) || {
			cat "$dir/npm-ci.log" >&2
			exit 1
		}
		echo "$want" >"$stamp"
	) 9>"$lockfile"
}

# The npm packages the servers need (tests/servers/package.json).
SRV_NPM_PACKAGES="oidc-provider hoodiecrow-imap"

# Whether node_modules directory $1 holds every package of package.json.
srv_npm_complete() {
	local pkg
	for pkg in $SRV_NPM_PACKAGES; do
		[ -f "$1/$pkg/package.json" ] || return 1
	done
}

# node_modules for oidc-provider and hoodiecrow-imap:
# $PULLMAIL_TEST_NODE_MODULES, the source tree's tests/servers/node_modules
# when it holds both, else `npm ci` under $SRV_NPM_DIR (in the build tree:
# the source tree may be read-only).
srv_node_modules() {
	if [ -n "${PULLMAIL_TEST_NODE_MODULES:-}" ]; then
		SRV_NODE_MODULES=$PULLMAIL_TEST_NODE_MODULES
	elif srv_npm_complete "$SRV_DIR/node_modules"; then
		SRV_NODE_MODULES=$SRV_DIR/node_modules
	else
		: "${SRV_NPM_DIR:?SRV_NPM_DIR must name a writable directory}"
		srv_have npm || srv_die "npm is needed to install $SRV_NPM_PACKAGES"
		srv_npm_ci "$SRV_NPM_DIR" || srv_die "npm ci failed in $SRV_NPM_DIR"
		SRV_NODE_MODULES=$SRV_NPM_DIR/node_modules
	fi
	# hoodiecrow-imap is checked where it is started: the demo does
	# without it.
	[ -f "$SRV_NODE_MODULES/oidc-provider/package.json" ] ||
		srv_die "no oidc-provider in $SRV_NODE_MODULES"
	SRV_NODE_MODULES=$(cd "$SRV_NODE_MODULES" && pwd)
}

srv_certs() {
	local c=$SRV_RUN/certs
	cat >"$c/ca.tmpl" <<-EOF
	cn = "pullmail test CA"
	organization = "pullmail tests"
	serial = 1
	expiration_days = 30
	ca
	cert_signing_key
	crl_signing_key
	EOF
	cat >"$c/server.tmpl" <<-EOF
	cn = "localhost"
	organization = "pullmail tests"
	serial = 2
	expiration_days = 30
	dns_name = "localhost"
	ip_address = "127.0.0.1"
	ip_address = "::1"
	tls_www_server
	signing_key
	encryption_key
	EOF
	cat >"$c/other-ca.tmpl" <<-EOF
	cn = "unrelated CA"
	organization = "somebody else"
	serial = 3
	expiration_days = 30
	ca
	cert_signing_key
	EOF
	(
		cd "$c" || exit 1
		for k in ca server other-ca; do
			certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
				--outfile "$k.key" || exit 1
		done
		certtool --generate-self-signed --load-privkey ca.key \
			--template ca.tmpl --outfile ca.pem &&
		certtool --generate-certificate --load-privkey server.key \
			--load-ca-certificate ca.pem --load-ca-privkey ca.key \
			--template server.tmpl --outfile server.pem &&
		certtool --generate-self-signed --load-privkey other-ca.key \
			--template other-ca.tmpl --outfile other-ca.pem
	) >"$c/certtool.log" 2>&1 || {
		cat "$c/certtool.log" >&2
		srv_die "certificate generation failed"
	}
	chmod 0644 "$c"/*.pem "$c"/*.key
	CA_FILE=$c/ca.pem
	OTHER_CA_FILE=$c/other-ca.pem
}

srv_oauth_config() {
	cat <<-EOF
	{
	  "domain": "$MAIL_DOMAIN",
	  "tenants": ["$MS_TENANT_ID", "contoso.onmicrosoft.com"],
	  "clients": [
	    { "client_id": "$APP_ID", "client_secret": "$APP_SECRET",
	      "scope": "imap pop3" },
	    { "client_id": "$BASIC_ID", "client_secret": "$BASIC_SECRET",
	      "scope": "imap pop3", "auth": "basic" },
	    { "client_id": "$SHORT_ID", "client_secret": "$SHORT_SECRET",
	      "scope": "imap pop3", "ttl": ${SRV_SHORT_TTL:-5} },
	    { "client_id": "$POP3ONLY_ID", "client_secret": "$POP3ONLY_SECRET",
	      "scope": "pop3" },
	    { "client_id": "$MS_CLIENT_ID", "client_secret": "$MS_CLIENT_SECRET",
	      "scope": "imap pop3" },
	    { "client_id": "$INTRO_ID", "client_secret": "$INTRO_SECRET",
	      "scope": "", "auth": "basic" }${SRV_OAUTH_EXTRA_CLIENTS:+,
	    $SRV_OAUTH_EXTRA_CLIENTS}
	  ]${SRV_JWT_CONFIG:+,
	  $SRV_JWT_CONFIG}
	}
	EOF
}

# SRV_OAUTH_JWT=1: the RSA key that signs access tokens (kept across
# srv_oauth_restart: Dovecot caches the public key by its id), its public
# half where Dovecot's local_validation_key_dict looks for it (the file
# AZP/ALG/KID; oidc-provider sets no azp, so Dovecot takes "default"), and
# the "jwt" member of oidc-provider's configuration.
srv_jwt_key() {
	local c=$SRV_RUN/certs d=$SRV_RUN/jwt-keys/default/RS256
	if [ ! -f "$c/jwt.key" ]; then
		mkdir -p "$d" || srv_die "cannot create $d"
		(
			certtool --generate-privkey --key-type=rsa --bits=2048 \
				--outfile "$c/jwt.key" &&
			certtool --load-privkey "$c/jwt.key" --pubkey-info \
				--no-text --outfile "$d/$SRV_JWT_KID"
		) >"$c/jwt-certtool.log" 2>&1 || {
			cat "$c/jwt-certtool.log" >&2
			srv_die "JWT signing key generation failed"
		}
		chmod 0755 "$SRV_RUN/jwt-keys" "$SRV_RUN/jwt-keys/default" "$d"
		chmod 0644 "$d/$SRV_JWT_KID"
	fi
	SRV_JWT_CONFIG="\"jwt\": { \"key\": \"$c/jwt.key\", \"kid\": \"$SRV_JWT_KID\", \"resource\": \"$SRV_JWT_AUDIENCE\" }"
}

# srv_node_start DIR WHAT SCRIPT ARG...: run node SCRIPT ARG... in the
# background (output in DIR/node.out, pid in DIR/pid) and wait until it
# has written its port to DIR/port; WHAT names it in errors.
srv_node_start() {
	local r=$1 what=$2 pid i=0
	shift 2
	rm -f "$r/port"
	node "$@" </dev/null >>"$r/node.out" 2>&1 &
	pid=$!
	echo "$pid" >"$r/pid"
	SRV_PIDS="$SRV_PIDS $pid"
	while [ ! -s "$r/port" ]; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
			cat "$r/node.out" >&2
			srv_die "$what did not start"
		fi
		sleep 0.05
	done
}

# srv_oauth_start [PORT]: PORT 0 or none picks a free one.
srv_oauth_start() {
	local r=$SRV_RUN/oauth
	mkdir -p "$r"
	cp "$SRV_DIR/oauth-server.mjs" "$r/"
	ln -sfn "$SRV_NODE_MODULES" "$r/node_modules"
	SRV_JWT_CONFIG=
	[ "${SRV_OAUTH_JWT:-0}" != 1 ] || srv_jwt_key
	srv_oauth_config >"$r/config.json"
	OAUTH_LOG=$r/oauth.log
	: >"$OAUTH_LOG"
	srv_node_start "$r" oidc-provider "$r/oauth-server.mjs" \
		--config "$r/config.json" --port "${1:-0}" \
		--port-file "$r/port" --log "$OAUTH_LOG"
	OAUTH_PORT=$(cat "$r/port")
	OAUTH_URL=http://127.0.0.1:$OAUTH_PORT
	OAUTH_TOKEN_URL=$OAUTH_URL/token
	"$SRV_PYTHON" "$SRV_DIR/probe.py" wait-http \
		"$OAUTH_URL/.well-known/openid-configuration" 15 ||
		srv_die "oidc-provider does not answer"
}

# Restart the OAuth server on its port: every token it issued is forgotten
# (its store is in memory), as if they had all been revoked.
# May run in a subshell: the new pid is found by srv_stop_all in the pid file.
srv_oauth_restart() {
	srv_oauth_stop
	srv_oauth_start "$OAUTH_PORT"
}

# Stop oidc-provider and wait (at most 5 s) until it is gone.
srv_oauth_stop() {
	local pid i=0
	pid=$(cat "$SRV_RUN/oauth/pid")
	kill "$pid" 2>/dev/null
	while srv_running "$pid" && [ $i -lt 100 ]; do
		i=$((i + 1))
		sleep 0.05
	done
}

# The addresses Dovecot listens on, in SRV_LISTEN: 127.0.0.2 carries the
# same certificate (whose names do not include it) for the wrong-host-name
# test; ::1 when the machine has IPv6 (SRV_HAVE_IPV6=1).
srv_listen_addrs() {
	SRV_LISTEN="127.0.0.1, 127.0.0.2"
	SRV_HAVE_IPV6=0
	if "$SRV_PYTHON" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' \
		2>/dev/null; then
		SRV_LISTEN="$SRV_LISTEN, ::1"
		SRV_HAVE_IPV6=1
	fi
}

# srv_oauth2_conf SCOPE: Dovecot's oauth2 passdb settings for one protocol.
srv_oauth2_conf() {
	if [ "${SRV_OAUTH_JWT:-0}" = 1 ]; then
		# Local validation (SRV_OAUTH_JWT=1): Dovecot checks the RS256
		# signature with the key of the header's kid, exp (and nbf,
		# iat), the issuer, the audience, every listed scope against
		# the claim scope, and mail_user against the login's domain.
		# There is no "active" claim to check: a JWT is good until it
		# expires.
		cat <<-EOF
		introspection_mode = local
		local_validation_key_dict = fs:posix:prefix=$SRV_RUN/jwt-keys/
		issuers = $OAUTH_URL
		audience = $SRV_JWT_AUDIENCE
		username_attribute = mail_user
		username_format = %Ld
		scope = $1
		EOF
		return
	fi
	cat <<-EOF
	introspection_mode = post
	introspection_url = http://$INTRO_ID:$INTRO_SECRET@127.0.0.1:$OAUTH_PORT/token/introspection
	username_attribute = mail_user
	username_format = %Ld
	active_attribute = active
	active_value = true
	scope = $1
	timeout_msecs = 10000
	EOF
}

srv_dovecot_start() {
	local try=0
	# Free ports are picked, released, then bound by Dovecot: another test
	# running in parallel may take one in between, so try again.
	while ! srv_dovecot_try; do
		try=$((try + 1))
		if [ $try -ge 3 ]; then
			cat "$SRV_RUN/dovecot.out" "$SRV_RUN/dovecot.log" >&2 2>/dev/null
			srv_die "dovecot did not start"
		fi
	done
	"$SRV_PYTHON" "$SRV_DIR/probe.py" wait-imap 127.0.0.1 "$IMAPS_PORT" implicit \
		"$CA_FILE" 15 &&
	"$SRV_PYTHON" "$SRV_DIR/probe.py" wait-imap 127.0.0.1 "$IMAP_PORT" starttls \
		"$CA_FILE" 15 || {
		cat "$SRV_RUN/dovecot.log" >&2 2>/dev/null
		srv_die "dovecot does not offer AUTH=XOAUTH2"
	}
}

# Render the configuration with fresh ports and start Dovecot once.
srv_dovecot_try() {
	local ports u conf=$SRV_RUN/dovecot.conf
	ports=$("$SRV_PYTHON" "$SRV_DIR/probe.py" freeports 5) || srv_die "no free ports"
	# shellcheck disable=SC2086
	set -- $ports
	IMAP_PORT=$1 IMAPS_PORT=$2 POP3_PORT=$3 POP3S_PORT=$4
	# LMTP (delivery tests): this port, and the socket $SRV_BASE/lmtp.
	LMTP_PORT=$5
	srv_listen_addrs
	# A fresh base_dir: a stale one slows failed logins down (anvil).
	[ -z "${SRV_BASE:-}" ] || rm -rf "$SRV_BASE"
	SRV_BASE=$(mktemp -d /tmp/pm-dovecot.XXXXXX) || srv_die "mktemp failed"
	chmod 0755 "$SRV_BASE"
	echo "$SRV_BASE" >"$SRV_RUN/dovecot-base"
	rm -rf "$SRV_RUN/dovecot-state"
	mkdir -p "$SRV_RUN/dovecot-state"
	srv_oauth2_conf imap >"$SRV_RUN/oauth2-imap.conf"
	srv_oauth2_conf pop3 >"$SRV_RUN/oauth2-pop3.conf"
	for u in "$PASSWORD_USER" ${SRV_PASSWORD_USERS:-}; do
		echo "$u:{PLAIN}$PASSWORD_SECRET"
	done >"$SRV_RUN/passwd"
	# LMTP users with a 100 kB quota (see dovecot.conf.in).
	{
		echo "lmtp-quota:::::::userdb_quota_rule=*:storage=100k"
		echo "lmtp-quota-temp:::::::userdb_quota_rule=*:storage=100k userdb_quota_full_tempfail=yes"
	} >"$SRV_RUN/lmtp-users"
	chmod 0644 "$SRV_RUN/oauth2-imap.conf" "$SRV_RUN/oauth2-pop3.conf" \
		"$SRV_RUN/passwd" "$SRV_RUN/lmtp-users"
	sed -e "s|@RUN@|$SRV_RUN|g" \
	    -e "s|@BASE@|$SRV_BASE|g" \
	    -e "s|@ID@|$$|g" \
	    -e "s|@LISTEN@|$SRV_LISTEN|g" \
	    -e "s|@AUTH_DEBUG@|${SRV_AUTH_DEBUG:-no}|g" \
	    -e "s|@MAIL_USER@|$SRV_MAIL_USER|g" \
	    -e "s|@MAIL_GROUP@|$SRV_MAIL_GROUP|g" \
	    -e "s|@UNPRIVILEGED@|$SRV_UNPRIVILEGED|g" \
	    -e "s|@IMAP_PORT@|$IMAP_PORT|g" \
	    -e "s|@IMAPS_PORT@|$IMAPS_PORT|g" \
	    -e "s|@POP3_PORT@|$POP3_PORT|g" \
	    -e "s|@POP3S_PORT@|$POP3S_PORT|g" \
	    -e "s|@LMTP_PORT@|$LMTP_PORT|g" \
	    "$SRV_DIR/dovecot.conf.in" >"$conf" || srv_die "cannot render $conf"
	[ -z "${SRV_DOVECOT_EXTRA:-}" ] ||
		printf '%s\n' "$SRV_DOVECOT_EXTRA" >>"$conf" || srv_die "cannot render $conf"
	chmod 0644 "$conf"
	srv_chown "$SRV_RUN/mail" "$SRV_RUN/home"
	dovecot -c "$conf" </dev/null >>"$SRV_RUN/dovecot.out" 2>&1 || return 1
	SRV_DOVECOT_CONF=$conf
}

srv_start_all() {
	srv_node_modules
	srv_certs
	srv_oauth_start
	srv_dovecot_start
}

# Whether process $1 is still running (a zombie waiting for init is not).
srv_running() {
	local st
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# Stop Dovecot: SIGTERM, a short grace, then SIGKILL to its process group
# (the master is a session leader; a clean shutdown takes a second or more).
srv_stop_dovecot() {
	local conf=$SRV_DOVECOT_CONF pid i
	[ -n "$conf" ] || return 0
	SRV_DOVECOT_CONF=
	pid=$(cat "$SRV_BASE/master.pid" 2>/dev/null)
	case $pid in ''|*[!0-9]*) rm -rf "$SRV_BASE"; return 0 ;; esac
	kill -TERM "$pid" 2>/dev/null
	i=0
	while srv_running "$pid"; do
		i=$((i + 1))
		if [ $i -eq "${SRV_STOP_GRACE:-10}" ]; then
			kill -KILL -- "-$pid" 2>/dev/null
		elif [ $i -gt 100 ]; then
			break
		fi
		sleep 0.05
	done
	rm -rf "$SRV_BASE"
}

# srv_closed_port: set CLOSED_PORT to a port on 127.0.0.1 that refuses
# every connection and that no other server (of a test running beside this
# one) can take meanwhile: probe.py holds it bound without listening until
# srv_stop_all.  Call it from the script, not in a case: a case runs in a
# subshell, whose SRV_PIDS srv_stop_all never sees.
srv_closed_port() {
	local f=$SRV_RUN/closed-port i=0
	rm -f "$f"
	"$SRV_PYTHON" "$SRV_DIR/probe.py" closedport "$f" &
	SRV_PIDS="$SRV_PIDS $!"
	until [ -s "$f" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || srv_die "probe.py closedport did not start"
		sleep 0.05
	done
	CLOSED_PORT=$(cat "$f")
}

srv_stop_all() {
	local pid
	srv_stop_dovecot
	[ -z "${SRV_BASE:-}" ] || rm -rf "$SRV_BASE"
	# The OAuth server may have been restarted in a subshell.
	pid=$(cat "$SRV_RUN/oauth/pid" 2>/dev/null)
	case $pid in ''|*[!0-9]*) ;; *) SRV_PIDS="$SRV_PIDS $pid" ;; esac
	for pid in $SRV_PIDS; do
		kill "$pid" 2>/dev/null
	done
	for pid in $SRV_PIDS; do
		wait "$pid" 2>/dev/null
	done
	SRV_PIDS=
}

# The Maildir of USER's FOLDER on the server (INBOX: the root).
srv_maildir() {
	local user=$1 folder=${2:-INBOX}
	local d=$SRV_RUN/mail/$(echo "$user" | tr 'A-Z' 'a-z')
	if [ "$folder" = INBOX ]; then
		echo "$d"
	else
		echo "$d/.$(echo "$folder" | tr / .)"
	fi
}

# srv_seed USER FOLDER FILE...: each FILE becomes one new message.
SRV_SEQ=0
srv_seed() {
	local user=$1 folder=$2 d f name
	shift 2
	d=$(srv_maildir "$user" "$folder")
	mkdir -p "$d/new" "$d/cur" "$d/tmp" || return 1
	for f in "$@"; do
		SRV_SEQ=$((SRV_SEQ + 1))
		name=1700000000.M${SRV_SEQ}P$$.seed
		# A hard link saves copying large messages; Dovecot never
		# rewrites a Maildir file, it only renames or unlinks it.
		ln "$f" "$d/tmp/$name" 2>/dev/null || cp "$f" "$d/tmp/$name" || return 1
		mv "$d/tmp/$name" "$d/new/$name" || return 1
	done
	# Subscribe so that clients listing folders see it too.
	if [ "$folder" != INBOX ] && [ -d "$(srv_maildir "$user")" ]; then
		grep -qx "$folder" "$(srv_maildir "$user")/subscriptions" 2>/dev/null ||
			echo "$folder" >>"$(srv_maildir "$user")/subscriptions"
	fi
	srv_chown "$SRV_RUN/mail/$(echo "$user" | tr 'A-Z' 'a-z')"
}

# The message files the server holds for USER/FOLDER, one path a line.
srv_server_files() {
	local d
	d=$(srv_maildir "$1" "${2:-INBOX}")
	find "$d/new" "$d/cur" -type f 2>/dev/null | sort
}

srv_doveadm() {
	doveadm -c "$SRV_RUN/dovecot.conf" "$@" </dev/null
}

# "UID FLAGS..." per message of USER/FOLDER, as Dovecot sees it.
srv_flags() {
	srv_doveadm -f flow fetch -u "$1" 'uid flags' mailbox "${2:-INBOX}" all |
		sed -e 's/^uid=//' -e 's/ flags=/ /'
}

srv_count() {
	srv_doveadm -f flow mailbox status -u "$1" messages "${2:-INBOX}" |
		sed -n 's/.*messages=\([0-9]*\).*/\1/p'
}

# srv_token CLIENT SECRET SCOPE [CURL-ARG...]: an access token straight from
# the OAuth server (client_secret_post), the curl arguments added to the
# request (e.g. a resource indicator).
srv_token() {
	local id=$1 secret=$2 scope=$3
	shift 3
	curl -s -S --max-time 10 -d grant_type=client_credentials \
		--data-urlencode "client_id=$id" --data-urlencode "client_secret=$secret" \
		--data-urlencode "scope=$scope" "$@" "$OAUTH_TOKEN_URL" |
		"$SRV_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# srv_hoodiecrow_start NAME CONFIG: start hoodiecrow-imap under
# $SRV_RUN/hoodiecrow-NAME with the JSON CONFIG (see hoodiecrow.mjs) on a
# free port of 127.0.0.1; sets HC_PORT.  srv_stop_all stops it.
srv_hoodiecrow_start() {
	local r=$SRV_RUN/hoodiecrow-$1
	[ -f "$SRV_NODE_MODULES/hoodiecrow-imap/package.json" ] ||
		srv_die "no hoodiecrow-imap in $SRV_NODE_MODULES (tests/servers/package.json)"
	mkdir -p "$r"
	cp "$SRV_DIR/hoodiecrow.mjs" "$r/"
	ln -sfn "$SRV_NODE_MODULES" "$r/node_modules"
	cp "$2" "$r/config.json" || srv_die "cannot copy $2"
	srv_node_start "$r" hoodiecrow "$r/hoodiecrow.mjs" \
		--config "$r/config.json" --port 0 \
		--port-file "$r/port" --dump "$r/dump"
	HC_PORT=$(cat "$r/port")
}

# srv_hoodiecrow_dump NAME: the messages hoodiecrow NAME holds, one
# "FOLDER UID SHA256 FLAGS" line each (FLAGS comma-separated, "-": none).
srv_hoodiecrow_dump() {
	local r=$SRV_RUN/hoodiecrow-$1 i=0
	rm -f "$r/dump"
	kill -USR2 "$(cat "$r/pid")" || srv_die "hoodiecrow $1 is not running"
	while [ ! -f "$r/dump" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && srv_die "hoodiecrow $1 wrote no dump"
		sleep 0.05
	done
	cat "$r/dump"
}

# Successful token requests of CLIENT logged by the OAuth server so far.
srv_token_requests() {
	grep -c "TOKEN client=$1 .*status=200" "$OAUTH_LOG"
}
