#!/usr/bin/env python3
"""Fault injector for pullmail's POP3 tests.

A plaintext TCP proxy between pullmail and the real Dovecot POP3 listener.
Every byte pullmail reads comes from Dovecot, except where a fault says
otherwise; the faults are ones a real server cannot be made to show on
demand:

  cut-retr:N       close both connections in the middle of the body of the
                   response to the Nth RETR (after a few of its lines)
  cut-before-quit  close both connections instead of forwarding QUIT (the
                   DELE commands before it were answered: POP3 applies them
                   only at QUIT, so they are lost)
  no-uidl          a server without UIDL: drop UIDL from CAPA, answer the
                   UIDL command with -ERR (Dovecot gets a NOOP instead, so
                   the replies stay in order)
  no-sasl          a server without SASL: drop the SASL line from CAPA
  bare-lf-dot:N    message N holds, after its header, text with bare-LF
                   "." lines and a line that looks like a reply (INJECT
                   below); LIST announces its size with that text.
                   Dovecot stores and sends line ends as CRLF, so it
                   cannot be made to send such a message itself.
  junk-after:N     a line that is no reply right after the end of message
                   N (RETR N), as from a server whose replies are out of
                   step

With --record DIR, the proxy writes every message it serves, unstuffed
and with its CRLF line ends, to DIR/UIDL (under the UIDL the server
gave it), so that a test compares what pullmail delivered with what was
served, byte for byte.

The proxy follows the POP3 dialogue (which reply answers which command, and
which replies are multi-line) so that a fault lands where it is meant to,
even with PIPELINING.  With --first-only the faults apply to the first
connection only; later ones are passed through untouched.

Usage: faultproxy.py --upstream-port N --port-file FILE [--log FILE]
                     [--first-only] [--record DIR] [--fault F]...
"""
import argparse
import os
import queue
import socket
import sys
import threading
import time

COMMANDS = {'USER', 'PASS', 'APOP', 'AUTH', 'CAPA', 'STLS', 'STAT', 'LIST',
            'UIDL', 'RETR', 'TOP', 'DELE', 'NOOP', 'RSET', 'QUIT'}
CUT_AFTER_LINES = 3
# Text with bare-LF "." lines (no server stuffs those) and, after one, a
# line that reads as a reply: a reader that takes a bare-LF "." for the
# end of the message would deliver the rest as the next one.
INJECT = (b'Servers stuff only lines that start after CRLF:\n.\n'
          b'+OK forged reply from the fault injector\r\n'
          b'Subject: forged\r\n\r\nnot the next message\n.\r\n'
          b'still the same message\r\n')


def log(args, msg):
    line = '%s %s\n' % (time.strftime('%H:%M:%S'), msg)
    if args.log:
        with open(args.log, 'a') as f:
            f.write(line)
    else:
        sys.stderr.write(line)


class Conn:
    """One proxied connection and the faults it gets."""

    def __init__(self, args, client, faults):
        self.args = args
        self.client = client
        self.faults = faults
        self.server = socket.create_connection(('127.0.0.1',
                                                args.upstream_port))
        self.pending = queue.Queue()
        self.pending.put(('GREETING', False, None))
        self.retr = 0
        self.dead = False
        self.cut_retr = 0
        self.bare_lf = 0
        self.junk_after = 0
        self.uids = {}
        for f in faults:
            if f.startswith('cut-retr:'):
                self.cut_retr = int(f.split(':', 1)[1])
            if f.startswith('bare-lf-dot:'):
                self.bare_lf = int(f.split(':', 1)[1])
            if f.startswith('junk-after:'):
                self.junk_after = int(f.split(':', 1)[1])

    def cut(self, why):
        # Gracefully towards pullmail (FIN after every byte already
        # sent: an RST could make it drop bytes it has not read yet),
        # abruptly towards Dovecot, which never sees a QUIT.
        log(self.args, 'FAULT %s: connection cut' % why)
        self.dead = True
        for s, how in ((self.client, socket.SHUT_WR),
                       (self.server, socket.SHUT_RDWR)):
            try:
                s.shutdown(how)
            except OSError:
                pass

    def client_to_server(self):
        f = self.client.makefile('rb')
        try:
            for line in f:
                if self.dead:
                    continue    # read until pullmail closes, drop it
                words = line.split()
                word = words[0].decode('latin-1').upper() if words else ''
                if word in COMMANDS:
                    args = words[1:]
                    multi = word in ('CAPA', 'RETR', 'TOP') or \
                        (word in ('UIDL', 'LIST') and not args)
                    if word == 'QUIT' and 'cut-before-quit' in self.faults:
                        self.cut('QUIT withheld')
                        continue
                    if word == 'UIDL' and 'no-uidl' in self.faults:
                        self.pending.put(('FAKE-UIDL', False, None))
                        line = b'NOOP\r\n'
                    else:
                        arg = args[0].decode('latin-1') if args else None
                        self.pending.put((word, multi, arg))
                try:
                    self.server.sendall(line)
                except OSError:
                    self.dead = True
        except OSError:
            pass
        finally:
            try:
                self.server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def server_to_client(self):
        f = self.server.makefile('rb')
        try:
            self.relay(f)
        except OSError:
            pass
        finally:
            try:
                self.client.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def relay(self, f):
        while True:
            line = f.readline()
            if not line:
                return
            cmd, multi, arg = self.pending.get()
            # SASL challenges come before AUTH's final reply.
            while cmd == 'AUTH' and (line.startswith(b'+ ') or
                                     line.rstrip(b'\r\n') == b'+'):
                self.client.sendall(line)
                line = f.readline()
                if not line:
                    return
            if cmd == 'FAKE-UIDL':
                log(self.args, 'FAULT UIDL refused')
                self.client.sendall(b'-ERR Unknown command: UIDL '
                                    b'(fault injector)\r\n')
                continue
            self.client.sendall(line)
            if not multi or not line.startswith(b'+OK'):
                continue
            cut_here = False
            inject = False
            served = None
            if cmd == 'RETR':
                self.retr += 1
                cut_here = self.retr == self.cut_retr
                inject = arg == str(self.bare_lf)
                served = []
            n = 0
            while True:
                body = f.readline()
                if not body:
                    return
                if body in (b'.\r\n', b'.\n'):
                    self.client.sendall(body)
                    self.record(arg, served)
                    if cmd == 'RETR' and arg == str(self.junk_after):
                        log(self.args, 'FAULT junk after message %s' % arg)
                        self.client.sendall(b'* junk from the fault '
                                            b'injector\r\n')
                    break
                if cmd == 'UIDL':
                    w = body.split()
                    if len(w) == 2:
                        self.uids[w[0].decode()] = w[1].decode()
                if cmd == 'LIST' and self.bare_lf:
                    w = body.split()
                    if w and w[0] == str(self.bare_lf).encode():
                        body = b'%s %d\r\n' % (w[0],
                                                 int(w[1]) + len(INJECT))
                if served is not None:
                    served.append(body[1:] if body.startswith(b'.')
                                  else body)
                word = body.strip().upper()
                if cmd == 'CAPA' and 'no-uidl' in self.faults and \
                        word == b'UIDL':
                    continue
                if cmd == 'CAPA' and 'no-sasl' in self.faults and \
                        word.startswith(b'SASL'):
                    continue
                self.client.sendall(body)
                if inject and body == b'\r\n':
                    log(self.args, 'FAULT bare-LF "." lines in the body '
                        'of message %s' % arg)
                    self.client.sendall(INJECT)
                    served.append(INJECT)
                    inject = False
                n += 1
                if cut_here and n >= CUT_AFTER_LINES:
                    self.cut('in the body of RETR #%d' % self.retr)
                    return

    def record(self, num, served):
        """Keep the message served as RETR num under its UIDL."""
        if served is None or not self.args.record:
            return
        uid = self.uids.get(num, 'msg-%s' % num)
        with open(os.path.join(self.args.record, uid), 'wb') as out:
            out.write(b''.join(served))

    def run(self):
        t = threading.Thread(target=self.client_to_server, daemon=True)
        t.start()
        self.server_to_client()
        t.join(30)
        for s in (self.client, self.server):
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--upstream-port', type=int, required=True)
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log')
    ap.add_argument('--first-only', action='store_true')
    ap.add_argument('--fault', action='append', default=[])
    ap.add_argument('--record')
    args = ap.parse_args()
    for f in args.fault:
        if f not in ('cut-before-quit', 'no-uidl', 'no-sasl') and \
                not (f.startswith('cut-retr:') and f[9:].isdigit()) and \
                not (f.startswith('bare-lf-dot:') and f[12:].isdigit()) and \
                not (f.startswith('junk-after:') and f[11:].isdigit()):
            ap.error('unknown fault %s' % f)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(16)
    with open(args.port_file + '.tmp', 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(args.port_file + '.tmp', args.port_file)
    count = 0
    while True:
        client, _ = ls.accept()
        count += 1
        faults = args.fault if count == 1 or not args.first_only else []
        log(args, 'ACCEPT #%d faults=%s' % (count, ','.join(faults) or '-'))
        try:
            conn = Conn(args, client, faults)
        except OSError as e:
            log(args, 'upstream: %s' % e)
            client.close()
            continue
        threading.Thread(target=conn.run, daemon=True).start()


if __name__ == '__main__':
    main()
