#!/bin/sh
# The ready configurations of contrib/examples/ are valid: `pullmail
# --check-config` accepts each one, with the secret files it names created
# in a private HOME; and without them it is refused (so the check does look
# at them).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

EXAMPLES="m365-app-only m365-app-only-harepoint m365-delegated gmail procmail
maildrop dovecot-lmtp postfix-smtp"

# example_case NAME: check contrib/examples/NAME.conf.
example_case() {
	local src=$top_srcdir/contrib/examples/$1.conf p n=0
	[ -f "$src" ] || fail "no $src"
	HOME=$CASE_DIR/home
	export HOME
	mkdir -p "$HOME/.config/pullmail"
	write_config "$CASE_DIR/config" <"$src"
	# Without its secret files the configuration is refused.
	if grep -Eq '^[a-z_]+_file *=' "$src"; then
		run_pm --check-config -c "$CASE_DIR/config"
		assert_rc 78
		assert_grep 'No such file' "$LAST_OUT.err"
	fi
	for p in $(sed -n 's/^[a-z_]*_file *= *//p' "$src"); do
		case $p in
		"~/"*) p=$HOME/${p#"~/"} ;;
		*) fail "$1.conf: secret file $p is not under ~/" ;;
		esac
		(umask 077 && echo "example-secret-$n" >"$p")
		n=$((n + 1))
	done
	run_pm --check-config -c "$CASE_DIR/config"
	assert_rc 0
	cat "$LAST_OUT.out" "$LAST_OUT.err" >"$CASE_DIR/said"
	assert_grep -E ': OK, 1 account$' "$CASE_DIR/said"
	# Every example is commented for the admin who copies it.
	[ "$(grep -c '^#' "$src")" -ge 5 ] || fail "$1.conf has almost no comments"
}

for e in $EXAMPLES; do
	eval "case_$(echo "$e" | tr - _)() { example_case $e; }"
	run_case "$e" "case_$(echo "$e" | tr - _)"
done

# Every file in contrib/examples is one of those checked above.
case_all_listed() {
	for f in "$top_srcdir"/contrib/examples/*.conf; do
		case " $(echo $EXAMPLES) " in
		*" $(basename "$f" .conf) "*) ;;
		*) fail "$(basename "$f") is not checked by examples.sh" ;;
		esac
	done
}
run_case all-listed case_all_listed
e2e_finish
