#!/usr/bin/env python3
"""Fault injector for pullmail's tests: Exchange Online's live-session replies.

A plaintext TCP relay between pullmail and the real Dovecot IMAP listener
that looks like Exchange Online: its greeting, and its CAPABILITY lists in
place of Dovecot's (capability response codes are dropped, so the client
asks).  Every other byte pullmail reads comes from Dovecot, except where an
option plays one of Exchange's replies, which Dovecot never sends:

  --throttle-logins N   answer the first N logins (AUTHENTICATE or LOGIN,
                        counted over all connections; -1: every one) with
                        "TAG NO Request is throttled. Suggested Backoff
                        Time: M milliseconds" (M from --backoff-ms); the
                        login never reaches Dovecot
  --not-connected       answer the first SELECT after a login with "TAG
                        BAD User is authenticated but not connected." and
                        "* BYE Connection closed. 14", then close
  --expire-after N      once N message bodies went to the client, send
                        "* BYE Session invalidated - AccessTokenExpired" and
                        close; --expire-in says where: "response" (right
                        after the Nth FETCH response, other responses of
                        the FETCH command still due) or "literal" (after
                        half of the next body literal: the BYE is then
                        inside it, as message data)
  --token-lifetime S    like Exchange when a session's access token
                        expires: the first body that starts S seconds or
                        more after the login is replaced by that BYE
  --body-delay-ms D     hold each body literal back D ms (a slow server)

With --pop3 the relay stands in front of Dovecot's POP3 listener instead:
Exchange's POP3 greeting, and --throttle-logins answers AUTH with "-ERR
Request is throttled. Suggested Backoff Time: M milliseconds".

--faulty-sessions K (default 1) gives --not-connected and --expire-after to
the first K connections; --token-lifetime applies to every connection.
Every login is logged as "LOGIN #n", every fault as a line starting with
FAULT.

Usage: exchangefault.py --upstream-port N --port-file FILE [--log FILE]
                        [--pop3] [option]...
"""
import re
import socket
import threading
import time

from relaylib import Reader, log, parser, serve

LITERAL = re.compile(rb'\{(\d+)\+?\}\r?\n$')
CAPS_CODE = re.compile(rb'\[CAPABILITY [^\]]*\] ?', re.I)
GREETING = (b'* OK The Microsoft Exchange IMAP4 service is ready. '
            b'[TQBXADIAUABSADEAMQBDAEEAMAAwADcAMAAuAG4AYQBtAHAAcgBkADEAMQA=]'
            b'\r\n')
CAPS_BEFORE = (b'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID '
               b'UNSELECT CHILDREN IDLE NAMESPACE LITERAL+')
CAPS_AFTER = (b'IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE '
              b'ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION '
              b'BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+')
EXPIRED = b'* BYE Session invalidated - AccessTokenExpired\r\n'
POP3_GREETING = (b'+OK The Microsoft Exchange POP3 service is ready. '
                 b'[TQBXADIAUABSADEAMQBDAEEAMAAwADcAMAAuAG4AYQBtAHAAcgA=]'
                 b'\r\n')


def login_throttled(args, what):
    """Count a login; whether it is to be throttled."""
    with args.lock:
        args.logins += 1
        n = args.logins
    log(args, 'LOGIN #%d' % n)
    if args.throttle_logins < 0 or n <= args.throttle_logins:
        log(args, 'FAULT login #%d throttled (%s)' % (n, what))
        return True
    return False


class Conn:
    """One relayed connection and the faults it gets."""

    def __init__(self, args, client, faulty):
        self.args = args
        self.client = client
        self.faulty = faulty
        self.server = socket.create_connection(('127.0.0.1',
                                                args.upstream_port))
        self.send_lock = threading.Lock()
        self.login_tag = None
        self.login_at = None     # monotonic time of the login's OK
        self.selected = False
        self.bodies = 0
        self.dead = False

    def to_client(self, data):
        with self.send_lock:
            self.client.sendall(data)

    def close(self):
        self.dead = True
        # Gracefully towards pullmail (FIN after every byte sent), then
        # both sides.
        for s, how in ((self.client, socket.SHUT_WR),
                       (self.server, socket.SHUT_RDWR)):
            try:
                s.shutdown(how)
            except OSError:
                pass

    def client_to_server(self):
        r = Reader(self.client)
        try:
            while True:
                line = r.line()
                if self.dead:
                    continue
                words = line.split(None, 2)
                tag = words[0] if words else b''
                cmd = words[1].upper() if len(words) > 1 else b''
                if cmd in (b'AUTHENTICATE', b'LOGIN'):
                    if login_throttled(self.args, 'IMAP'):
                        self.to_client(
                            tag + b' NO Request is throttled. Suggested '
                            b'Backoff Time: %d milliseconds\r\n' %
                            self.args.backoff_ms)
                        continue
                    self.login_tag = tag
                if (cmd in (b'SELECT', b'EXAMINE') and not self.selected
                        and self.faulty and self.args.not_connected):
                    self.selected = True
                    log(self.args, 'FAULT SELECT: not connected')
                    self.to_client(tag + b' BAD User is authenticated but '
                                   b'not connected.\r\n'
                                   b'* BYE Connection closed. 14\r\n')
                    self.close()
                    continue
                self.server.sendall(line)
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()

    def rewrite(self, line):
        """Exchange's greeting and capabilities in place of Dovecot's."""
        if self.login_at is None and line.startswith(b'* OK') and \
                b'Dovecot' in line:
            return GREETING
        caps = CAPS_AFTER if self.login_at is not None else CAPS_BEFORE
        if line.upper().startswith(b'* CAPABILITY '):
            return b'* CAPABILITY ' + caps + b'\r\n'
        if self.login_tag is not None and \
                line.startswith(self.login_tag + b' OK'):
            self.login_at = time.monotonic()
            self.login_tag = None
        return CAPS_CODE.sub(b'', line)

    def expire(self, why):
        log(self.args, 'FAULT BYE AccessTokenExpired %s' % why)
        self.to_client(EXPIRED)
        self.close()

    def server_to_client(self):
        r = Reader(self.server)
        a = self.args
        try:
            while True:
                line = self.rewrite(r.line())
                m = LITERAL.search(line)
                body = m and b'BODY[]' in line.upper()
                if body and a.token_lifetime > 0 and \
                        self.login_at is not None and \
                        time.monotonic() - self.login_at >= a.token_lifetime:
                    self.expire('(token lifetime over) before body #%d' %
                                (self.bodies + 1))
                    return
                if body and a.body_delay_ms > 0:
                    time.sleep(a.body_delay_ms / 1000.0)
                expire_here = (body and self.faulty and
                               a.expire_after >= 0 and
                               self.bodies == a.expire_after)
                if expire_here and a.expire_in == 'literal':
                    n = int(m.group(1))
                    self.to_client(line + r.exactly(n // 2))
                    self.expire('inside body literal #%d' %
                                (self.bodies + 1))
                    return
                self.to_client(line)
                if not m:
                    continue
                self.to_client(r.exactly(int(m.group(1))))
                if not body:
                    continue
                self.bodies += 1
                if (self.faulty and a.expire_in == 'response' and
                        self.bodies == a.expire_after):
                    # The rest of this FETCH response, then the BYE.
                    self.to_client(self.rewrite(r.line()))
                    self.expire('after body #%d' % self.bodies)
                    return
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()


class Pop3Conn(Conn):
    """A relayed POP3 connection: Exchange's greeting, throttled AUTH."""

    def client_to_server(self):
        r = Reader(self.client)
        try:
            while True:
                line = r.line()
                words = line.split()
                if (not self.dead and len(words) > 1 and
                        words[0].upper() == b'AUTH' and
                        login_throttled(self.args, 'POP3')):
                    self.to_client(b'-ERR Request is throttled. Suggested '
                                   b'Backoff Time: %d milliseconds\r\n' %
                                   self.args.backoff_ms)
                    continue
                if not self.dead:
                    self.server.sendall(line)
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()

    def server_to_client(self):
        r = Reader(self.server)
        try:
            r.line()
            self.to_client(POP3_GREETING)
            while True:
                if not r.buf:
                    r.fill()
                data, r.buf = r.buf, b''
                self.to_client(data)
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()


def main():
    ap = parser()
    ap.add_argument('--pop3', action='store_true')
    ap.add_argument('--throttle-logins', type=int, default=0)
    ap.add_argument('--backoff-ms', type=int, default=1500)
    ap.add_argument('--not-connected', action='store_true')
    ap.add_argument('--expire-after', type=int, default=-1)
    ap.add_argument('--expire-in', choices=('response', 'literal'),
                    default='response')
    ap.add_argument('--token-lifetime', type=float, default=0)
    ap.add_argument('--body-delay-ms', type=int, default=0)
    ap.add_argument('--faulty-sessions', type=int, default=1)
    args = ap.parse_args()
    args.lock = threading.Lock()
    args.logins = 0

    def relay(n, c):
        log(args, 'connection #%d' % n)
        return (Pop3Conn if args.pop3 else Conn)(args, c,
                                                 n <= args.faulty_sessions)
    serve(args, relay)


if __name__ == '__main__':
    main()
