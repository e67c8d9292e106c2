#!/bin/sh
# An imported configuration works as it stands: a fetchmailrc and a
# getmailrc naming the test Dovecot (a password account over IMAPS, the
# test CA) are imported with `pullmail import --secrets-dir`, and pullmail
# fetches with the result, unedited: the messages arrive byte for byte
# where the rc file sent them, and are deleted or kept as it said.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require procmail
e2e_start_servers

FIX=$top_srcdir/tests/e2e/deliver

# import KIND RCFILE: the configuration in $CASE_DIR/config, the password
# in $CASE_DIR/secrets, and never on the output.
import() {
	mkdir -m 700 "$CASE_DIR/secrets"
	run_pm import "$1" --secrets-dir "$CASE_DIR/secrets" "$2"
	assert_rc 0
	write_config "$CASE_DIR/config" <"$LAST_OUT.out"
	assert_no_grep -F "$PASSWORD_SECRET" "$LAST_OUT.out"
	assert_no_grep -F "$PASSWORD_SECRET" "$LAST_OUT.err"
	# pullmail keeps its state under $HOME: the case's own.
	HOME=$CASE_DIR
	export HOME
}

# fetchmail: noise words, 'there ... here', no keep, an MDA (procmail
# filing by Subject).
case_fetchmailrc() {
	CASE_USER=$PASSWORD_USER
	seed_messages
	mkdir -p "$CASE_DIR/pm"
	cat >"$CASE_DIR/fetchmailrc" <<-EOF
	# As a fetchmail user would have it.
	poll 127.0.0.1 with proto IMAP and port $IMAPS_PORT
	    user "$PASSWORD_USER" there with password "$PASSWORD_SECRET" is nobody here
	    options ssl sslcertfile "$CA_FILE" no keep
	    mda "/usr/bin/procmail -f %F DEST=$CASE_DIR/pm $FIX/procmailrc"
	EOF
	import fetchmailrc "$CASE_DIR/fetchmailrc"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/pm/ci" $(for f in $SEEDS; do
		grep -l '^Subject: \[ci\]' "$f"; done)
	# shellcheck disable=SC2046
	assert_same_messages "$CASE_DIR/pm/other" $(for f in $SEEDS; do
		grep -L '^Subject: \[ci\]' "$f"; done)
	assert_eq 0 "$(srv_count "$CASE_USER")" "messages left on the server"
}

# getmail6: IMAPS with a CA file, a folder, a Maildir, messages kept.
# (Another folder of the same password account than the case above.)
case_getmailrc() {
	CASE_USER=$PASSWORD_USER
	seed_messages Archive
	cat >"$CASE_DIR/getmailrc" <<-EOF
	[retriever]
	type = SimpleIMAPSSLRetriever
	server = 127.0.0.1
	port = $IMAPS_PORT
	username = $PASSWORD_USER
	password = $PASSWORD_SECRET
	ca_certs = $CA_FILE
	mailboxes = ("Archive",)

	[destination]
	type = Maildir
	path = $CASE_DIR/Maildir/

	[options]
	read_all = false
	delivered_to = false
	received = false
	EOF
	import getmailrc "$CASE_DIR/getmailrc"
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	# shellcheck disable=SC2086
	assert_same_messages "$CASE_DIR/Maildir" $SEEDS
	assert_eq "$NSEEDS" "$(srv_count "$CASE_USER" Archive)" \
	    "messages left on the server"
	run_pm -c "$CASE_DIR/config"
	assert_rc 1
}

run_case fetchmailrc case_fetchmailrc
run_case getmailrc case_getmailrc
e2e_finish
