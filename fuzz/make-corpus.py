#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/TARGET/.

Each seed is a small, realistic input (what Dovecot, Exchange, Gmail,
Postfix or an OAuth server sends, or what a user writes) or a broken one.
Run it from anywhere: python3 fuzz/make-corpus.py.  The files are kept in
the tree; rerun after changing this script and commit the result.
"""
import base64
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
seeds = {}


def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    seeds.setdefault(target, []).append((name, data))


# --- IMAP -------------------------------------------------------------------
IMAP_GREET = ("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] "
              "Dovecot ready.\r\n"
              "A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n")
IMAP_SELECT = ("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
               "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Flags\r\n"
               "* 3 EXISTS\r\n* 0 RECENT\r\n"
               "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
               "* OK [UIDNEXT 10] Predicted next UID\r\n"
               "A2 OK [READ-WRITE] Select completed.\r\n")
IMAP_LIST = ("* 1 FETCH (UID 5 RFC822.SIZE 12)\r\n"
             "* 2 FETCH (UID 7 RFC822.SIZE 12)\r\n"
             "* 3 FETCH (RFC822.SIZE 5 UID 9)\r\n"
             "A3 OK Fetch completed.\r\n")
IMAP_BODIES = ("* 1 FETCH (UID 5 BODY[] {12}\r\nHello\r\nWorld)\r\n"
               "* 2 FETCH (UID 7 BODY[] {12}\r\nFrom x\r\n.\r\n\r\n)\r\n"
               "* 3 FETCH (BODY[] {5}\r\nab\r\nc UID 9 FLAGS (\\Seen))\r\n"
               "A4 OK Fetch completed.\r\n")
IMAP_END = ("A5 OK Store completed.\r\n"
            "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
            "A6 OK Expunge completed.\r\n"
            "* BYE Logging out\r\nA7 OK Logout completed.\r\n")
IMAP_SESSION = IMAP_GREET + IMAP_SELECT + IMAP_LIST + IMAP_BODIES + IMAP_END

seed("imap-response", "dovecot-session", IMAP_SESSION)
seed("imap-response", "lines",
     "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=OAUTHBEARER\r\n"
     "* SEARCH 1 5 7 4294967295\r\n* SEARCH\r\n"
     "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n+\r\n"
     "A9 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
     "A10 BAD Error in IMAP command\r\n* PREAUTH ready\r\n"
     "* 4 FETCH (FLAGS (\\Seen \\Answered) INTERNALDATE "
     "\"17-Jul-1996 02:44:25 -0700\" UID 4)\r\n")
seed("imap-response", "exchange-fetch",
     "* 1 FETCH (BODY[] {14}\r\nSubject: x\r\n\r\n UID 12 "
     "BODY[HEADER.FIELDS (X)] {2}\r\n\r\n)\r\n"
     "* 2 FETCH (UID 3 BODY[] NIL)\r\n"
     "* 3 FETCH (UID 4 BODY[] \"quoted \\\"body\\\"\")\r\n"
     "* 4 FETCH (UID 5 BODY[] {3+}\r\nabc)\r\n")
seed("imap-response", "broken",
     "* OK [CAPABILITY IMAP4rev1\r\n* 99999999999 EXISTS\r\n"
     "A1 MAYBE\r\n\r\n* 1 FETCH (BODY[] {99999999999999999999}\r\n"
     "* 1 FETCH (BODY[] {-1}\r\n* 0 FETCH (UID 1)\r\n"
     "* 1 FETCH (UID 1 BODY[] {5}\r\nab")
seed("imap-response", "nul", b"* OK hi\x00there\r\nA1 OK \x00\r\n")

seed("imap-session", "session", "\x03" + IMAP_SESSION)
seed("imap-session", "session-bytewise", "\x00" + IMAP_SESSION)
seed("imap-session", "session-starttls-seen",
     "\x41* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"
     "A1 OK Begin TLS negotiation now.\r\n"
     "* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2\r\n"
     "A2 OK Capability completed.\r\n"
     "+ \r\nA3 OK Logged in\r\n"
     + IMAP_SELECT.replace("A2", "A4") + IMAP_LIST.replace("A3", "A5")
     + IMAP_BODIES.replace("A4", "A6") + "A7 OK Store completed.\r\n"
     "* BYE bye\r\nA8 OK Logout completed.\r\n")
seed("imap-session", "no-uidplus-auth-error",
     "\x85* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi\r\n"
     "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n"
     "A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
seed("imap-session", "cut-mid-literal",
     "\x07" + IMAP_GREET + IMAP_SELECT + IMAP_LIST
     + "* 1 FETCH (UID 5 BODY[] {12}\r\nHel")
seed("imap-session", "body-without-uid",
     "\x10" + IMAP_GREET + IMAP_SELECT + IMAP_LIST
     + "* 2 FETCH (BODY[] {12}\r\nHello\r\nWorld)\r\n"
     "* 1 FETCH (UID 5 BODY[] {12}\r\nHello\r\nWorld)\r\n"
     "A4 OK Fetch completed.\r\n" + IMAP_END)

# --- POP3 -------------------------------------------------------------------
POP3_CAPA = ("+OK\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nUSER\r\n"
             "SASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n")
POP3_SESSION = ("+OK Dovecot ready.\r\n" + POP3_CAPA + "+ \r\n"
                "+OK Logged in.\r\n" + POP3_CAPA
                + "+OK\r\n1 u-one\r\n2 u-two\r\n3 u-three\r\n.\r\n"
                "+OK 3 messages\r\n1 9\r\n2 30\r\n3 11\r\n.\r\n"
                "+OK 9 octets\r\nA: 1\r\n\r\nx\r\n.\r\n"
                "+OK\r\nB: 2\r\n\r\n..\r\n...x\r\nFrom here\r\n.\r\n"
                "+OK\r\nC: 3\r\n\r\n..\r\n.\r\n"
                "+OK\r\n+OK\r\n+OK\r\n+OK Logging out.\r\n")
# pop3-reply: the first byte picks the parser (see fuzz-pop3-reply.c).
POP3_LINES = ("-ERR [AUTH] Authentication failed.\r\n-ERR\r\n+ \r\n+\r\n"
              "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n1 " + "x" * 70 + "\r\n"
              "2147483647 4294967296\r\nSTLS\r\nSASL\r\n"
              "IMPLEMENTATION Dovecot\r\nEXPIRE NEVER\r\nLOGIN-DELAY 900\r\n")
POP3_BROKEN = ("+OKAY\r\n-ERRor\r\n0 u\r\n1 " + "x" * 71 + "\r\n1 a b\r\n"
               "99999999999 1\r\n1 -5\r\n1\x01 x\r\n" + "+OK " + "y" * 5000
               + "\r\n")
for i, parser in enumerate(["status", "sasl", "capa", "uidl", "list"]):
    seed("pop3-reply", parser + "-session", chr(i) + POP3_SESSION)
    seed("pop3-reply", parser + "-lines", chr(i) + POP3_LINES)
    seed("pop3-reply", parser + "-broken", chr(i) + POP3_BROKEN)
seed("pop3-undot", "stuffed", "\x05A: 1\r\n\r\n..\r\n...x\r\nFrom here"
     "\r\n.\r\n+OK next\r\n")
seed("pop3-undot", "bare-lf", "\x02line\n.\nafter\r\n.\r\n")
seed("pop3-undot", "cr-dot", "\x00a\r.\r\n.\r\r\n.\rx\r\n.\r\n")
seed("pop3-undot", "unterminated", "\x1fno end\r\n..\r")
seed("pop3-undot", "whole", "\xffHello\r\n.\r\n")
seed("pop3-session", "session", "\x03" + POP3_SESSION)
seed("pop3-session", "session-bytewise", "\x80" + POP3_SESSION)
seed("pop3-session", "no-pipelining-user",
     "\x0a+OK ready <1.2@host>\r\n+OK\r\nUIDL\r\nUSER\r\nSTLS\r\n"
     "SASL PLAIN\r\n.\r\n+OK Begin TLS\r\n+OK\r\nUIDL\r\nUSER\r\n"
     "SASL PLAIN\r\n.\r\n+ \r\n+OK Logged in.\r\n+OK\r\nUIDL\r\n.\r\n"
     "+OK\r\n1 a\r\n.\r\n+OK\r\n1 3\r\n.\r\n+OK\r\nx\r\n.\r\n"
     "+OK\r\n+OK bye\r\n")
seed("pop3-session", "no-capa-err",
     "\x01+OK hi\r\n-ERR unknown command\r\n-ERR [AUTH] no\r\n")
seed("pop3-session", "bare-lf-terminator",
     "\x04" + POP3_SESSION.replace("+OK 9 octets\r\nA: 1\r\n\r\nx\r\n",
                                   "+OK 9 octets\r\nA: 1\n.\nx\r\n"))

# --- config -----------------------------------------------------------------
seed("config", "microsoft",
     "# Microsoft 365, app-only\n[defaults]\ntimeout = 30\nkeep = no\n\n"
     "[account work]\nserver = outlook.office365.com\nprotocol = imap\n"
     "user = joe@contoso.com\noauth_provider = microsoft\n"
     "oauth_tenant = contoso.onmicrosoft.com\n"
     "oauth_client_id = 00000000-0000-0000-0000-000000000000\n"
     "oauth_client_secret = \"s3cr3t with spaces\"\n"
     "folder = INBOX\nfolder = Archive\ndeliver = maildir:~/Maildir\n")
seed("config", "password-pop3-mbox",
     "[account home]\nserver = pop.example.test\nport = 995\n"
     "protocol = pop3\ntls = implicit\nuser = joe\npassword = hunter2\n"
     "auth = plain\nsize_limit = 10M\nfetch_all = yes\n"
     "deliver = mbox:/var/mail/joe\nenvelope_sender = <>\n"
     "add_return_path = yes\nadd_received = yes\n")
seed("config", "generic-device",
     "[account g]\nserver = imap.example.test\ntls = starttls\n"
     "user = a@example.test\noauth_provider = generic\n"
     "oauth_issuer = https://issuer.example.test\noauth_flow = device\n"
     "oauth_client_id = abc\nnotify_command = /bin/true\n"
     "deliver = lmtp:/run/dovecot/lmtp\nrecipient = a@example.test\n"
     "tls_fingerprint = sha256:" + "ab" * 32 + "\n")
seed("config", "google-smtp",
     "[account gm]\r\nserver = imap.gmail.com\r\noauth_provider = google\r\n"
     "user = x@gmail.com\r\noauth_client_id = id\r\noauth_flow = "
     "authorization_code\r\noauth_redirect_port = 8080\r\n"
     "deliver = smtp:[::1]:25\r\nmda_timeout = 60\r\n")
seed("config", "mda",
     "[account m]\nserver = s\nuser = u\npassword = p\n"
     "deliver = mda:/usr/bin/procmail -f %F -a \"x y\" 'z'\n")
seed("config", "broken",
     "[account]\nserver\n= x\n[account a b]\n[defaults\nkey = \"open\n"
     "port = 99999\ntimeout = -1\nsize_limit = 5Q\n[account a]\n"
     "[account a]\nunknown = 1\n")
seed("config", "nul-and-long", b"[account a]\nserver = a\x00b\n"
     + b"user = " + b"u" * 5000 + b"\n")

# --- OAuth ------------------------------------------------------------------
def js(o):
    return json.dumps(o)

seed("oauth-token", "ok", "\x00\x00" + js(
    {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
     "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"}))
seed("oauth-token", "refresh", "\x00\x00" + js(
    {"access_token": "ya29.a0Af", "expires_in": "3600",
     "refresh_token": "1//0g", "scope": "https://mail.google.com/",
     "token_type": "bearer"}))
seed("oauth-token", "invalid-client", "\x03\x00" + js(
    {"error": "invalid_client", "error_description":
     "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1",
     "error_codes": [7000215], "timestamp": "2026-01-01 00:00:00Z"}))
seed("oauth-token", "unavailable", "\x08\x00" + js(
    {"error": "temporarily_unavailable"}))
seed("oauth-token", "broken", "\x00\x00{\"access_token\": \"a b\", "
     "\"token_type\": \"mac\", \"expires_in\": -5} trailing")
seed("oauth-token", "html", "\x07\x00<html><body>502 Bad Gateway</body>"
     "</html>")
seed("oauth-token", "deep", "\x00\x00" + "[" * 300 + "]" * 300)
seed("oauth-token", "huge-expiry", "\x00\x00" + js(
    {"access_token": "t", "token_type": "Bearer",
     "expires_in": 99999999999999999999}))

seed("oauth-device", "microsoft", "\xff" + js(
    {"user_code": "ABCD-EFGH", "device_code": "DAQABAAEAAAD",
     "verification_uri": "https://microsoft.com/devicelogin",
     "expires_in": 900, "interval": 5,
     "message": "To sign in, use a web browser to open the page."}))
seed("oauth-device", "google", "\xff" + js(
    {"device_code": "AH-1Ng", "user_code": "GQVQ-JKEC",
     "verification_url": "https://www.google.com/device",
     "expires_in": "1800", "interval": "5"}))
seed("oauth-device", "error", "\x00" + js(
    {"error": "unauthorized_client", "error_description":
     "AADSTS700016: Application not found.\u0007"}))
seed("oauth-device", "broken", "\xff{\"device_code\": 5, \"user_code\": "
     "null, \"interval\": 1e999}")
seed("oauth-device", "server-error", "\x04Service Unavailable")

ISS = "https://issuer.example.test/tenant/v2.0"
seed("oauth-discovery", "full", "\x01\xff" + js(
    {"issuer": ISS, "token_endpoint": ISS + "/token",
     "authorization_endpoint": ISS + "/authorize",
     "device_authorization_endpoint": ISS + "/devicecode",
     "jwks_uri": ISS + "/keys", "response_types_supported": ["code"],
     "scopes_supported": ["openid", "offline_access"]}))
seed("oauth-discovery", "token-only", "\x00\xff" + js(
    {"issuer": ISS + "/", "token_endpoint": "http://127.0.0.1:9/t"}))
seed("oauth-discovery", "other-issuer", "\x02\xff" + js(
    {"issuer": "https://evil.example.test",
     "token_endpoint": "https://evil.example.test/token"}))
seed("oauth-discovery", "not-a-url", "\x02\xff" + js(
    {"issuer": ISS, "token_endpoint": "ftp://x",
     "authorization_endpoint": "https://a b"}))
seed("oauth-discovery", "not-found", "\x00\x02Not Found")

# --- delivery ---------------------------------------------------------------
SMTP = ("220 mx.example.test ESMTP Postfix\r\n"
        "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>"
        "\r\n250 2.0.0 Ok: queued as 1\r\n"
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"
        "250 2.0.0 Ok: queued as 2\r\n221 2.0.0 Bye\r\n")
seed("smtp-reply", "postfix", "\x00" + SMTP)
seed("smtp-reply", "lmtp", "\x01220 host Dovecot LMTP ready\r\n"
     "250-host\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
     "250 PIPELINING\r\n250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
     "354 OK\r\n250 2.0.0 <user@example.test> Saved\r\n"
     "250 2.1.0 OK\r\n452 4.2.2 Mailbox is full\r\n")
seed("smtp-reply", "no-esmtp", "\x00220 old smtpd\r\n502 no\r\n250 hi\r\n"
     "250 ok\r\n550 5.1.1 no such user\r\n250 reset\r\n250 ok\r\n250 ok\r\n"
     "354 go\r\n421 4.3.0 shutting down\r\n")
seed("smtp-reply", "broken", "\x00220-a\r\n221 mixed codes\r\n25\r\n"
     "2500 x\r\n" + "2" * 3000 + "\r\n")
seed("smtp-reply", "greeting-refused", "\x01554 5.7.1 go away\r\n")

seed("envelope", "plain", "Return-Path: <bounce+x=y@example.test>\r\n"
     "From: \"Joe, Q\" <joe@example.test> (comment)\r\n"
     "To: a@example.test\r\nSubject: hi\r\n\r\n")
seed("envelope", "folded", "Sender:\r\n (c) jim@\r\n example.test\r\n"
     "From: a@b.test, c@d.test\r\n\r\n")
seed("envelope", "empty-return-path", "Return-Path: <>\n\n")
seed("envelope", "quoted", "From: \"a\\\"b\"@example.test\n"
     "Return-Path: <\"odd local\"@[192.0.2.1]>\n")
seed("envelope", "hostile", "From: <-oQ/etc/passwd@x>\nSender: <a@b>;rm\n"
     "Return-Path: <a@b\r\nRCPT TO:<c@d>>\n\n")
seed("envelope", "unbalanced", "From: (((a@b\nSender: \"a@b\n"
     "Return-Path: <a@b\n")

seed("sasl-error", "gmail", js({"status": "400", "schemes": "Bearer",
                                 "scope": "https://mail.google.com/"}))
seed("sasl-error", "microsoft", js({"status": "401", "schemes": "bearer",
                                     "scope": "https://outlook.office365.com/"}))
seed("sasl-error", "escapes", '{"status":"401","x":[1,{"y":null}],'
     '"scope":"a\\u0000\\n\\"b"}')
seed("sasl-error", "broken", '{"status":401,"status":"5')
seed("sasl-error", "bad-base64", "!eyJzdGF0dXMiOiI0MDEi=fQ==")
seed("sasl-error", "bad-base64-2", "!e y")

seed("mbox-quote", "from-lines", "\x07From: a@example.test\nSubject: x\n\n"
     "From here\n>From there\n>>From everywhere\nFrom\n>From\nx\n")
seed("mbox-quote", "no-final-newline", "\x00From a\n\nbody")
seed("mbox-quote", "whole", "\xffFrom x\n>From y\n")
seed("mbox-quote", "gt-runs", "\x03>>>>\n>>>>From \n>F\n>Fro\nFrom")

seed("state", "typical", "pullmail-state 1\nV\tINBOX\t1700000000\n"
     "U\tINBOX\t5\nU\tINBOX\t7\nV\tArchive\t3\nU\tArchive\t1\n")
seed("state", "pop3", "pullmail-state 1\nU\t\t000001a34f6b5c2e\n"
     "U\t\tu%20one\nU\t\t%25%7F\n")
seed("state", "escaped", "pullmail-state 1\nV\tSent%20Items\t9\n"
     "U\tSent%20Items\t%09\n")
seed("state", "broken", "pullmail-state 1\nU\tINBOX\nX\ta\tb\n"
     "U\tINBOX\t%zz\nU\tINBOX\t5")
seed("state", "wrong-magic", "pullmail-state 2\n")
seed("state", "empty", "")


def main():
    root = os.path.join(HERE, "corpus")
    if os.path.isdir(root):
        shutil.rmtree(root)
    for target, items in sorted(seeds.items()):
        d = os.path.join(root, target)
        os.makedirs(d)
        for name, data in items:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    n = sum(len(v) for v in seeds.values())
    print("%d seeds for %d targets in %s" % (n, len(seeds), root))


if __name__ == "__main__":
    sys.exit(main())
