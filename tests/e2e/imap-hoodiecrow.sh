#!/bin/sh
# pullmail against a second, independent IMAP server: hoodiecrow-imap (npm),
# with and without UIDPLUS and SASL-IR, over implicit TLS.  Every delivered
# message is compared byte for byte with what the server holds.
#
# The central case is the one of issue 10 item 6: without UIDPLUS, keep = no
# must not send a plain EXPUNGE, which would also remove a message another
# client flagged \Deleted before the run and whose delivery failed (the MDA
# exits 75).  hoodiecrow's XOAUTH2 accepts one configured access token: the
# test takes one from the real OAuth server (oidc-provider) and hands it to
# both hoodiecrow and pullmail (oauth_token_command).  A folder named in
# UTF-8 is found there too (item 10).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

FIX=$top_srcdir/tests/e2e/deliver

e2e_start_servers

# hoodiecrow's plugins in each configuration (STARTTLS is not needed:
# the server speaks implicit TLS).
HC_FULL="SASL-IR XOAUTH2 UIDPLUS AUTH-PLAIN ID"
HC_NO_UIDPLUS="SASL-IR XOAUTH2 AUTH-PLAIN ID"
HC_NO_SASL_IR="UIDPLUS AUTH-PLAIN"

# hc_start PLUGINS [FILE...]: start hoodiecrow for CASE_USER, whose INBOX
# (or the folder $HC_FOLDER, named as on the wire) holds $SEEDS, the FILEs
# among them flagged \Deleted by another client; pullmail gets the same
# access token through $CASE_DIR/token.
hc_start() {
	local plugins=$1 token
	shift
	token=$(srv_token "$APP_ID" "$APP_SECRET" imap) ||
		fail "no token from the OAuth server"
	[ -n "$token" ] || fail "empty token from the OAuth server"
	printf '#!/bin/sh\necho %s\n' "$token" >"$CASE_DIR/token"
	chmod 0700 "$CASE_DIR/token"
	HC_PLUGINS=$plugins HC_USER=$CASE_USER HC_TOKEN=$token \
	HC_PASSWORD=$PASSWORD_SECRET HC_CERT=$SRV_RUN/certs/server.pem \
	HC_KEY=$SRV_RUN/certs/server.key HC_SEEDS="$SEEDS" HC_DELETED="$*" \
	HC_FOLDER=${HC_FOLDER:-INBOX} \
	"$SRV_PYTHON" -c '
import json, os
e = os.environ
deleted = e["HC_DELETED"].split()
print(json.dumps({
    "plugins": e["HC_PLUGINS"].split(),
    "tls": {"cert": e["HC_CERT"], "key": e["HC_KEY"]},
    "users": {e["HC_USER"]: {"password": e["HC_PASSWORD"],
                             "token": e["HC_TOKEN"]}},
    "folders": {e["HC_FOLDER"]: [
        {"file": f, "flags": ["\\Deleted"] if f in deleted else []}
        for f in e["HC_SEEDS"].split()]},
}))' >"$CASE_DIR/hoodiecrow.json" || fail "cannot write the configuration"
	start_hoodiecrow "$CASE_DIR/hoodiecrow.json"
}

# hc_account [key=value]...: an account on hoodiecrow logging in with the
# token from $CASE_DIR/token.
hc_account() {
	hc_account_auth "oauth_token_command=$CASE_DIR/token" "$@"
}

# hc_account_auth [key=value]...: an account on hoodiecrow without OAuth
# settings: the arguments say how it logs in.
hc_account_auth() {
	account acct "port=$HC_PORT" "oauth_provider=" "oauth_token_url=" \
	    "oauth_client_id=" "oauth_client_secret=" "oauth_scope=" "$@"
}

# hc_held: the hashes of the messages hoodiecrow holds, sorted.
hc_held() {
	hoodiecrow_dump | cut -d' ' -f3 | sort
}

# hc_flags FILE: the flags hoodiecrow has on the message FILE holds.
hc_flags() {
	local sum
	sum=$(sha256sum <"$1" | cut -d' ' -f1)
	hoodiecrow_dump | awk -v s="$sum" '$3 == s { print $4 }'
}

# The hashes of FILE..., sorted.
hashes() {
	local f
	for f in "$@"; do
		sha256sum <"$f" | cut -d' ' -f1
	done | sort
}

# keep = yes with UIDPLUS and SASL-IR: every message byte for byte, none
# changed on the server; a second run fetches nothing.
case_keep() {
	seed_messages_only
	hc_start "$HC_FULL"
	hc_account "keep=yes" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	# shellcheck disable=SC2086
	assert_eq "$(hashes $SEEDS)" "$(hc_held)" "messages on the server"
	assert_no_grep -F 'Deleted' "$SRV_RUN/hoodiecrow-$CASE_NAME/dump"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_grep '^acct: no new messages$' "$LAST_OUT.out"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
}

# keep = no with UIDPLUS: UID EXPUNGE removes exactly what was delivered;
# a message another client flagged \Deleted whose delivery the MDA refuses
# (exit 75) stays, and is delivered by the next run.
case_uidplus_delete() {
	local lunch
	seed_messages_only
	lunch=$(grep -l '^Subject: Lunch' $SEEDS)
	hc_start "$HC_FULL" "$lunch"
	mkdir -p "$CASE_DIR/out/tmp" "$CASE_DIR/out/new" "$CASE_DIR/out/cur"
	touch "$CASE_DIR/refuse"
	hc_account "keep=no" \
	    "deliver=mda:/bin/sh $FIX/mda-tempfail.sh $CASE_DIR/out $CASE_DIR/refuse Lunch" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'left on the server' "$LAST_OUT.err"
	assert_eq "$(hashes "$lunch")" "$(hc_held)" "messages on the server"
	assert_eq '\Deleted' "$(hc_flags "$lunch")" "flags of the refused message"
	rm -f "$CASE_DIR/refuse"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/out" $SEEDS
	assert_eq "" "$(hc_held)" "messages on the server"
}

# keep = no without UIDPLUS (issue 10 item 6): no plain EXPUNGE.  The
# delivered messages are flagged \Seen \Deleted and stay; the message
# another client flagged \Deleted, which the MDA refuses, stays untouched;
# the next run delivers nothing twice and quietly flags again.
case_no_uidplus_delete() {
	local lunch other f
	seed_messages_only
	lunch=$(grep -l '^Subject: Lunch' $SEEDS)
	other=$(grep -l '^Subject: Empty body' $SEEDS)
	hc_start "$HC_NO_UIDPLUS" "$lunch" "$other"
	mkdir -p "$CASE_DIR/out/tmp" "$CASE_DIR/out/new" "$CASE_DIR/out/cur"
	touch "$CASE_DIR/refuse"
	hc_account "keep=no" \
	    "deliver=mda:/bin/sh $FIX/mda-tempfail.sh $CASE_DIR/out $CASE_DIR/refuse Lunch" |
	    write_config "$CASE_DIR/config"
	run_pm -v -c "$CASE_DIR/config"
	assert_rc 75
	assert_grep 'left on the server' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_eq "$(hashes $SEEDS)" "$(hc_held)" "messages on the server"
	assert_grep -F 'flagged \Deleted but not expunged: the server lacks UIDPLUS' \
	    "$LAST_OUT.err"
	assert_eq '\Deleted' "$(hc_flags "$lunch")" "flags of the refused message"
	for f in $SEEDS; do
		[ "$f" = "$lunch" ] && continue
		case ,$(hc_flags "$f"), in
		*,'\Seen',*) ;;
		*) fail "$f is not flagged \\Seen: $(hc_flags "$f")" ;;
		esac
		case ,$(hc_flags "$f"), in
		*,'\Deleted',*) ;;
		*) fail "$f is not flagged \\Deleted: $(hc_flags "$f")" ;;
		esac
	done
	assert_eq 4 "$(maildir_count "$CASE_DIR/out")" "messages delivered"
	# The next run: the refused message is tried again, nothing else is
	# delivered again, and only the refusal is reported.
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_eq 4 "$(maildir_count "$CASE_DIR/out")" "messages delivered"
	assert_eq 1 "$(grep -c 'left on the server' "$LAST_OUT.err")" \
	    "messages left on the server"
	assert_no_grep -i 'delet|expung' "$LAST_OUT.err"
	rm -f "$CASE_DIR/refuse"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/out" $SEEDS
	# shellcheck disable=SC2086
	assert_eq "$(hashes $SEEDS)" "$(hc_held)" "messages on the server"
}

# expunge = all without UIDPLUS: the user's choice, a plain EXPUNGE, which
# also removes the refused message another client flagged \Deleted.
case_no_uidplus_expunge_all() {
	local lunch
	seed_messages_only
	lunch=$(grep -l '^Subject: Lunch' $SEEDS)
	hc_start "$HC_NO_UIDPLUS" "$lunch"
	mkdir -p "$CASE_DIR/out/tmp" "$CASE_DIR/out/new" "$CASE_DIR/out/cur"
	touch "$CASE_DIR/refuse"
	hc_account "keep=no" "expunge=all" \
	    "deliver=mda:/bin/sh $FIX/mda-tempfail.sh $CASE_DIR/out $CASE_DIR/refuse Lunch" |
	    write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 75
	assert_eq 4 "$(maildir_count "$CASE_DIR/out")" "messages delivered"
	assert_eq "" "$(hc_held)" "messages on the server"
}

# Without SASL-IR hoodiecrow's XOAUTH2 refuses to work: pullmail logs in
# with AUTHENTICATE PLAIN, its response sent after the server's "+".
case_no_sasl_ir() {
	seed_messages_only
	hc_start "$HC_NO_SASL_IR"
	hc_account_auth "keep=yes" "auth=plain" \
	    "password=$PASSWORD_SECRET" | write_config "$CASE_DIR/config"
	run_pm --trace -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep -E 'AUTHENTICATE PLAIN$' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	# shellcheck disable=SC2086
	assert_eq "$(hashes $SEEDS)" "$(hc_held)" "messages on the server"
}

# A folder named in UTF-8 (issue 10, item 10): hoodiecrow, like Dovecot,
# knows it by its modified UTF-7 name only.
case_utf8_folder() {
	seed_messages_only
	HC_FOLDER='&AMQ-pfel' hc_start "$HC_FULL"
	hc_account "keep=yes" "folder=Äpfel" | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 5 "$(hoodiecrow_dump | grep -c '^&AMQ-pfel ')" \
	    "messages in &AMQ-pfel"
}

# make_messages into $CASE_DIR/seed, nothing seeded into Dovecot.
seed_messages_only() {
	SEEDS=$(make_messages "$CASE_DIR/seed" "$CASE_NAME")
}

run_case hoodiecrow_keep case_keep
run_case hoodiecrow_uidplus_delete case_uidplus_delete
run_case hoodiecrow_no_uidplus_delete case_no_uidplus_delete
run_case hoodiecrow_no_uidplus_expunge_all case_no_uidplus_expunge_all
run_case hoodiecrow_no_sasl_ir case_no_sasl_ir
run_case hoodiecrow_utf8_folder case_utf8_folder
e2e_finish
