#!/bin/sh
# Delegated OAuth 2.0 against the real oidc-provider and Dovecot: the test
# plays the human on the provider's own pages (tests/servers/human.py).
#   - device authorization grant end to end, then a fetch with the delegated
#     token, then (short TTL) one with a refreshed token, no visible error;
#   - refresh-token rotation persisted; a rotated-away refresh token is
#     never sent again (the provider would refuse it and revoke the grant);
#   - two processes needing a refresh at once: one refresh;
#   - authorization code + PKCE through pullmail's loopback listener; a
#     redirect with a wrong state is refused;
#   - a refused refresh token: exit 77, one line saying what to run,
#     notify_command run once per event, the message in its environment;
#   - private_key_jwt: a client assertion signed with a certificate's key
#     accepted by the provider; a foreign key refused (oidc-provider
#     ignores the x5t thumbprint Microsoft needs: tests/unit/check_crypto.c
#     checks it and the whole assertion);
#   - OpenID discovery from oauth_issuer (token and device endpoints), and
#     a document naming another issuer refused;
#   - secrets from a command (secret manager), from a systemd credential,
#     and a token from oauth_token_command;
#   - no secret the provider issued or received (access and refresh
#     tokens, rotated-away ones too, authorization codes, PKCE verifiers,
#     device codes, client assertions; it logs them all in full) in any
#     output, even with -vv (curl's verbose mode) and --trace.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

DEV_ID=pullmail-delegated
DEVSHORT_ID=pullmail-delegated-short
JWT_ID=pullmail-certificate
e2e_require certtool
e2e_make_run_dir
# The app's certificate and key (private_key_jwt), and a foreign key.
KEYS=$E2E_RUN/jwt-keys
mkdir -p "$KEYS"
printf 'cn = pullmail test app\nexpiration_days = 30\nsigning_key\n' \
	>"$KEYS/cert.tmpl"
for k in app other; do
	certtool --generate-privkey --key-type=rsa --bits=2048 \
		--outfile "$KEYS/$k.key" >/dev/null 2>&1 &&
	certtool --generate-self-signed --load-privkey "$KEYS/$k.key" \
		--template "$KEYS/cert.tmpl" --outfile "$KEYS/$k.pem" \
		>/dev/null 2>&1 || { echo "certtool failed"; exit 1; }
	chmod 0600 "$KEYS/$k.key"
done
SRV_OAUTH_EXTRA_CLIENTS='{ "client_id": "'$DEV_ID'", "auth": "none",
	      "scope": "imap pop3 offline_access",
	      "grant_types": ["urn:ietf:params:oauth:grant-type:device_code",
	        "authorization_code", "refresh_token"],
	      "redirect_uris": ["http://127.0.0.1/"] },
	    { "client_id": "'$DEVSHORT_ID'", "auth": "none", "ttl": 4,
	      "scope": "imap pop3 offline_access",
	      "grant_types": ["urn:ietf:params:oauth:grant-type:device_code",
	        "authorization_code", "refresh_token"],
	      "redirect_uris": ["http://127.0.0.1/"] },
	    { "client_id": "'$JWT_ID'", "auth": "private_key_jwt",
	      "jwks_pem": "'$KEYS/app.pem'", "scope": "imap pop3" }'
export SRV_OAUTH_EXTRA_CLIENTS
e2e_start_servers
HUMAN="$SRV_PYTHON $SRV_DIR/human.py"

# delegated_account NAME CLIENT FLOW [key=value]...: a public client.
delegated_account() {
	local name=$1 client=$2 flow=$3
	shift 3
	account "$name" "oauth_client_id=$client" oauth_client_secret= \
		"oauth_flow=$flow" "oauth_scope=imap offline_access" \
		"oauth_device_url=$OAUTH_URL/device/auth" \
		"oauth_authorize_url=$OAUTH_URL/auth" "$@"
}

# authorize_device CONFIG ACCOUNT: pullmail authorize with the device flow,
# the human entering the code; asserts success.
AUTHORIZE_SEQ=0
authorize_device() {
	local cfg=$1 acct=$2 out pid i uri code
	AUTHORIZE_SEQ=$((AUTHORIZE_SEQ + 1))
	out=$CASE_DIR/authorize$AUTHORIZE_SEQ.out
	AUTH_OUT=$out
	AUTH_ERR=$CASE_DIR/authorize$AUTHORIZE_SEQ.err
	"$PULLMAIL" -c "$cfg" authorize "$acct" </dev/null >"$out" \
		2>"$AUTH_ERR" &
	pid=$!
	i=0
	until grep -q 'enter the code' "$out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill "$pid"; fail "no user code printed"; }
		sleep 0.05
	done
	uri=$(sed -n 's/.* open \(http[^ ]*\) and enter the code .*/\1/p' "$out")
	code=$(sed -n 's/.* enter the code \([^ ]*\)$/\1/p' "$out")
	$HUMAN device "$uri" "$code" "$CASE_USER" || { kill "$pid"; fail "human failed"; }
	wait "$pid"
	RC=$?
	cat "$out" "$AUTH_ERR"
	assert_eq 0 "$RC" "pullmail authorize exit status"
	assert_grep "^$acct: authorized; the refresh token is stored in " "$out"
}

# The store holds no secret readable by others.
assert_private_store() {
	local f
	f=$(find "$CASE_DIR/state/tokens" -name 'delegated-*.json')
	[ -n "$f" ] || fail "no token store"
	[ "$(stat -c %a "$f")" = 600 ] || fail "token store mode $(stat -c %a "$f")"
	STORE=$f
}

# Nothing the provider issued or received may appear in pullmail's output.
assert_no_tokens_in() {
	local t f
	for t in $(issued_tokens) $(exchanged_secrets) \
	    $(sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p' "$STORE"); do
		for f in "$@"; do
			grep -qF -- "$t" "$f" && fail "a token appears in $f"
		done
	done
	return 0
}

# Refresh requests of a client: "RT status" per line.
refreshes() {
	grep "TOKEN client=$1 .* grant=refresh_token " "$OAUTH_LOG" |
		sed 's/.* status=\([0-9]*\) .* rt=\([^ ]*\)$/\2 \1/'
}

case_device_flow_fetch_refresh() {
	delegated_account acct "$DEVSHORT_ID" device | write_config "$CASE_DIR/config"
	authorize_device "$CASE_DIR/config" acct
	assert_private_store
	grep -q "TOKEN client=$DEVSHORT_ID .*grant=urn:ietf:params:oauth:grant-type:device_code.* status=200" \
		"$OAUTH_LOG" || fail "no device_code grant at the provider"
	seed_messages
	run_pm -c "$CASE_DIR/config" -vv
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_tokens_in "$LAST_OUT.out" "$LAST_OUT.err" "$AUTH_OUT" "$AUTH_ERR"
	# The access token lives 4 s: by the next poll it has expired.
	sleep 3
	first=$SEEDS
	seed_messages
	run_pm -c "$CASE_DIR/config" -vv --trace
	assert_rc 0
	assert_grep 'refreshed the access token' "$LAST_OUT.err"
	assert_no_grep -i 'warn|error|fail' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $first $SEEDS
	# The one from the device grant is rotated away by now, and is
	# checked along with its successor.
	[ "$(grep -cE " SECRETS client=$DEVSHORT_ID .* issued_rt=[^ ]{2,}" "$OAUTH_LOG")" -ge 2 ] ||
		fail "the provider logged fewer than two refresh tokens"
	assert_no_tokens_in "$LAST_OUT.out" "$LAST_OUT.err"
	# Rotation: the stored refresh token is the last one issued.
	sleep 3
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	refreshes "$DEVSHORT_ID" >"$CASE_DIR/refreshes"
	[ "$(wc -l <"$CASE_DIR/refreshes")" -ge 2 ] || fail "expected two refreshes"
	assert_no_grep -v ' 200$' "$CASE_DIR/refreshes"
	# Never one refresh token twice.
	[ -z "$(cut -d' ' -f1 "$CASE_DIR/refreshes" | sort | uniq -d)" ] ||
		fail "a refresh token was sent twice"
	last=$(grep "TOKEN client=$DEVSHORT_ID .* status=200" "$OAUTH_LOG" | tail -n 1 |
		sed 's/.* new_rt=\([^ ]*\).*/\1/')
	stored=$(sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p' "$STORE" |
		tr -d '\n' | sha256sum | cut -c1-12)
	assert_eq "$last" "$stored" "stored refresh token"
}

# Two processes needing a refresh at the same moment: one refresh.
case_concurrent_refresh() {
	delegated_account acct "$DEVSHORT_ID" device | write_config "$CASE_DIR/config"
	# Two accounts sharing the state directory would share nothing; the
	# same account in two processes must share the store.
	authorize_device "$CASE_DIR/config" acct
	assert_private_store
	sleep 3
	before=$(refreshes "$DEVSHORT_ID" | wc -l)
	"$PULLMAIL" -c "$CASE_DIR/config" token acct --info >"$CASE_DIR/t1.out" 2>&1 &
	p1=$!
	"$PULLMAIL" -c "$CASE_DIR/config" token acct --info >"$CASE_DIR/t2.out" 2>&1 &
	p2=$!
	wait $p1 || fail "first process failed: $(cat "$CASE_DIR/t1.out")"
	wait $p2 || fail "second process failed: $(cat "$CASE_DIR/t2.out")"
	after=$(refreshes "$DEVSHORT_ID" | wc -l)
	assert_eq 1 "$((after - before))" "refreshes for two processes"
	assert_no_tokens_in "$CASE_DIR/t1.out" "$CASE_DIR/t2.out"
}

# Authorization code + PKCE, the redirect landing on pullmail's listener.
# In a graphical session (DISPLAY set) pullmail also hands the URL to
# xdg-open: here a stand-in that records it and exits at once.
case_auth_code_pkce() {
	delegated_account acct "$DEV_ID" authorization_code | write_config "$CASE_DIR/config"
	mkdir -p "$CASE_DIR/bin"
	cat >"$CASE_DIR/bin/xdg-open" <<-EOF
	#!/bin/sh
	printf '%s\n' "\$*" >"$CASE_DIR/browser.tmp"
	mv "$CASE_DIR/browser.tmp" "$CASE_DIR/browser.url"
	EOF
	chmod 755 "$CASE_DIR/bin/xdg-open"
	out=$CASE_DIR/authorize.out
	PATH="$CASE_DIR/bin:$PATH" DISPLAY=:99 \
		"$PULLMAIL" -c "$CASE_DIR/config" authorize acct </dev/null >"$out" \
		2>"$CASE_DIR/authorize.err" &
	pid=$!
	i=0
	until grep -q '^Waiting for the redirect' "$out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill "$pid"; fail "no URL printed"; }
		sleep 0.05
	done
	url=$(grep "^$OAUTH_URL/auth?" "$out")
	case $url in
	*code_challenge_method=S256*) ;;
	*) kill "$pid"; fail "no PKCE in $url" ;;
	esac
	# The browser got the URL printed, and the launcher, once done, is
	# not left a zombie of pullmail's while pullmail waits: pullmail has
	# no child at all.
	i=0
	until [ -f "$CASE_DIR/browser.url" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill "$pid"; fail "xdg-open was not run"; }
		sleep 0.05
	done
	assert_eq "$url" "$(cat "$CASE_DIR/browser.url")" "the URL xdg-open got"
	i=0
	while [ -n "$(ps -o pid= --ppid "$pid")" ]; do
		i=$((i + 1))
		[ $i -lt 40 ] || {
			ps -o pid=,stat=,args= --ppid "$pid" >&2
			kill "$pid"
			fail "pullmail authorize has a child left while it waits"
		}
		sleep 0.05
	done
	# A forged redirect (wrong state) is refused; pullmail keeps waiting.
	$HUMAN authorize "$url" "$CASE_USER" --state forged-state >"$CASE_DIR/forged.out" ||
		{ kill "$pid"; fail "human failed"; }
	assert_grep '^client answered 400: .*state does not match' "$CASE_DIR/forged.out"
	kill -0 "$pid" 2>/dev/null || fail "pullmail gave up after a forged redirect"
	grep -q "grant=authorization_code" "$OAUTH_LOG" &&
		{ kill "$pid"; fail "a code with a wrong state was exchanged"; }
	# The real one.
	$HUMAN authorize "$url" "$CASE_USER" >"$CASE_DIR/human.out" ||
		{ kill "$pid"; fail "human failed"; }
	wait "$pid"
	RC=$?
	assert_eq 0 "$RC" "pullmail authorize exit status"
	assert_grep '^client answered 200: pullmail is authorized' "$CASE_DIR/human.out"
	assert_grep 'refused a redirect whose state does not match' "$CASE_DIR/authorize.err"
	grep -q "TOKEN client=$DEV_ID .*grant=authorization_code .*status=200" "$OAUTH_LOG" ||
		fail "no authorization_code grant at the provider"
	assert_private_store
	seed_messages
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	# The code and the verifier are among the secrets checked below.
	grep -qE " SECRETS client=$DEV_ID grant=authorization_code .* code=[^ ]{2,} code_verifier=[^ ]{2,}" "$OAUTH_LOG" ||
		fail "the provider logged no authorization code and verifier"
	grep -q " SECRETS issued_code=" "$OAUTH_LOG" ||
		fail "the provider logged no redirect with a code"
	assert_no_tokens_in "$LAST_OUT.out" "$LAST_OUT.err" "$out" \
		"$CASE_DIR/authorize.err" "$CASE_DIR/forged.out" "$CASE_DIR/human.out"
}

# A refused refresh token: a human must act; notify_command once.
case_refresh_refused_notify() {
	cat >"$CASE_DIR/notify.sh" <<-EOF
	#!/bin/sh
	echo "\$PULLMAIL_ACCOUNT|\$#|\$PULLMAIL_MESSAGE" >>"$CASE_DIR/notified"
	EOF
	chmod +x "$CASE_DIR/notify.sh"
	delegated_account acct "$DEVSHORT_ID" device \
		"notify_command=$CASE_DIR/notify.sh" | write_config "$CASE_DIR/config"
	authorize_device "$CASE_DIR/config" acct
	assert_private_store
	# Spend the stored refresh token behind pullmail's back: rotation
	# voids it (and the provider revokes the grant).
	rt=$(sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p' "$STORE")
	curl -s -d client_id="$DEVSHORT_ID" -d grant_type=refresh_token \
		--data-urlencode "refresh_token=$rt" "$OAUTH_TOKEN_URL" >/dev/null
	sleep 3
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_grep '^pullmail: acct: a human must act: .*invalid_grant.*; run: pullmail authorize acct$' "$LAST_OUT.err"
	assert_eq 1 "$(wc -l <"$LAST_OUT.err" | tr -d ' ')" "error lines"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_eq 1 "$(wc -l <"$CASE_DIR/notified" | tr -d ' ')" "notifications"
	# The message in the environment only, never as an argument (ps).
	assert_grep '^acct\|0\|a human must act: ' "$CASE_DIR/notified"
	assert_no_grep -F -- "$rt" "$CASE_DIR/notified"
	assert_no_grep -F -- "$rt" "$LAST_OUT.err"
	# Authorized again: the flag is reset, the next failure notifies.
	authorize_device "$CASE_DIR/config" acct
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

# No authorization stored yet: exit 77 and what to run.
case_not_authorized() {
	delegated_account acct "$DEV_ID" device | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_grep '^pullmail: acct: a human must act: no authorization is stored; run: pullmail authorize acct$' "$LAST_OUT.err"
}

# Denied at the confirmation page: authorize fails with 77.
case_device_denied() {
	delegated_account acct "$DEV_ID" device | write_config "$CASE_DIR/config"
	out=$CASE_DIR/authorize.out
	"$PULLMAIL" -c "$CASE_DIR/config" authorize acct </dev/null >"$out" \
		2>"$CASE_DIR/authorize.err" &
	pid=$!
	i=0
	until grep -q 'enter the code' "$out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill "$pid"; fail "no user code printed"; }
		sleep 0.05
	done
	uri=$(sed -n 's/.* open \(http[^ ]*\) and enter the code .*/\1/p' "$out")
	code=$(sed -n 's/.* enter the code \([^ ]*\)$/\1/p' "$out")
	$HUMAN deny-device "$uri" "$code" "$CASE_USER" || true
	wait "$pid"
	RC=$?
	assert_eq 77 "$RC" "exit status"
	assert_grep 'denied' "$CASE_DIR/authorize.err"
}

# private_key_jwt for the client-credentials grant.
case_private_key_jwt() {
	seed_messages
	account acct "oauth_client_id=$JWT_ID" oauth_client_secret= \
		"oauth_client_certificate=$KEYS/app.pem" \
		"oauth_client_key=$KEYS/app.key" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -vv
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	grep -q "TOKEN client=$JWT_ID .*grant=client_credentials .*status=200" "$OAUTH_LOG" ||
		fail "no private_key_jwt grant at the provider"
	assert_no_grep 'client_assertion=ey' "$LAST_OUT.err"
	grep -q " SECRETS client=$JWT_ID .* client_assertion=ey" "$OAUTH_LOG" ||
		fail "the provider logged no client assertion"
	STORE=/dev/null
	assert_no_tokens_in "$LAST_OUT.out" "$LAST_OUT.err"
	# A key the provider does not know: refused, a human must act.
	account acct "oauth_client_id=$JWT_ID" oauth_client_secret= \
		"oauth_client_certificate=$KEYS/other.pem" \
		"oauth_client_key=$KEYS/other.key" \
		"state_dir=$CASE_DIR/state2" | write_config "$CASE_DIR/config2"
	run_pm -c "$CASE_DIR/config2"
	assert_rc 77
	assert_grep 'invalid_client' "$LAST_OUT.err"
}

# Endpoints from OpenID discovery: an app, then a delegated device flow.
case_discovery() {
	seed_messages
	account acct oauth_token_url= "oauth_issuer=$OAUTH_URL/" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -vv
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_grep "discovered token endpoint $OAUTH_URL/token" "$LAST_OUT.err"
	# Device flow with nothing but the issuer.
	account acct2 "oauth_client_id=$DEV_ID" oauth_client_secret= \
		oauth_token_url= "oauth_issuer=$OAUTH_URL" \
		"oauth_scope=imap offline_access" "state_dir=$CASE_DIR/state2" \
		"deliver=maildir:$CASE_DIR/Maildir2" | write_config "$CASE_DIR/config2"
	authorize_device "$CASE_DIR/config2" acct2
	run_pm -c "$CASE_DIR/config2"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir2" "$CASE_USER"
	# The document must name the configured issuer.
	account acct oauth_token_url= \
		"oauth_issuer=http://localhost:$OAUTH_PORT" "state_dir=$CASE_DIR/state3" |
		write_config "$CASE_DIR/config3"
	run_pm -c "$CASE_DIR/config3"
	assert_rc 78
	assert_grep 'names another issuer' "$LAST_OUT.err"
}

# The client secret from a secret manager and from systemd's credentials;
# the access token from the user's own helper.
case_secret_sources() {
	seed_messages
	mkdir -p "$CASE_DIR/bin" "$CASE_DIR/creds"
	printf '#!/bin/sh\nprintf "%%s\\n" "$APP_SECRET"\n' >"$CASE_DIR/bin/vault"
	printf '#!/bin/sh\necho "vault: locked" >&2\nexit 3\n' >"$CASE_DIR/bin/locked"
	printf '#!/bin/sh\ncat "%s/token"\n' "$CASE_DIR" >"$CASE_DIR/bin/helper"
	chmod 0755 "$CASE_DIR/bin/"*
	account acct oauth_client_secret= \
		"oauth_client_secret_command=$CASE_DIR/bin/vault --field secret" |
		write_config "$CASE_DIR/config"
	export APP_SECRET
	run_pm -c "$CASE_DIR/config" -vv
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_grep -F -- "$APP_SECRET" "$LAST_OUT.err"
	# A failing secret manager is a configuration error naming it.
	account acct oauth_client_secret= \
		"oauth_client_secret_command=$CASE_DIR/bin/locked" |
		write_config "$CASE_DIR/config-locked"
	run_pm -c "$CASE_DIR/config-locked"
	assert_rc 78
	assert_grep 'oauth_client_secret_command: .*locked exited with status 3' "$LAST_OUT.err"
	# systemd: LoadCredential=app-secret:... puts it in the directory.
	(umask 077 && printf '%s\n' "$APP_SECRET" >"$CASE_DIR/creds/app-secret")
	chmod 0400 "$CASE_DIR/creds/app-secret"
	account acct oauth_client_secret= oauth_client_secret_credential=app-secret \
		"state_dir=$CASE_DIR/state2" "deliver=maildir:$CASE_DIR/Maildir2" |
		write_config "$CASE_DIR/config-cred"
	CREDENTIALS_DIRECTORY=$CASE_DIR/creds
	export CREDENTIALS_DIRECTORY
	run_pm -c "$CASE_DIR/config-cred"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir2" "$CASE_USER"
	unset CREDENTIALS_DIRECTORY
	run_pm -c "$CASE_DIR/config-cred"
	assert_rc 78
	assert_grep 'CREDENTIALS_DIRECTORY is not set' "$LAST_OUT.err"
	# oauth_token_command: a token kept by another tool.
	seed_messages INBOX
	srv_token "$APP_ID" "$APP_SECRET" imap >"$CASE_DIR/token" || fail "no token"
	printf '[account acct]\nserver = 127.0.0.1\nport = %s\ntls = implicit\nca_file = %s\nuser = %s\noauth_token_command = %s\ndeliver = maildir:%s\nstate_dir = %s\n' \
		"$IMAPS_PORT" "$CA_FILE" "$CASE_USER" "$CASE_DIR/bin/helper" \
		"$CASE_DIR/Maildir" "$CASE_DIR/state" | write_config "$CASE_DIR/config-helper"
	run_pm -c "$CASE_DIR/config-helper" -vv
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_no_grep -F -- "$(cat "$CASE_DIR/token")" "$LAST_OUT.err"
	# A helper that fails: a human must act.
	sed -i "s|^oauth_token_command = .*|oauth_token_command = $CASE_DIR/bin/locked|" \
		"$CASE_DIR/config-helper"
	run_pm -c "$CASE_DIR/config-helper"
	assert_rc 77
	assert_grep 'oauth_token_command: .*exited with status 3' "$LAST_OUT.err"
}

# The subcommands' usage, and token --info on an app token.
case_subcommands() {
	account acct | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" authorize
	assert_rc 64
	run_pm -c "$CASE_DIR/config" token acct
	assert_rc 64
	run_pm -c "$CASE_DIR/config" --info acct
	assert_rc 64
	run_pm -c "$CASE_DIR/config" authorize nosuch
	assert_rc 64
	run_pm -c "$CASE_DIR/config" authorize acct
	assert_rc 78
	assert_grep 'client-credentials grant, which needs no authorization' "$LAST_OUT.err"
	run_pm -c "$CASE_DIR/config" -vv token acct --info
	assert_rc 0
	assert_grep '^acct: access token \(new, [0-9]+ bytes; never shown\)$' "$LAST_OUT.out"
	assert_grep '^  expires: in [0-9]+ s$' "$LAST_OUT.out"
	assert_grep '^  format: opaque' "$LAST_OUT.out"
	assert_grep '^  granted scope: imap$' "$LAST_OUT.out"
	STORE=/dev/null
	assert_no_tokens_in "$LAST_OUT.out" "$LAST_OUT.err"
	assert_no_grep -F -- "$APP_SECRET" "$LAST_OUT.err"
	# Again: from the cache, no new request.
	n=$(srv_token_requests "$APP_ID")
	run_pm -c "$CASE_DIR/config" token acct --info
	assert_rc 0
	assert_grep '^acct: access token \(stored' "$LAST_OUT.out"
	assert_eq "$n" "$(srv_token_requests "$APP_ID")" "token requests"
}

run_case subcommands case_subcommands
run_case secret_sources case_secret_sources
run_case discovery case_discovery
run_case private_key_jwt case_private_key_jwt
run_case device_flow_fetch_refresh case_device_flow_fetch_refresh
run_case concurrent_refresh case_concurrent_refresh
run_case auth_code_pkce case_auth_code_pkce
run_case refresh_refused_notify case_refresh_refused_notify
run_case not_authorized case_not_authorized
run_case device_denied case_device_denied
e2e_finish
