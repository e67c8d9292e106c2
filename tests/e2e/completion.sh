#!/bin/sh
# The bash completion script (contrib/bash-completion/pullmail, generated
# by make): sourced in bash with COMP_WORDS and COMP_CWORD set as bash sets
# them, it offers the subcommands, the options, and the account names of
# the configuration file (given with -c, or the default one).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require bash
SCRIPT=$top_builddir/contrib/bash-completion/pullmail

# complete WORD...: what the script offers for the command line WORD...
# (the last word is the one being completed), one word a line, sorted.
complete_words() {
	bash -c '. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_pullmail; printf "%s\n" "${COMPREPLY[@]}"' \
		complete "$SCRIPT" "$@" | sort | sed '/^$/d' | tr '\n' ' '
}

# assert_offers "EXPECTED WORDS" WORD...
assert_offers() {
	local want=$1 got
	shift
	want=$(printf "%s\n" $want | sort | sed "/^$/d" | tr "\n" " ")
	got=$(complete_words "$@")
	echo "pullmail $* -> $got"
	assert_eq "$want" "$got" "completions of '$*'"
}

write_test_config() {
	write_config "$1" <<-'EOF2'
	# [account commented-out]
	[defaults]
	server = outlook.office365.com

	[account contoso-shared]
	user = shared@contoso.example
	  [account   sales ]
	user = sales@contoso.example
	[account support.2]
	user = support@contoso.example
	EOF2
}

case_generated() {
	[ -f "$SCRIPT" ] || fail "$SCRIPT not built"
	assert_no_grep -F '@sysconfdir@' "$SCRIPT"
	bash -n "$SCRIPT" || fail "bash -n $SCRIPT failed"
	# Registered for the command pullmail.
	assert_eq "complete -F _pullmail pullmail" \
		"$(bash -c '. "$1"; complete -p pullmail' x "$SCRIPT")"
}

case_subcommands() {
	XDG_CONFIG_HOME=$CASE_DIR/empty
	export XDG_CONFIG_HOME
	assert_offers "authorize token status import check" pullmail ""
	assert_offers "status" pullmail st
	assert_offers "check" pullmail -v ch
	assert_offers "fetchmailrc getmailrc" pullmail import ""
	assert_offers "getmailrc" pullmail import g
}

case_options() {
	assert_offers "--check-config" pullmail --ch
	assert_offers "--config" pullmail --con
	assert_offers "--trace" pullmail -v --tr
	assert_offers "--verbose --version" pullmail --ver
	write_test_config "$CASE_DIR/config"
	assert_offers "--info" pullmail -c "$CASE_DIR/config" token sales -
}

case_accounts() {
	write_test_config "$CASE_DIR/config"
	XDG_CONFIG_HOME=$CASE_DIR/empty
	export XDG_CONFIG_HOME
	assert_offers "authorize token status import check contoso-shared sales support.2" \
		pullmail -c "$CASE_DIR/config" ""
	assert_offers "sales status support.2" pullmail -c "$CASE_DIR/config" s
	assert_offers "sales support.2" pullmail --config="$CASE_DIR/config" status s
	assert_offers "contoso-shared" pullmail -c "$CASE_DIR/config" check c
	assert_offers "contoso-shared sales support.2" \
		pullmail -c "$CASE_DIR/config" authorize ""
	# authorize and check take one account.
	assert_offers "" pullmail -c "$CASE_DIR/config" check sales ""
	# Fetching several accounts: the next one is offered too.
	assert_offers "contoso-shared sales support.2" \
		pullmail -c "$CASE_DIR/config" sales ""
	# Without -c: the default file, $XDG_CONFIG_HOME/pullmail/config.
	mkdir -p "$CASE_DIR/xdg/pullmail"
	write_test_config "$CASE_DIR/xdg/pullmail/config"
	XDG_CONFIG_HOME=$CASE_DIR/xdg
	assert_offers "contoso-shared" pullmail token co
	# A file that is not there: no accounts, no error.
	assert_offers "" pullmail -c "$CASE_DIR/nonexistent" status ""
}

# -c and --plugin-dir complete file and directory names.
case_paths() {
	mkdir -p "$CASE_DIR/dir/plugins"
	: >"$CASE_DIR/dir/pm.conf"
	assert_offers "$CASE_DIR/dir/plugins" pullmail --plugin-dir "$CASE_DIR/dir/p"
	assert_offers "$CASE_DIR/dir/plugins $CASE_DIR/dir/pm.conf" \
		pullmail -c "$CASE_DIR/dir/p"
}

run_case generated case_generated
run_case subcommands case_subcommands
run_case options case_options
run_case accounts case_accounts
run_case paths case_paths
e2e_finish
