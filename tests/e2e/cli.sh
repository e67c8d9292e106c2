#!/bin/sh
# The command line: --version, --help, usage errors, --check-config on good
# and broken files, and the plugin loader refusing a wrong or missing
# plugin.  No server is needed: nothing here may connect anywhere.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

e2e_require certtool
e2e_make_run_dir
srv_certs

# Nothing listens there: --check-config must not try, and the plugin tests
# must fail before connecting.
IMAPS_PORT=1
OAUTH_TOKEN_URL=http://127.0.0.1:1/token

ABI=$(sed -n 's/^#define PM_PLUGIN_ABI \([0-9][0-9]*\)u.*/\1/p' \
	"$top_srcdir/include/pullmail/plugin.h")
VERSION=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' \
	"$top_builddir/autoconf.h" 2>/dev/null)

# assert_number FILE N: N appears in FILE, not as part of a longer number.
assert_number() {
	grep -qE "(^|[^0-9])$2([^0-9]|$)" "$1" ||
		fail "number $2 not in $(basename "$1"): $(head -n 3 "$1")"
}

# assert_one_line FILE
assert_one_line() {
	assert_eq 1 "$(wc -l <"$1" | tr -d ' ')" "lines in $(basename "$1")"
}

# The line number of the first line of FILE matching PATTERN.
line_of() {
	grep -n -e "$2" "$1" | head -n 1 | cut -d: -f1
}

good_config() {
	write_config "$CASE_DIR/config" <<-EOF
	# a good configuration
	[defaults]
	keep = yes

	$(account one)
	$(account two "user=two@$MAIL_DOMAIN" "tls=starttls" "auth=oauthbearer" \
		"folder=INBOX" "folder=Archive" "mark_seen=yes")
	EOF
}

case_version() {
	run_pm --version
	assert_rc 0
	assert_grep '^pullmail ' "$LAST_OUT.out"
	[ -n "$VERSION" ] || fail "no PACKAGE_VERSION in autoconf.h"
	assert_grep -F "$VERSION" "$LAST_OUT.out"
	assert_eq "" "$(cat "$LAST_OUT.err")" "stderr of --version"
}

case_help() {
	run_pm --help
	assert_rc 0
	assert_grep 'usage: pullmail' "$LAST_OUT.out"
	for opt in --check-config --trace --plugin-dir --version -c; do
		assert_grep -F -- "$opt" "$LAST_OUT.out"
	done
}

case_unknown_option() {
	run_pm --no-such-option
	assert_rc 64
	assert_grep -F -- 'no-such-option' "$LAST_OUT.err"
	assert_eq "" "$(cat "$LAST_OUT.out")" "stdout of a usage error"
	run_pm -Z
	assert_rc 64
	run_pm -c
	assert_rc 64
}

case_missing_config() {
	run_pm -c "$CASE_DIR/does-not-exist"
	assert_rc 78
	assert_grep -F "$CASE_DIR/does-not-exist" "$LAST_OUT.err"
	assert_one_line "$LAST_OUT.err"
}

# Without -c and without a file at the default places: say where to write
# one.
case_no_config_anywhere() {
	XDG_CONFIG_HOME=$CASE_DIR/xdg HOME=$CASE_DIR run_pm
	assert_rc 78
	assert_grep "no configuration file: write " "$LAST_OUT.err"
	assert_grep -- "-c FILE" "$LAST_OUT.err"
	assert_one_line "$LAST_OUT.err"
}

case_check_good() {
	good_config
	run_pm -c "$CASE_DIR/config" --check-config
	assert_rc 0
	assert_no_grep -F "$APP_SECRET" "$LAST_OUT.out"
	assert_no_grep -F "$APP_SECRET" "$LAST_OUT.err"
	# The HarePoint form, the Microsoft provider, secret files.
	(umask 077 && echo "$MS_CLIENT_SECRET" >"$CASE_DIR/ms.secret")
	write_config "$CASE_DIR/ms" <<-EOF
	[account hp]
	server = 127.0.0.1
	port = 1
	ca_file = $CA_FILE
	user = hp@$MAIL_DOMAIN@$MS_CLIENT_ID@$MS_TENANT_ID
	password = $MS_CLIENT_SECRET
	deliver = maildir:$CASE_DIR/Maildir
	state_dir = $CASE_DIR/state

	[account ms]
	server = 127.0.0.1
	port = 1
	ca_file = $CA_FILE
	user = ms@$MAIL_DOMAIN
	oauth_provider = microsoft
	oauth_tenant = $MS_TENANT_ID
	oauth_client_id = $MS_CLIENT_ID
	oauth_client_secret_file = $CASE_DIR/ms.secret
	oauth_token_url = http://127.0.0.1:1/{tenant}/oauth2/v2.0/token
	oauth_client_auth = basic
	deliver = maildir:$CASE_DIR/Maildir
	state_dir = $CASE_DIR/state
	EOF
	run_pm -c "$CASE_DIR/ms" --check-config
	assert_rc 0
	# Checking creates nothing.
	[ ! -e "$CASE_DIR/Maildir" ] || fail "--check-config created the Maildir"
	[ ! -e "$CASE_DIR/state" ] || fail "--check-config created the state dir"
}

# broken NAME KEY LINE-CONTENT: a good config with LINE-CONTENT added to
# account one; --check-config must fail with 78 naming file, line and KEY.
broken() {
	local f=$CASE_DIR/$1
	write_config "$f" <<-EOF
	[account one]
	$3
	$(account one | sed 1d)
	EOF
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F "$f:2" "$LAST_OUT.err"
	[ -z "$2" ] || assert_grep -F -- "$2" "$LAST_OUT.err"
	assert_one_line "$LAST_OUT.err"
}

case_check_broken() {
	broken unknown-key colour 'colour = blue'
	broken bad-tls tls 'tls = sometimes'
	broken bad-port port 'port = 99999'
	broken port-junk port 'port = 99x'
	broken bad-protocol protocol 'protocol = smtp'
	broken bad-keep keep 'keep = maybe'
	broken bad-auth auth 'auth = kerberos'
	broken bad-deliver deliver 'deliver = carrier-pigeon:/tmp'
	broken bad-provider oauth_provider 'oauth_provider = yahoo'
	broken no-equals '' 'server 127.0.0.1'
}

case_check_sections() {
	local f=$CASE_DIR/sect
	write_config "$f" <<-EOF
	[account one
	server = 127.0.0.1
	EOF
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F "$f:1" "$LAST_OUT.err"
	write_config "$f" <<-EOF
	# a key before any section
	server = 127.0.0.1
	EOF
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F "$f:2" "$LAST_OUT.err"
	write_config "$f" <<-EOF
	[account one]
	server = 127.0.0.1
	[account one]
	server = 127.0.0.1
	EOF
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F "$f:3" "$LAST_OUT.err"
}

case_check_missing_keys() {
	local f=$CASE_DIR/missing
	account one "server=" >"$CASE_DIR/sect"
	write_config "$f" <"$CASE_DIR/sect"
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F "$f" "$LAST_OUT.err"
	assert_grep -F 'server' "$LAST_OUT.err"
	account one "oauth_token_url=" >"$CASE_DIR/sect"
	write_config "$f" <"$CASE_DIR/sect"
	run_pm -c "$f" --check-config
	assert_rc 78
	assert_grep -F 'oauth_token_url' "$LAST_OUT.err"
}

case_secret_permissions() {
	good_config
	chmod 0644 "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --check-config
	assert_rc 78
	assert_grep -F "$CASE_DIR/config" "$LAST_OUT.err"
	chmod 0640 "$CASE_DIR/config"
	run_pm -c "$CASE_DIR/config" --check-config
	assert_rc 78
	# A secret file readable by others is refused too, even when the
	# config itself is public.
	echo "$APP_SECRET" >"$CASE_DIR/app.secret"
	chmod 0644 "$CASE_DIR/app.secret"
	account one "oauth_client_secret=" \
		"oauth_client_secret_file=$CASE_DIR/app.secret" >"$CASE_DIR/pub"
	chmod 0644 "$CASE_DIR/pub"
	run_pm -c "$CASE_DIR/pub" --check-config
	assert_rc 78
	assert_grep -F "$CASE_DIR/app.secret" "$LAST_OUT.err"
	chmod 0600 "$CASE_DIR/app.secret"
	run_pm -c "$CASE_DIR/pub" --check-config
	assert_rc 0
}

case_unknown_account() {
	good_config
	run_pm -c "$CASE_DIR/config" --check-config no-such-account
	case $RC in 64|78) ;; *) fail "exit status $RC, expected 64 or 78" ;; esac
	assert_grep -F 'no-such-account' "$LAST_OUT.err"
}

# plugin_dir NAME [SOURCE.so]: a directory with SOURCE.so copied as imap.so.
plugin_dir() {
	mkdir -p "$CASE_DIR/$1"
	[ -z "${2:-}" ] || cp "$PULLMAIL_TEST_PLUGIN_DIR/$2" "$CASE_DIR/$1/imap.so" ||
		fail "no $PULLMAIL_TEST_PLUGIN_DIR/$2 (run make check)"
	echo "$CASE_DIR/$1"
}

case_plugin_bad_abi() {
	local dir
	dir=$(plugin_dir bad badabi.so) || exit 1
	good_config
	run_pm -c "$CASE_DIR/config" --plugin-dir "$dir" one
	assert_rc 70
	assert_one_line "$LAST_OUT.err"
	assert_grep -F "$dir/imap.so" "$LAST_OUT.err"
	[ -n "$ABI" ] || fail "no PM_PLUGIN_ABI in plugin.h"
	assert_number "$LAST_OUT.err" "$ABI"
	assert_number "$LAST_OUT.err" "$((ABI + 1))"
	# The environment variable is honoured, --plugin-dir wins over it.
	local good=$PULLMAIL_PLUGIN_DIR
	PULLMAIL_PLUGIN_DIR=$dir
	run_pm -c "$CASE_DIR/config" one
	assert_rc 70
	assert_grep -F "$dir/imap.so" "$LAST_OUT.err"
	run_pm -c "$CASE_DIR/config" --plugin-dir "$good" one
	assert_ne 70 "$RC" "--plugin-dir must override PULLMAIL_PLUGIN_DIR"
	assert_no_grep -F "$dir" "$LAST_OUT.err"
}

case_plugin_no_magic() {
	local dir
	dir=$(plugin_dir nomagic nomagic.so) || exit 1
	good_config
	run_pm -c "$CASE_DIR/config" --plugin-dir "$dir" one
	assert_rc 70
	assert_one_line "$LAST_OUT.err"
	assert_grep -F "$dir/imap.so" "$LAST_OUT.err"
}

case_plugin_missing() {
	local dir
	dir=$(plugin_dir empty) || exit 1
	good_config
	run_pm -c "$CASE_DIR/config" --plugin-dir "$dir" one
	# A missing plugin file is a configuration error (EX_CONFIG), unlike
	# a broken one (70 above).
	assert_rc 78
	assert_one_line "$LAST_OUT.err"
	assert_grep -F "$dir/imap.so" "$LAST_OUT.err"
	assert_grep -F "protocol 'imap'" "$LAST_OUT.err"
}

run_case version case_version
run_case help case_help
run_case unknown_option case_unknown_option
run_case missing_config case_missing_config
run_case no_config_anywhere case_no_config_anywhere
run_case check_good case_check_good
run_case check_broken case_check_broken
run_case check_sections case_check_sections
run_case check_missing_keys case_check_missing_keys
run_case secret_permissions case_secret_permissions
run_case unknown_account case_unknown_account
run_case plugin_bad_abi case_plugin_bad_abi
run_case plugin_no_magic case_plugin_no_magic
run_case plugin_missing case_plugin_missing
e2e_finish
