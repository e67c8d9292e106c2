#!/bin/sh
# The test servers themselves, without pullmail: oidc-provider issues opaque
# tokens by client credentials, Dovecot accepts them over IMAPS and
# IMAP+STARTTLS (XOAUTH2, OAUTHBEARER) through introspection, and refuses
# what it must.  When this fails, the other e2e results mean nothing.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers

probe() {
	"$SRV_PYTHON" "$SRV_DIR/probe.py" "$@"
}

# login HOST PORT MODE CAFILE USER MECH SECRET: sets OUT and RC.
login() {
	OUT=$(probe imap-login "$@" 2>&1)
	RC=$?
	echo "login $1:$2 $3 $5 $6 -> $RC $OUT"
}

assert_out() {
	case $OUT in
	*"$1"*) ;;
	*) fail "'$1' not in the probe's output: $OUT" ;;
	esac
}

case_token() {
	local t
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	[ ${#t} -ge 20 ] || fail "token too short: $t"
	# Opaque, not a JWT.
	case $t in *.*.*) fail "token looks like a JWT" ;; esac
	curl -s -u "$INTRO_ID:$INTRO_SECRET" -d "token=$t" \
		"$OAUTH_URL/token/introspection" >"$CASE_DIR/intro.json"
	assert_grep '"active":true' "$CASE_DIR/intro.json"
	assert_grep -F "\"mail_user\":\"*@$MAIL_DOMAIN\"" "$CASE_DIR/intro.json"
	curl -s -d grant_type=client_credentials -d "client_id=$APP_ID" \
		-d client_secret=wrong -d scope=imap "$OAUTH_TOKEN_URL" \
		>"$CASE_DIR/bad.json"
	assert_grep '"error":"invalid_client"' "$CASE_DIR/bad.json"
	curl -s -u "$BASIC_ID:$BASIC_SECRET" -d grant_type=client_credentials \
		-d scope=imap "$OAUTH_TOKEN_URL" >"$CASE_DIR/basic.json"
	assert_grep '"access_token"' "$CASE_DIR/basic.json"
}

case_microsoft_path() {
	curl -s -d grant_type=client_credentials -d "client_id=$MS_CLIENT_ID" \
		--data-urlencode "client_secret=$MS_CLIENT_SECRET" \
		--data-urlencode scope=https://outlook.office365.com/.default \
		"$OAUTH_URL/$MS_TENANT_ID/oauth2/v2.0/token" >"$CASE_DIR/ms.json"
	assert_grep '"scope":"imap pop3"' "$CASE_DIR/ms.json"
	curl -s -d grant_type=client_credentials -d "client_id=$MS_CLIENT_ID" \
		--data-urlencode "client_secret=$MS_CLIENT_SECRET" \
		"$OAUTH_URL/no-such-tenant/oauth2/v2.0/token" >"$CASE_DIR/nt.json"
	assert_grep 'AADSTS90002' "$CASE_DIR/nt.json"
}

case_login() {
	local t
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	seed_messages
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" xoauth2 "$t"
	assert_eq "0 OK $NSEEDS" "$RC $OUT" "XOAUTH2 over IMAPS"
	login 127.0.0.1 "$IMAP_PORT" starttls "$CA_FILE" "$CASE_USER" oauthbearer "$t"
	assert_eq "0 OK $NSEEDS" "$RC $OUT" "OAUTHBEARER over STARTTLS"
	# One app token, every mailbox of the domain.
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "other@$MAIL_DOMAIN" xoauth2 "$t"
	assert_eq 0 "$RC" "another mailbox of the domain"
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$PASSWORD_USER" plain "$PASSWORD_SECRET"
	assert_eq 0 "$RC" "PLAIN password user"
	probe imap-fetch 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" \
		"$t" 1 "$CASE_DIR/fetched" || fail "fetch failed"
	local f n=0
	for f in $SEEDS; do
		cmp -s "$f" "$CASE_DIR/fetched" && n=$((n + 1))
	done
	assert_eq 1 "$n" "UID 1 equals one seeded message"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "doveadm message count"
	srv_flags "$CASE_USER" >"$CASE_DIR/flags"
	assert_no_grep 'Seen' "$CASE_DIR/flags"
}

case_refusals() {
	local t
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" xoauth2 bogus-token
	assert_eq 1 "$RC" "unknown token refused"
	assert_out AUTHENTICATIONFAILED
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER@other.test" xoauth2 "$t"
	assert_eq 1 "$RC" "mailbox of another domain refused"
	t=$(srv_token "$POP3ONLY_ID" "$POP3ONLY_SECRET" pop3) || fail "no pop3 token"
	login 127.0.0.1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" xoauth2 "$t"
	assert_eq 1 "$RC" "token without the imap scope refused"
	login 127.0.0.1 "$IMAPS_PORT" implicit "$OTHER_CA_FILE" "$CASE_USER" xoauth2 "$t"
	assert_eq 1 "$RC" "unknown CA"
	assert_out CERTIFICATE_VERIFY_FAILED
	login 127.0.0.2 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" xoauth2 "$t"
	assert_eq 1 "$RC" "wrong host name"
	assert_out 'IP address mismatch'
}

case_ipv6() {
	local t
	if [ "$SRV_HAVE_IPV6" != 1 ]; then
		[ "${PULLMAIL_ALLOW_SKIP:-0}" = 1 ] ||
			fail "::1 cannot be bound (set PULLMAIL_ALLOW_SKIP=1 to skip)"
		echo "SKIP: ::1 cannot be bound"
		return 0
	fi
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	login ::1 "$IMAPS_PORT" implicit "$CA_FILE" "$CASE_USER" xoauth2 "$t"
	assert_eq 0 "$RC" "IMAPS over ::1"
}

# POP3 (for the POP3 plugin): the pop3 scope, not the imap one.
case_pop3() {
	local t out
	seed_messages
	t=$(srv_token "$APP_ID" "$APP_SECRET" pop3) || fail "no token"
	out=$(probe pop3-login 127.0.0.1 "$POP3S_PORT" implicit "$CA_FILE" "$CASE_USER" "$t" 2>&1)
	assert_eq "OK $NSEEDS" "$out" "POP3S with a pop3 token"
	out=$(probe pop3-login 127.0.0.1 "$POP3_PORT" stls "$CA_FILE" "$CASE_USER" "$t" 2>&1)
	assert_eq "OK $NSEEDS" "$out" "POP3+STLS with a pop3 token"
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	out=$(probe pop3-login 127.0.0.1 "$POP3S_PORT" implicit "$CA_FILE" "$CASE_USER" "$t" 2>&1)
	case $out in NO*) ;; *) fail "POP3 accepted an imap-only token: $out" ;; esac
}

run_case token case_token
run_case microsoft_path case_microsoft_path
run_case login case_login
run_case refusals case_refusals
run_case ipv6 case_ipv6
run_case pop3 case_pop3
e2e_finish
