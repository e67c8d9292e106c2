#!/bin/sh
# The test servers with SRV_OAUTH_JWT=1 (the scale benchmark's mode):
# oidc-provider issues signed JWT access tokens, Dovecot validates them
# locally with the public key, as Exchange Online does with Microsoft's.
# pullmail fetches over IMAP and POP3 with a client-credentials JWT
# (messages byte for byte) while the OAuth server sees no introspection
# request, and Dovecot refuses what local validation must refuse: a
# changed signature or claim, a token signed by another key, alg "none" or
# HS256 keyed with the public key, an expired token, another issuer,
# another audience, a missing scope, another domain.  The OAuth server
# may even be down.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/lib.sh"

SRV_OAUTH_JWT=1
e2e_start_servers

# jwt OP ARG...: decode or forge JWTs (node's crypto; test only).
#   jwt part TOKEN N              part N (0: header, 1: payload) as JSON
#   jwt verify TOKEN PEM          exit 0 if PEM's key verifies the RS256
#                                 signature
#   jwt flip TOKEN                the token with one signature byte changed
#   jwt sign TOKEN ALG KEY [CLAIM=JSON]...
#                                 TOKEN's header and payload, the claims
#                                 replaced, signed anew: ALG RS256 with the
#                                 PEM private key file KEY, HS256 with the
#                                 bytes of file KEY as the secret, none
#                                 (no signature)
JWT_JS='
const crypto = require("crypto");
const fs = require("fs");
const [op, token, ...args] = process.argv.slice(1);
const parts = token.split(".");
const dec = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
if (op === "part") {
  process.stdout.write(JSON.stringify(dec(parts[Number(args[0])])) + "\n");
} else if (op === "verify") {
  const ok = crypto.verify("sha256", Buffer.from(parts[0] + "." + parts[1]),
    fs.readFileSync(args[0]), Buffer.from(parts[2], "base64url"));
  process.exit(ok ? 0 : 1);
} else if (op === "flip") {
  const sig = Buffer.from(parts[2], "base64url");
  sig[sig.length >> 1] ^= 0x01;
  process.stdout.write(parts[0] + "." + parts[1] + "." + sig.toString("base64url") + "\n");
} else if (op === "sign") {
  const [alg, key, ...claims] = args;
  const header = { ...dec(parts[0]), alg };
  const payload = dec(parts[1]);
  for (const c of claims) {
    const eq = c.indexOf("=");
    payload[c.slice(0, eq)] = JSON.parse(c.slice(eq + 1));
  }
  const input = enc(header) + "." + enc(payload);
  let sig = "";
  if (alg === "RS256") {
    sig = crypto.sign("sha256", Buffer.from(input), fs.readFileSync(key)).toString("base64url");
  } else if (alg === "HS256") {
    sig = crypto.createHmac("sha256", fs.readFileSync(key)).update(input).digest("base64url");
  }
  process.stdout.write(input + "." + sig + "\n");
} else {
  process.exit(64);
}'
jwt() {
	node -e "$JWT_JS" "$@"
}

JWT_PUBKEY=$SRV_RUN/jwt-keys/default/RS256/$SRV_JWT_KID

# Introspection requests the OAuth server has logged so far.
introspections() {
	grep -c ' INTROSPECT ' "$OAUTH_LOG"
}

# login USER TOKEN: XOAUTH2 over IMAPS (probe.py); sets OUT and RC.
login() {
	OUT=$("$SRV_PYTHON" "$SRV_DIR/probe.py" imap-login 127.0.0.1 "$IMAPS_PORT" \
		implicit "$CA_FILE" "$1" xoauth2 "$2" 2>&1)
	RC=$?
	echo "login $1 -> $RC $OUT"
}

# refused USER TOKEN REASON: Dovecot refuses TOKEN for USER and logs that
# local validation failed for REASON (a fixed string).  (A wrong audience
# makes Dovecot say "user disabled": the answer is NO all the same.)
refused() {
	login "$1" "$2"
	assert_eq 1 "$RC" "$1: login refused"
	case $OUT in
	NO*) ;;
	*) fail "$1: not a refusal: $OUT" ;;
	esac
	grep "oauth2($1," "$SRV_RUN/dovecot.log" >"$CASE_DIR/${1%@*}.log"
	assert_grep -F "Local validation failed: $3" "$CASE_DIR/${1%@*}.log"
}

# The token is a JWT signed with the key Dovecot has, carrying the claims
# Dovecot checks.
case_token() {
	local t
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	case $t in *.*.*) ;; *) fail "not a JWT: $t" ;; esac
	jwt part "$t" 0 >"$CASE_DIR/header.json" || fail "header"
	jwt part "$t" 1 >"$CASE_DIR/payload.json" || fail "payload"
	cat "$CASE_DIR/header.json" "$CASE_DIR/payload.json"
	assert_grep -F '"alg":"RS256"' "$CASE_DIR/header.json"
	assert_grep -F '"typ":"JWT"' "$CASE_DIR/header.json"
	assert_grep -F "\"kid\":\"$SRV_JWT_KID\"" "$CASE_DIR/header.json"
	assert_grep -F "\"mail_user\":\"*@$MAIL_DOMAIN\"" "$CASE_DIR/payload.json"
	assert_grep -F '"scope":"imap"' "$CASE_DIR/payload.json"
	assert_grep -F "\"iss\":\"$OAUTH_URL\"" "$CASE_DIR/payload.json"
	assert_grep -F "\"aud\":\"$SRV_JWT_AUDIENCE\"" "$CASE_DIR/payload.json"
	assert_grep -F "\"client_id\":\"$APP_ID\"" "$CASE_DIR/payload.json"
	assert_grep '"exp":[0-9]+' "$CASE_DIR/payload.json"
	jwt verify "$t" "$JWT_PUBKEY" || fail "Dovecot's key does not verify the token"
	jwt verify "$(jwt flip "$t")" "$JWT_PUBKEY" &&
		fail "a changed signature verifies"
	return 0
}

# pullmail over IMAPS: one token request, no introspection.
case_imap() {
	local tok intro
	seed_messages
	account jwt-imap | write_config "$CASE_DIR/config"
	tok=$(srv_token_requests "$APP_ID")
	intro=$(introspections)
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_eq $((tok + 1)) "$(srv_token_requests "$APP_ID")" "token requests"
	assert_eq "$intro" "$(introspections)" "introspection requests"
	assert_grep -F "Login: user=<$CASE_USER>, method=XOAUTH2" "$SRV_RUN/dovecot.log"
}

# pullmail over POP3S (the pop3 passdb and scope), no introspection.
case_pop3() {
	local intro
	seed_messages
	account jwt-pop3 protocol=pop3 "port=$POP3S_PORT" oauth_scope=pop3 |
		write_config "$CASE_DIR/config"
	intro=$(introspections)
	run_pm -c "$CASE_DIR/config"
	assert_rc 0
	assert_server_copies "$CASE_DIR/Maildir" "$CASE_USER"
	assert_eq "$intro" "$(introspections)" "introspection requests"
	assert_grep -F "Login: user=<$CASE_USER>, method=XOAUTH2" "$SRV_RUN/dovecot.log"
}

# What local validation must refuse, each for its reason; the good token
# first, so that the refusals are the changes' doing.
case_refusals() {
	local t other intro
	intro=$(introspections)
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	login "good@$MAIL_DOMAIN" "$t"
	assert_eq "0 OK 0" "$RC $OUT" "the token as issued"
	# Signed anew with the server's own key: as good as issued (so the
	# refusals below are not the forging's fault), but not with another
	# issuer.
	login "resigned@$MAIL_DOMAIN" "$(jwt sign "$t" RS256 "$SRV_RUN/certs/jwt.key")"
	assert_eq "0 OK 0" "$RC $OUT" "the token signed anew"
	refused "issuer@$MAIL_DOMAIN" \
		"$(jwt sign "$t" RS256 "$SRV_RUN/certs/jwt.key" 'iss="http://127.0.0.1:9"')" \
		"Issuer 'http://127.0.0.1:9' is not allowed"
	refused "flipped@$MAIL_DOMAIN" "$(jwt flip "$t")" "Bad signature"
	# A claim changed, the signature kept.
	refused "claim@other.test" \
		"$(jwt sign "$t" RS256 "$SRV_RUN/certs/jwt.key" 'mail_user="*@other.test"' |
			sed 's/\.[^.]*$//').${t##*.}" "Bad signature"
	# Signed by a key of our own under the same key id.
	certtool --generate-privkey --key-type=rsa --bits=2048 \
		--outfile "$CASE_DIR/other.key" >/dev/null 2>&1 || fail "certtool"
	refused "otherkey@$MAIL_DOMAIN" \
		"$(jwt sign "$t" RS256 "$CASE_DIR/other.key")" "Bad signature"
	refused "algnone@$MAIL_DOMAIN" "$(jwt sign "$t" none -)" \
		"Unsupported algorithm"
	# The public key as an HMAC secret: no HS256 key has that id.
	refused "hs256@$MAIL_DOMAIN" "$(jwt sign "$t" HS256 "$JWT_PUBKEY")" \
		"HS256 key '$SRV_JWT_KID' not found"
	# Validly signed, but meant for another resource server.
	other=$(srv_token "$APP_ID" "$APP_SECRET" imap \
		--data-urlencode resource=https://other-resource.test) || fail "no token"
	jwt part "$other" 1 | grep -qF '"aud":"https://other-resource.test"' ||
		fail "the other resource's token has another audience"
	refused "audience@$MAIL_DOMAIN" "$other" "Token audience does not include"
	other=$(srv_token "$POP3ONLY_ID" "$POP3ONLY_SECRET" pop3) || fail "no token"
	refused "scope@$MAIL_DOMAIN" "$other" \
		"configured scope 'imap' missing from token scope 'pop3'"
	refused "domain@other.test" "$t" "Username 'other.test' did not match"
	assert_eq "$intro" "$(introspections)" "introspection requests"
}

# A token is good until exp, and refused after.
case_expired() {
	local t exp
	t=$(srv_token "$SHORT_ID" "$SHORT_SECRET" imap) || fail "no token"
	login "fresh@$MAIL_DOMAIN" "$t"
	assert_eq "0 OK 0" "$RC $OUT" "the short-lived token at once"
	exp=$(jwt part "$t" 1 | sed -n 's/.*"exp":\([0-9]*\).*/\1/p')
	[ -n "$exp" ] || fail "no exp"
	# Dovecot refuses once its clock is past exp.
	while [ "$(date +%s)" -le "$exp" ]; do
		sleep 0.2
	done
	refused "expired@$MAIL_DOMAIN" "$t" "Token has expired"
}

# Dovecot needs the OAuth server for nothing: a token is accepted while
# the server is down, and after a restart that made it forget every token
# it issued (with introspection, that revokes them all).  Last: the
# restart empties the OAuth server's log.
case_offline() {
	local t
	t=$(srv_token "$APP_ID" "$APP_SECRET" imap) || fail "no token"
	srv_oauth_stop
	srv_running "$(cat "$SRV_RUN/oauth/pid")" && fail "the OAuth server did not stop"
	login "offline@$MAIL_DOMAIN" "$t"
	assert_eq "0 OK 0" "$RC $OUT" "with the OAuth server down"
	srv_oauth_start "$OAUTH_PORT"
	login "restarted@$MAIL_DOMAIN" "$t"
	assert_eq "0 OK 0" "$RC $OUT" "after the OAuth server's restart"
}

run_case token case_token
run_case imap case_imap
run_case pop3 case_pop3
run_case refusals case_refusals
run_case expired case_expired
run_case offline case_offline
e2e_finish
