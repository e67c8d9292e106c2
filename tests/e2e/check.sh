#!/bin/sh
# `pullmail check ACCOUNT` against the real servers: one line per step,
# stopping at the first failing step with that step's exit status
# (pullmail(1)), and every step's failure made real:
#   config and secret files (78): a secret file others may read;
#   DNS (68): a name under .invalid; TCP (69): a closed port;
#   TLS (76): Dovecot's certificate checked against another CA, and
#     reached by an address its certificate does not name;
#   token (77): oidc-provider refusing a wrong client secret (and no
#     notify_command run for it, unlike a fetch); Entra ID's
#     AADSTS codes (a fault injector, tests/servers/oauthfault.py --mode
#     aadsts: no real server here answers them) mapped to admin terms;
#   token claims (77): JWTs from the injector (--mode jwt; oidc-provider's
#     tokens are opaque, which check notes and skips) with the wrong
#     audience or no IMAP.AccessAsApp role, and a delegated token (from
#     oauth_token_command) issued to another user;
#   login (77): Dovecot refusing a token with good claims, for a Microsoft
#     account: the Exchange Online steps, in order, with the client ID and
#     mailbox filled in;
#   SELECT (66): a folder the server does not have; POP3 UIDL and LIST on success;
#   delivery (73): a Maildir below a regular file, an MDA program that is
#     not there, an MTA that does not answer; Dovecot's LMTP and Postfix's
#     SMTP answering on success.
# On success nothing is fetched or delivered and the Maildir's tmp/ is left
# empty.  Neither the client secret nor any access token appears in the
# output.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_start_servers_postfix

MS_CLIENT=11111111-2222-3333-4444-555555555555
MS_TENANT=contoso.onmicrosoft.com

# run_check [key=value]...: write the account acct (lib.sh's account, with
# the changes given) and run `pullmail check acct`.
run_check() {
	account acct "$@" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" check acct
}

# assert_no_secrets: neither the app's secret nor a token the OAuth server
# issued is in the output.
assert_no_secrets() {
	local t
	for f in "$LAST_OUT.out" "$LAST_OUT.err"; do
		assert_no_grep -F "$APP_SECRET" "$f"
		for t in $(issued_tokens); do
			assert_no_grep -F "$t" "$f"
		done
	done
}

# assert_last_step STEP: the output's last step line is STEP's FAILED one
# (nothing checked after it).
assert_last_step() {
	assert_eq "acct: $1: FAILED" \
		"$(grep '^acct: ' "$LAST_OUT.out" | tail -n 1 | sed 's/: FAILED.*/: FAILED/')" \
		"last step"
}

# A Microsoft 365 account whose token comes from the fault injector.
ms_account() {
	echo "oauth_provider=microsoft"
	echo "oauth_tenant=$MS_TENANT"
	echo "oauth_client_id=$MS_CLIENT"
	echo "oauth_token_url=http://127.0.0.1:$INJ_PORT/token"
	echo "oauth_scope="
}

# jwt CLAIMS: an unsigned JWT carrying the JSON object CLAIMS.
jwt() {
	"$SRV_PYTHON" - "$1" <<-'PY'
	import base64, json, sys
	def part(o):
	    return base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")
	print("%s.%s.c2ln" % (part({"alg": "none"}), part(json.loads(sys.argv[1]))))
	PY
}

ISS='"iss": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/"'
AUD='"aud": "https://outlook.office.com"'

# Every step passes: opaque token (claims skipped with a note), the login,
# INBOX, the Maildir (tmp/ left empty, nothing delivered).
case_all_ok() {
	seed_messages
	mkdir -p "$CASE_DIR/Maildir/tmp" "$CASE_DIR/Maildir/new" "$CASE_DIR/Maildir/cur"
	run_check
	assert_rc 0
	assert_grep "^acct: config and secret files: ok \($CASE_DIR/config:1\)$" "$LAST_OUT.out"
	assert_grep "^acct: DNS: ok \(127\.0\.0\.1 is 127\.0\.0\.1\)$" "$LAST_OUT.out"
	assert_grep "^acct: TCP: ok \(connected to 127\.0\.0\.1 port $IMAPS_PORT\)$" "$LAST_OUT.out"
	assert_grep "^acct: TLS: ok \(certificate of 127\.0\.0\.1 verified\)$" "$LAST_OUT.out"
	assert_grep "^acct: token: ok \(new, [0-9]+ bytes; never shown\)$" "$LAST_OUT.out"
	assert_grep "^acct: token claims: ok \(skipped: the token is opaque" "$LAST_OUT.out"
	assert_grep "^acct: login: ok \(as $CASE_USER\)$" "$LAST_OUT.out"
	assert_grep "^acct: SELECT INBOX: ok \($NSEEDS messages\)$" "$LAST_OUT.out"
	assert_grep "^acct: delivery: ok \(Maildir $CASE_DIR/Maildir is writable\)$" "$LAST_OUT.out"
	assert_grep "^acct: every step passed$" "$LAST_OUT.out"
	assert_eq 10 "$(grep -c '^acct: ' "$LAST_OUT.out")" "step lines"
	assert_eq "" "$(ls -A "$CASE_DIR/Maildir/tmp" "$CASE_DIR/Maildir/new" "$CASE_DIR/Maildir/cur" | grep -v ':$' | grep .)" "files left in the Maildir"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_no_secrets
	# A Maildir not there yet: where it will be created; nothing made.
	run_check "deliver=maildir:$CASE_DIR/new/Maildir"
	assert_rc 0
	assert_grep "^acct: delivery: ok \(Maildir $CASE_DIR/new/Maildir does not exist yet; pullmail will create it in $CASE_DIR\)$" "$LAST_OUT.out"
	[ ! -e "$CASE_DIR/new" ] || fail "check created $CASE_DIR/new"
}

# POP3: UIDL and LIST instead of SELECT; LMTP (Dovecot) and SMTP (Postfix) targets
# answer their greeting and LHLO/EHLO.
case_pop3_lmtp_smtp() {
	seed_messages
	run_check protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 \
		"deliver=lmtp:127.0.0.1:$LMTP_PORT"
	assert_rc 0
	assert_grep "^acct: LIST: ok \($NSEEDS messages\)$" "$LAST_OUT.out"
	assert_no_grep "SELECT" "$LAST_OUT.out"
	assert_grep "^acct: delivery: ok \(the MTA at 127\.0\.0\.1:$LMTP_PORT answered its greeting and LHLO\)$" "$LAST_OUT.out"
	run_check "deliver=smtp:127.0.0.1:$SMTP_PORT"
	assert_rc 0
	assert_grep "^acct: delivery: ok \(the MTA at 127\.0\.0\.1:$SMTP_PORT answered its greeting and EHLO\)$" "$LAST_OUT.out"
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	assert_no_secrets
}

# A client secret file others may read: the file named, exit 78.
case_secret_perms() {
	printf '%s\n' "$APP_SECRET" >"$CASE_DIR/secret"
	chmod 0644 "$CASE_DIR/secret"
	run_check oauth_client_secret= "oauth_client_secret_file=$CASE_DIR/secret"
	assert_rc 78
	assert_last_step "config and secret files"
	assert_grep -F "$CASE_DIR/secret: mode 0644 lets others read the secret; run chmod 600 $CASE_DIR/secret" "$LAST_OUT.out"
	# Said once, with the other steps on stdout.
	assert_no_grep -F "lets others read" "$LAST_OUT.err"
	assert_no_secrets
}

# An unknown host name: DNS, 68.
case_unknown_host() {
	run_check server=imap.pullmail-test.invalid
	assert_rc 68
	assert_last_step DNS
	assert_grep -F "acct: DNS: FAILED: cannot resolve imap.pullmail-test.invalid: " "$LAST_OUT.out"
	assert_grep -F "check server = imap.pullmail-test.invalid" "$LAST_OUT.out"
}

# A closed port: TCP, 69, the address tried named.
case_closed_port() {
	run_check port=1
	assert_rc 69
	assert_last_step TCP
	assert_grep "^acct: DNS: ok" "$LAST_OUT.out"
	assert_grep -F "acct: TCP: FAILED: 127.0.0.1:1: cannot connect: Connection refused" "$LAST_OUT.out"
}

# Another CA, then an address the certificate does not name: TLS, 76.
case_tls() {
	run_check "ca_file=$OTHER_CA_FILE"
	assert_rc 76
	assert_last_step TLS
	assert_grep "^acct: TCP: ok" "$LAST_OUT.out"
	assert_grep -F "acct: TLS: FAILED: TLS: certificate of 127.0.0.1 is not trusted (signer unknown); set ca_file" "$LAST_OUT.out"
	run_check server=127.0.0.2
	assert_rc 76
	assert_last_step TLS
	assert_grep -F "acct: TLS: FAILED: TLS: certificate does not match host name '127.0.0.2'; check the server setting" "$LAST_OUT.out"
}

# oidc-provider refuses a wrong client secret: token, 77.
case_token_refused() {
	printf '#!/bin/sh\necho notified >>"%s/notified"\n' "$CASE_DIR" \
		>"$CASE_DIR/notify.sh"
	chmod 755 "$CASE_DIR/notify.sh"
	run_check oauth_client_secret=not-the-secret \
		notify_command="$CASE_DIR/notify.sh"
	assert_rc 77
	assert_last_step token
	assert_grep -F "invalid_client" "$LAST_OUT.out"
	assert_grep -F "check oauth_client_id and oauth_client_secret" "$LAST_OUT.out"
	assert_no_grep -F "not-the-secret" "$LAST_OUT.out"
	assert_no_grep -F "not-the-secret" "$LAST_OUT.err"
	# check is for the person running it: notify_command is not run,
	# as a fetch with the same account does.
	[ ! -e "$CASE_DIR/notified" ] || fail "check ran notify_command"
	run_pm -c "$CASE_DIR/config" acct
	assert_rc 77
	[ -e "$CASE_DIR/notified" ] || fail "a fetch did not run notify_command"
}

# Entra ID's AADSTS codes, each in the admin's terms.
case_aadsts() {
	for c in "7000215 the client secret is wrong" \
	    "7000222 the client secret has expired" \
	    "700016 no app with this client ID exists in this tenant" \
	    "90002 the tenant was not found" \
	    "900023 the tenant identifier is neither a tenant ID nor a valid domain" \
	    "65001 admin consent is missing"; do
		start_injector oauthfault.py 0 --mode aadsts --code "${c%% *}"
		run_check $(ms_account) oauth_client_secret=wrong-secret-value
		assert_rc 77
		assert_last_step token
		assert_grep -F "AADSTS${c%% *}" "$LAST_OUT.out"
		assert_grep -F "${c#* }" "$LAST_OUT.out"
		assert_no_grep -F "wrong-secret-value" "$LAST_OUT.out"
		kill "$INJ_PID"
	done
}

# JWT claims that cannot fit: audience, app role, delegated user.
case_claims() {
	start_injector oauthfault.py 0 --mode jwt \
		--claims "{$ISS, \"aud\": \"https://graph.microsoft.com\", \"roles\": [\"IMAP.AccessAsApp\"]}"
	run_check $(ms_account)
	assert_rc 77
	assert_last_step "token claims"
	assert_grep -F "the token's audience is https://graph.microsoft.com, not Exchange Online" "$LAST_OUT.out"
	assert_grep -F "oauth_scope" "$LAST_OUT.out"
	kill "$INJ_PID"

	start_injector oauthfault.py 0 --mode jwt \
		--claims "{$ISS, $AUD, \"roles\": [\"Mail.Read\"]}"
	run_check $(ms_account)
	assert_rc 77
	assert_last_step "token claims"
	assert_grep -F "roles (Mail.Read) do not hold IMAP.AccessAsApp" "$LAST_OUT.out"
	assert_grep -F "Office 365 Exchange Online > Application permissions > IMAP.AccessAsApp and grant admin consent" "$LAST_OUT.out"
	kill "$INJ_PID"

	# POP3 wants POP.AccessAsApp.
	start_injector oauthfault.py 0 --mode jwt \
		--claims "{$ISS, $AUD, \"roles\": [\"IMAP.AccessAsApp\"]}"
	run_check $(ms_account) protocol=pop3 "port=$POP3S_PORT"
	assert_rc 77
	assert_grep -F "do not hold POP.AccessAsApp" "$LAST_OUT.out"
	kill "$INJ_PID"

	# A delegated token (an external command's) for another user.
	jwt "{$ISS, $AUD, \"scp\": \"IMAP.AccessAsUser.All offline_access\", \"upn\": \"someone.else@contoso.com\"}" >"$CASE_DIR/token"
	run_check oauth_provider=microsoft oauth_token_url= oauth_client_id= \
		oauth_client_secret= oauth_scope= \
		"oauth_token_command=cat $CASE_DIR/token"
	assert_rc 77
	assert_last_step "token claims"
	assert_grep -F "the token was issued to someone.else@contoso.com, but the account logs in as $CASE_USER" "$LAST_OUT.out"
	assert_no_grep -F "$(cat "$CASE_DIR/token")" "$LAST_OUT.out"
	assert_no_grep -F "$(cat "$CASE_DIR/token")" "$LAST_OUT.err"
}

# Claims that fit, a login Dovecot refuses: the Exchange steps, in order.
case_login_refused() {
	start_injector oauthfault.py 0 --mode jwt \
		--claims "{$ISS, \"aud\": \"00000002-0000-0ff1-ce00-000000000000\", \"roles\": [\"IMAP.AccessAsApp\"]}"
	run_check $(ms_account)
	assert_rc 77
	assert_last_step login
	assert_grep "^acct: token claims: ok \(audience Exchange Online" "$LAST_OUT.out"
	assert_grep -F "New-ServicePrincipal -AppId $MS_CLIENT -ObjectId <object ID>" "$LAST_OUT.out"
	assert_grep -F "ENTERPRISE APPLICATION" "$LAST_OUT.out"
	assert_grep -F "Add-MailboxPermission -Identity $CASE_USER -User <object ID> -AccessRights FullAccess" "$LAST_OUT.out"
	assert_grep -F "Set-CASMailbox -Identity $CASE_USER -ImapEnabled \$true" "$LAST_OUT.out"
	assert_grep -F "user = $CASE_USER is the mailbox's primary SMTP address" "$LAST_OUT.out"
	# In that order.
	assert_eq "1. 2. 3. 4." "$(grep -oE '^  [0-9]+\.' "$LAST_OUT.out" | tr -d ' ' | tr '\n' ' ' | sed 's/ $//')" "steps numbered"
	assert_eq "New-ServicePrincipal Add-MailboxPermission Set-CASMailbox PrimarySmtpAddress" \
		"$(grep -oE 'New-ServicePrincipal|Add-MailboxPermission|Set-CASMailbox|PrimarySmtpAddress$' "$LAST_OUT.out" | tr '\n' ' ' | sed 's/ $//')" "step order"
	kill "$INJ_PID"
	# POP3: POP enabled instead.
	start_injector oauthfault.py 0 --mode jwt \
		--claims "{$ISS, $AUD, \"roles\": [\"POP.AccessAsApp\"]}"
	run_check $(ms_account) protocol=pop3 "port=$POP3S_PORT"
	assert_rc 77
	assert_last_step login
	assert_grep -F "Set-CASMailbox -Identity $CASE_USER -PopEnabled \$true" "$LAST_OUT.out"
	kill "$INJ_PID"
	# Another provider: no Exchange steps, the server's trust named.
	start_injector oauthfault.py 0 --mode jwt --claims '{"iss": "https://idp.example"}'
	run_check "oauth_token_url=http://127.0.0.1:$INJ_PORT/token"
	assert_rc 77
	assert_last_step login
	assert_grep -F "token claims: ok (skipped: pullmail has no claim rules for the issuer https://idp.example)" "$LAST_OUT.out"
	assert_grep -F "the token was good, so the mail server does not accept it for user $CASE_USER" "$LAST_OUT.out"
	assert_no_grep "Set-CASMailbox" "$LAST_OUT.out"
}

# A folder the server does not have: SELECT, 66, after INBOX passed.
case_missing_folder() {
	seed_messages
	run_check folder=INBOX folder=NoSuchFolder
	assert_rc 66
	assert_last_step "SELECT NoSuchFolder"
	assert_grep "^acct: SELECT INBOX: ok" "$LAST_OUT.out"
	assert_grep -F "check the folder setting" "$LAST_OUT.out"
}

# Delivery targets that cannot take mail: 73, after the login passed.
case_delivery() {
	: >"$CASE_DIR/plainfile"
	run_check "deliver=maildir:$CASE_DIR/plainfile/Maildir"
	assert_rc 73
	assert_last_step delivery
	assert_grep "^acct: SELECT INBOX: ok" "$LAST_OUT.out"
	assert_grep -F "$CASE_DIR/plainfile is not a directory" "$LAST_OUT.out"
	mkdir -p "$CASE_DIR/M2"
	: >"$CASE_DIR/M2/tmp"
	run_check "deliver=maildir:$CASE_DIR/M2"
	assert_rc 73
	assert_grep -F "$CASE_DIR/M2/tmp is not a directory" "$LAST_OUT.out"
	run_check "deliver=mda:pullmail-no-such-mda -d %T"
	assert_rc 73
	assert_last_step delivery
	assert_grep -F "the MDA program pullmail-no-such-mda was not found in \$PATH" "$LAST_OUT.out"
	run_check "deliver=mda:/nonexistent/procmail"
	assert_rc 73
	assert_grep -F "/nonexistent/procmail was not found or is not executable; install it (apt install procmail) or give its full path" "$LAST_OUT.out"
	run_check "deliver=smtp:127.0.0.1:1"
	assert_rc 73
	assert_last_step delivery
	assert_grep -F "acct: delivery: FAILED: smtp: 127.0.0.1:1: cannot connect: Connection refused; check that the MTA" "$LAST_OUT.out"
}

run_case all_ok case_all_ok
run_case pop3_lmtp_smtp case_pop3_lmtp_smtp
run_case secret_perms case_secret_perms
run_case unknown_host case_unknown_host
run_case closed_port case_closed_port
run_case tls case_tls
run_case token_refused case_token_refused
run_case aadsts case_aadsts
run_case claims case_claims
run_case login_refused case_login_refused
run_case missing_folder case_missing_folder
run_case delivery case_delivery
e2e_finish
