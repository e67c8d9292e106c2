#!/usr/bin/env python3
"""Fault injector for pullmail's IMAP tests.

A plaintext TCP relay between pullmail and the real Dovecot IMAP listener.
Every byte pullmail reads comes from Dovecot, except where a fault says
otherwise; the faults are ones a real Dovecot cannot be made to show on
demand:

  cut-body:N        close both connections in the middle of the Nth BODY[]
                    literal the server sends (after half of its bytes), so
                    the connection dies inside a pipelined window
  exchange-order    move the UID of each FETCH response behind its BODY[]
                    literal, as Exchange Online sends it:
                    "* 3 FETCH (UID 9 BODY[] {N}" ... ")" becomes
                    "* 3 FETCH (BODY[] {N}" ... " UID 9)"
  on-first-fetch    before the first command that fetches bodies reaches
                    the server, run the command given by --run (another
                    client expunging messages, say), and wait for it
  forged-alert      after the greeting, an untagged "OK [ALERT]" whose
                    text holds a CR, a made-up pullmail log line, an ANSI
                    escape and a byte that is not UTF-8 (FORGED_ALERT)

The relay follows the server's responses line by line and literal by
literal.  With --first-only the faults apply to the first connection only.
Every fault applied is logged as a line starting with FAULT.

Usage: imapfault.py --upstream-port N --port-file FILE [--log FILE]
                    [--first-only] [--run CMD] [--fault F]...
"""
import re
import socket
import subprocess
import threading

from relaylib import Reader, log, parser, serve

LITERAL = re.compile(rb'\{(\d+)\+?\}\r?\n$')
FORGED_ALERT = (b'* OK [ALERT] maintenance at 22:00\rpullmail: acct: '
                b'5 messages delivered\x1b[2K\xff\r\n')
FETCH_UID_BODY = re.compile(rb'^(\* \d+ FETCH \()UID (\d+) (BODY\[\] \{\d+\}\r?\n)$')


class Conn:
    """One relayed connection and the faults it gets."""

    def __init__(self, args, client, faults):
        self.args = args
        self.client = client
        self.faults = faults
        self.server = socket.create_connection(('127.0.0.1',
                                                args.upstream_port))
        self.bodies = 0
        self.fetched = False
        self.dead = False

    def close(self):
        self.dead = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def client_to_server(self):
        r = Reader(self.client)
        try:
            while True:
                line = r.line()
                if (not self.fetched and b'BODY.PEEK[]' in line.upper()):
                    self.fetched = True
                    if 'on-first-fetch' in self.faults and self.args.run:
                        log(self.args, 'FAULT running %s before %r' %
                            (self.args.run, line.strip()))
                        subprocess.run(self.args.run, shell=True,
                                       check=False)
                self.server.sendall(line)
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()

    def server_to_client(self):
        r = Reader(self.server)
        pending_uid = None
        greeting = True
        try:
            while True:
                line = r.line()
                m = LITERAL.search(line)
                body = m and b'BODY[]' in line.upper()
                if body and 'exchange-order' in self.faults:
                    f = FETCH_UID_BODY.match(line)
                    if f:
                        pending_uid = f.group(2)
                        line = f.group(1) + f.group(3)
                        log(self.args, 'FAULT UID %s moved behind its '
                            'literal' % pending_uid.decode())
                elif pending_uid is not None and line.startswith(b')'):
                    line = b' UID ' + pending_uid + line
                    pending_uid = None
                self.client.sendall(line)
                if greeting and 'forged-alert' in self.faults:
                    self.client.sendall(FORGED_ALERT)
                    log(self.args, 'FAULT forged ALERT after the greeting')
                greeting = False
                if not m:
                    continue
                n = int(m.group(1))
                if body:
                    self.bodies += 1
                if (body and 'cut-body:%d' % self.bodies in self.faults):
                    self.client.sendall(r.exactly(n // 2))
                    log(self.args, 'FAULT cut in BODY[] literal #%d' %
                        self.bodies)
                    self.close()
                    return
                self.client.sendall(r.exactly(n))
        except (EOFError, OSError):
            pass
        if not self.dead:
            self.close()


def main():
    ap = parser()
    ap.add_argument('--first-only', action='store_true')
    ap.add_argument('--run')
    ap.add_argument('--fault', action='append', default=[])
    args = ap.parse_args()
    args.lock = threading.Lock()

    def relay(n, c):
        faults = set(args.fault) if (n == 1 or not args.first_only) else set()
        log(args, 'connection #%d faults=%s' % (n, ','.join(sorted(faults))))
        return Conn(args, c, faults)
    serve(args, relay)


if __name__ == '__main__':
    main()
