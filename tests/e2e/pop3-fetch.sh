#!/bin/sh
# The POP3 plugin against a real Dovecot: POP3S and POP3 with STLS, XOAUTH2
# and OAUTHBEARER with tokens from the real OAuth server (one of about
# 2,000 characters, one of 4 KiB: two-step AUTH), AUTH PLAIN, keep = yes and
# keep = no, the size limit; every message compared byte for byte with the
# server's copy.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

# Clients whose opaque tokens are as long as Microsoft's JWTs (and longer).
LONG_ID=pullmail-long
LONG_SECRET=long-$(srv_random 16)
HUGE_ID=pullmail-huge
HUGE_SECRET=huge-$(srv_random 16)
SRV_OAUTH_EXTRA_CLIENTS="{ \"client_id\": \"$LONG_ID\", \"client_secret\": \"$LONG_SECRET\", \"scope\": \"imap pop3\", \"token_length\": 2000 },
	    { \"client_id\": \"$HUGE_ID\", \"client_secret\": \"$HUGE_SECRET\", \"scope\": \"imap pop3\", \"token_length\": 4096 }"
export SRV_OAUTH_EXTRA_CLIENTS

e2e_start_servers
echo "pop3 $POP3_PORT, pop3s $POP3S_PORT"

# pop3_account NAME [key=value]...: account() for POP3S with the pop3
# scope; the caller's keys win.
pop3_account() {
	local name=$1 k o extra=
	shift
	for k in protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3; do
		for o in "$@"; do
			[ "${o%%=*}" = "${k%%=*}" ] && continue 2
		done
		extra="$extra $k"
	done
	# shellcheck disable=SC2086
	account "$name" $extra "$@"
}

# pop3_messages DIR TAG: make_messages plus bodies that test dot-stuffing
# and mbox quoting: lines ".", "..x", "...", ". ", "From ", ">From ".
pop3_messages() {
	make_messages "$1" "$2" >/dev/null
	cat >"$1/6.eml" <<-EOF
	From: Dot Tester <dots@example.org>
	To: $CASE_USER
	Subject: dots and From lines ($2)
	Date: Sat, 07 Jun 2025 10:00:00 +0000
	Message-ID: <6.$2@example.org>

	.
	..x
	...
	. 
	.x
	From the beginning, a line that mbox would quote.
	>From an already quoted line.
	.
	EOF
	ls "$1"/*.eml
}

# pop3_seed: seed CASE_USER with pop3_messages; SEEDS and NSEEDS.
pop3_seed() {
	SEEDS=$(pop3_messages "$CASE_DIR/seed" "$CASE_NAME")
	# shellcheck disable=SC2086
	srv_seed "$CASE_USER" INBOX $SEEDS || fail "seeding failed"
	NSEEDS=$(echo "$SEEDS" | wc -l | tr -d ' ')
}

# No access token, no password may appear in what pullmail printed.
assert_no_secrets() {
	local t
	for t in $(issued_tokens); do
		assert_no_grep -F -- "$t" "$LAST_OUT.err"
		assert_no_grep -F -- "$t" "$LAST_OUT.out"
	done
	assert_no_grep -F -- "$PASSWORD_SECRET" "$LAST_OUT.err"
	assert_no_grep -F -- "$APP_SECRET" "$LAST_OUT.err"
}

# POP3S, XOAUTH2 in two steps (the default); keep = yes: a second run
# fetches nothing, a message added in between is the only one fetched.
case_pop3s_xoauth2_keep() {
	pop3_seed
	pop3_account acct auth=xoauth2 | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_grep "acct: $NSEEDS messages delivered" "$LAST_OUT.out"
	# Two steps: AUTH alone, "+", then the response.
	assert_grep -E 'C: AUTH XOAUTH2$' "$LAST_OUT.err"
	assert_grep -E 'S: \+ ?$' "$LAST_OUT.err"
	# PIPELINING (Dovecot offers it): the RETRs go out together.
	assert_grep 'S: PIPELINING' "$LAST_OUT.err"
	grep -A1 'C: RETR 1$' "$LAST_OUT.err" | tail -n 1 | grep -q 'C: RETR 2$' ||
		fail "RETR commands were not pipelined"
	assert_no_secrets
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	[ -n "$(find "$CASE_DIR/state" -type f -name '*acct*' 2>/dev/null)" ] ||
		[ -n "$(find "$CASE_DIR/state" -type f)" ] || fail "no state file"

	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_grep "no new messages" "$LAST_OUT.out"
	assert_eq "$NSEEDS" "$(maildir_count "$CASE_DIR/Maildir")" "local messages"

	local more
	more=$(make_messages "$CASE_DIR/more" "$CASE_NAME-more" | head -n 1)
	srv_seed "$CASE_USER" INBOX $more || fail "seeding failed"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_grep "acct: 1 message delivered" "$LAST_OUT.out"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS $more
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
}

# POP3 with STLS, OAUTHBEARER (initial response on the AUTH line: it fits).
case_stls_oauthbearer() {
	pop3_seed
	pop3_account acct "port=$POP3_PORT" tls=starttls auth=oauthbearer |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_grep 'C: STLS' "$LAST_OUT.err"
	assert_grep 'C: AUTH OAUTHBEARER .*redacted' "$LAST_OUT.err"
	assert_no_secrets
}

# pop3_xoauth2_two_step = no with a short token: one line.
case_xoauth2_one_line() {
	pop3_seed
	pop3_account acct auth=xoauth2 pop3_xoauth2_two_step=no |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_grep 'C: AUTH XOAUTH2 .*redacted' "$LAST_OUT.err"
	assert_no_grep -E 'C: AUTH XOAUTH2$' "$LAST_OUT.err"
}

# A token of about 2,000 characters: the AUTH line would pass 255 octets,
# so even OAUTHBEARER and a one-line XOAUTH2 setting go in two steps.
long_token_case() {
	local id=$1 secret=$2 len=$3 mech=$4 t
	pop3_seed
	pop3_account acct "auth=$mech" pop3_xoauth2_two_step=no \
		"oauth_client_id=$id" "oauth_client_secret=$secret" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	t=$(grep "TOKEN client=$id .*status=200" "$OAUTH_LOG" | tail -n 1 |
		sed -n 's/.* access_token=\([^ ]*\).*/\1/p')
	assert_eq "$len" "${#t}" "length of the token the server issued"
	assert_grep -E "C: AUTH $(echo "$mech" | tr a-z A-Z)\$" "$LAST_OUT.err"
	assert_grep -E 'S: \+ ?$' "$LAST_OUT.err"
	assert_no_secrets
}

case_long_token_xoauth2() {
	long_token_case "$LONG_ID" "$LONG_SECRET" 2000 xoauth2
}

case_long_token_oauthbearer() {
	long_token_case "$LONG_ID" "$LONG_SECRET" 2000 oauthbearer
}

case_token_4k() {
	long_token_case "$HUGE_ID" "$HUGE_SECRET" 4096 xoauth2
}

# keep = no: after the run the messages are in the Maildir and gone from
# the server; a second run has nothing to do.
case_delete() {
	pop3_seed
	pop3_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
	# The deletions went out only after the state was written: DELE
	# follows the last RETR (the trace has no commit line; the order of
	# the commands is what the server saw).
	[ "$(grep -n 'C: DELE' "$LAST_OUT.err" | head -n 1 | cut -d: -f1)" -gt \
	  "$(grep -n 'C: RETR' "$LAST_OUT.err" | tail -n 1 | cut -d: -f1)" ] ||
		fail "DELE before the last RETR"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
}

# keep = no and the Maildir refuses the messages: nothing is deleted; once
# it works again everything arrives once, then goes.
case_delete_delivery_fails() {
	pop3_seed
	: >"$CASE_DIR/not-a-directory"
	pop3_account acct keep=no \
		"deliver=maildir:$CASE_DIR/not-a-directory/Maildir" |
		write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 73
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER")" "messages on the server"
	pop3_account acct keep=no | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# The size limit skips (and reports) larger messages on every run until
# it is raised.
case_size_limit() {
	local big i
	pop3_seed
	big=$CASE_DIR/seed/big.eml
	{
		printf 'From: big@example.org\nTo: %s\nSubject: big\n\n' "$CASE_USER"
		i=0
		while [ $i -lt 400 ]; do
			echo "line $i of a message larger than the limit, padded out to be long enough"
			i=$((i + 1))
		done
	} >"$big"
	srv_seed "$CASE_USER" INBOX "$big" || fail "seeding failed"
	pop3_account acct keep=no size_limit=10k | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" -v
	assert_rc 0
	assert_grep 'acct: 1 message skipped for size' "$LAST_OUT.out"
	assert_grep 'over the size limit; skipped' "$LAST_OUT.err"
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 1 "$(srv_count "$CASE_USER")" "the big message stays"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
	assert_grep 'acct: 1 message skipped for size' "$LAST_OUT.out"
	pop3_account acct keep=no size_limit=1M | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS "$big"
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# A password account: AUTH PLAIN (Dovecot offers SASL PLAIN).
case_password_plain() {
	CASE_USER=$PASSWORD_USER
	pop3_seed
	{
		echo "[account pw]"
		echo "server = 127.0.0.1"
		echo "port = $POP3S_PORT"
		echo "protocol = pop3"
		echo "ca_file = $CA_FILE"
		echo "user = $PASSWORD_USER"
		echo "password = $PASSWORD_SECRET"
		echo "keep = no"
		echo "deliver = maildir:$CASE_DIR/Maildir"
		echo "state_dir = $CASE_DIR/state"
	} | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --trace
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq 0 "$(srv_count "$PASSWORD_USER")" "messages left on the server"
	assert_grep 'C: AUTH PLAIN' "$LAST_OUT.err"
	assert_no_secrets
}

# A token without the pop3 scope: Dovecot refuses it, a clear
# authentication error, nothing delivered.
case_wrong_scope() {
	pop3_seed
	pop3_account acct oauth_scope=imap | write_config "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config"
	assert_rc 77
	assert_grep 'server refused the XOAUTH2 login' "$LAST_OUT.err"
	assert_eq 0 "$(maildir_count "$CASE_DIR/Maildir")" "local messages"
	assert_no_secrets
}

run_case pop3s_xoauth2_keep case_pop3s_xoauth2_keep
run_case stls_oauthbearer case_stls_oauthbearer
run_case xoauth2_one_line case_xoauth2_one_line
run_case long_token_xoauth2 case_long_token_xoauth2
run_case long_token_oauthbearer case_long_token_oauthbearer
run_case token_4k case_token_4k
run_case delete case_delete
run_case delete_delivery_fails case_delete_delivery_fails
run_case size_limit case_size_limit
run_case password_plain case_password_plain
run_case wrong_scope case_wrong_scope
e2e_finish
