#!/bin/sh
# The token module against a fault injector (tests/servers/oauthfault.py),
# for faults no real authorization server shows on purpose:
#   - a token endpoint echoing the whole request (form body, in upper- and
#     lower-case %XX, and the Basic Authorization header) in its error:
#     the client secret appears in no form on stderr, in syslog (captured
#     by an LD_PRELOAD shim, tests/plugins/syslogcap.c), or in what
#     notify_command gets; notify_command has the message in its
#     environment and no argument;
#   - plain http:// to another host than this one: refused when configured
#     (at config load) and when OpenID discovery names it, and no request
#     is sent there (the injector listens on that address too);
#   - a token response larger than the cap, and one stalled mid-body: a
#     clear error (and under --enable-sanitizers, no leak).
# No mail server is needed: `pullmail token ACCOUNT --info` gets a token.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require python3 curl
e2e_make_run_dir

CLIENT=pullmail-app.1
SECRET='Sk/9+x=y%z&w~Q.v_u-t!*'

# token_config FILE [key = value]...: an app account whose token comes from
# the injector.
token_config() {
	local f=$1
	shift
	{
		echo "[account acct]"
		echo "server = 127.0.0.1"
		echo "port = 1"
		echo "user = someone"
		echo "oauth_provider = generic"
		echo "oauth_client_id = $CLIENT"
		echo "oauth_client_secret = $SECRET"
		echo "deliver = maildir:$CASE_DIR/Maildir"
		echo "state_dir = $CASE_DIR/state"
		for kv in "$@"; do
			echo "$kv"
		done
	} | write_config "$f"
}

# The forms of the secret an echo may carry: raw, form-encoded with upper-
# and lower-case %XX, HTTP Basic (base64 of form-encoded id:secret).
secret_forms() {
	"$SRV_PYTHON" - "$SECRET" "$CLIENT" <<-'PY'
	import base64, re, sys, urllib.parse
	sec, cid = sys.argv[1], sys.argv[2]
	up = urllib.parse.quote_plus(sec, safe="-._~")
	low = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), up)
	basic = urllib.parse.quote_plus(cid, safe="-._~") + ":" + up
	for f in (sec, up, low, base64.b64encode(basic.encode()).decode()):
	    print(f)
	PY
}

# assert_no_secret FILE...: no form of the secret in any FILE.
assert_no_secret() {
	local f form
	for f in "$@"; do
		[ -f "$f" ] || fail "$f is missing"
		secret_forms | while IFS= read -r form; do
			if grep -q -F -e "$form" "$f"; then
				echo "--- $f:"
				cat "$f"
				echo "FAIL: the secret ($form) is in $(basename "$f")"
				exit 1
			fi
		done || fail "secret found"
	done
}

# A host that is not this one: where a plain http endpoint must never be
# asked.  A name under .invalid (RFC 6761) never resolves, so the tests
# need no address but loopback; the refusal comes before any lookup, and
# its message differs from a failed lookup's.
OTHER_HOST=idp.invalid

case_echo_redacted() {
	local auth
	[ -f "$SYSLOG_SHIM" ] || fail "no $SYSLOG_SHIM (make check builds it)"
	mkdir -p "$CASE_DIR/bin"
	printf '#!/bin/sh\n{ echo "argc=$#"; for a in "$@"; do echo "arg=$a"; done; } >>"%s/notify.argv"\nenv >>"%s/notify.env"\n' \
		"$CASE_DIR" "$CASE_DIR" >"$CASE_DIR/bin/notify"
	chmod 0755 "$CASE_DIR/bin/notify"
	start_injector oauthfault.py 0 --mode echo
	for auth in post basic; do
		rm -rf "$CASE_DIR/state" "$CASE_DIR/notify.argv" \
			"$CASE_DIR/notify.env" "$CASE_DIR/syslog"
		token_config "$CASE_DIR/config-$auth" \
			"oauth_token_url = http://127.0.0.1:$INJ_PORT/token" \
			"oauth_client_auth = $auth" \
			"notify_command = $CASE_DIR/bin/notify"
		run_pm -c "$CASE_DIR/config-$auth" token acct --info
		assert_rc 77
		assert_grep 'token endpoint refused: invalid_client: bad request: .*<redacted>' "$LAST_OUT.err"
		assert_no_secret "$LAST_OUT.err" "$LAST_OUT.out"
		# notify_command: the message in the environment, no argument.
		assert_eq "argc=0" "$(cat "$CASE_DIR/notify.argv")" "notify argv"
		assert_grep '^PULLMAIL_MESSAGE=token endpoint refused: invalid_client: bad request: .*<redacted>' "$CASE_DIR/notify.env"
		assert_grep '^PULLMAIL_ACCOUNT=acct$' "$CASE_DIR/notify.env"
		assert_no_secret "$CASE_DIR/notify.argv" "$CASE_DIR/notify.env"
		# syslog gets the same line, redacted, as an error (LOG_ERR).
		rm -rf "$CASE_DIR/state"
		run_pm_syslog -c "$CASE_DIR/config-$auth" token acct --info
		assert_rc 77
		assert_grep '^<3> acct: token endpoint refused: invalid_client: bad request: .*<redacted>' "$CASE_DIR/syslog"
		assert_no_secret "$CASE_DIR/syslog" "$LAST_OUT.err"
	done
	# The injector did get the secret in each form it echoed.
	assert_eq 4 "$(grep -c 'REQUEST POST /token' "$INJ_LOG")" "token requests"
}

case_plain_http_configured() {
	local host
	host=$OTHER_HOST
	start_injector oauthfault.py 0 --mode echo
	token_config "$CASE_DIR/config" \
		"oauth_token_url = http://$host:$INJ_PORT/token"
	run_pm -c "$CASE_DIR/config" --check-config
	assert_rc 78
	assert_grep "config:[0-9]+: oauth_token_url: \"http://$host:$INJ_PORT/token\": plain http:// is allowed only to this host" "$LAST_OUT.err"
	run_pm -c "$CASE_DIR/config" token acct --info
	assert_rc 78
	# Loopback is fine for tests on this host.
	token_config "$CASE_DIR/config2" \
		"oauth_token_url = http://localhost:$INJ_PORT/token"
	run_pm -c "$CASE_DIR/config2" --check-config
	assert_rc 0
	assert_no_grep 'REQUEST' "$INJ_LOG"
}

case_discovery_plain_http() {
	local host
	host=$OTHER_HOST
	start_injector oauthfault.py 0 --mode discovery --endpoint-host "$host"
	token_config "$CASE_DIR/config" \
		"oauth_issuer = http://127.0.0.1:$INJ_PORT"
	run_pm -c "$CASE_DIR/config" token acct --info
	assert_rc 76
	assert_grep "OpenID discovery at http://127.0.0.1:$INJ_PORT/.well-known/openid-configuration names token_endpoint http://$host:$INJ_PORT/token, refused: plain http:// is allowed only to this host" "$LAST_OUT.err"
	assert_grep 'REQUEST GET /.well-known/openid-configuration 127.0.0.1' "$INJ_LOG"
	assert_no_grep 'REQUEST POST' "$INJ_LOG"
	assert_no_secret "$LAST_OUT.err"
}

case_response_too_large() {
	start_injector oauthfault.py 0 --mode big
	token_config "$CASE_DIR/config" \
		"oauth_token_url = http://127.0.0.1:$INJ_PORT/token"
	run_pm -c "$CASE_DIR/config" token acct --info
	assert_rc 76
	assert_grep "acct: http://127.0.0.1:$INJ_PORT/token: response larger than 262144 bytes" "$LAST_OUT.err"
	assert_no_grep 'Sanitizer|AAAAAAAA' "$LAST_OUT.err"
}

case_response_stalls() {
	start_injector oauthfault.py 0 --mode stall
	token_config "$CASE_DIR/config" \
		"oauth_token_url = http://127.0.0.1:$INJ_PORT/token" \
		"timeout = 3"
	run_pm -c "$CASE_DIR/config" token acct --info
	assert_rc 75
	assert_grep "acct: http://127.0.0.1:$INJ_PORT/token: .*timed out.* 1000 out of [0-9]+ bytes" "$LAST_OUT.err"
	assert_no_grep 'Sanitizer|BBBBBBBB' "$LAST_OUT.err"
}

run_case echo_redacted case_echo_redacted
run_case plain_http_configured case_plain_http_configured
run_case discovery_plain_http case_discovery_plain_http
run_case response_too_large case_response_too_large
run_case response_stalls case_response_stalls
e2e_finish
