"""What pullmail's relaying fault injectors share (imapfault.py,
exchangefault.py): their common options, the log, a buffered socket
reader, and the loop that listens (its port in the file the tests wait
for) and relays each connection in two threads."""
import argparse
import os
import select
import socket
import sys
import threading
import time


def parser():
    """An argument parser with the options every relay takes."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--upstream-port', type=int, required=True)
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log')
    ap.add_argument('--lifetime', type=float, default=600,
                    help='stop after this many seconds whatever happens')
    return ap


def log(args, msg):
    """One line to args.log (or stderr), under args.lock."""
    line = '%s %s\n' % (time.strftime('%H:%M:%S'), msg)
    with args.lock:
        if args.log:
            with open(args.log, 'a') as f:
                f.write(line)
        else:
            sys.stderr.write(line)


class Reader:
    """Buffered reads of lines and exact byte counts from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b'\n' not in self.buf:
            self.fill()
        i = self.buf.index(b'\n') + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def serve(args, relay):
    """Listen on a free loopback port, written (atomically) to
    args.port_file, for args.lifetime seconds; for the nth connection c,
    relay(n, c) returns an object whose client_to_server and
    server_to_client run in a thread each."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(8)
    ls.settimeout(1.0)
    with open(args.port_file + '.tmp', 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(args.port_file + '.tmp', args.port_file)
    deadline = time.monotonic() + args.lifetime
    n = 0
    state = {'open': 0}
    clients = {}

    def client_side(fn, nth):
        """Relay what the client sends until it closes; then the
        connection no longer counts as open."""
        try:
            fn()
        finally:
            with args.lock:
                state['open'] -= 1
                clients.pop(nth, None)
                k = state['open']
            log(args, 'CLOSE #%d, %d open' % (nth, k))

    def client_gone(s):
        """True when the client has already closed its end of s: its
        relay thread may not have read that end of file yet (a busy
        machine), but the client no longer holds the session."""
        try:
            p = select.poll()
            p.register(s, select.POLLRDHUP)
            return bool(p.poll(0))
        except (ValueError, OSError):
            return True

    while time.monotonic() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        n += 1
        with args.lock:
            state['open'] += 1
            # Those the client still holds, this one included.
            k = 1 + sum(1 for s in list(clients.values())
                        if not client_gone(s))
            clients[n] = c
        # "OPEN #n, k open": how many sessions the client runs at once.
        log(args, 'OPEN #%d, %d open' % (n, k))
        conn = relay(n, c)
        threading.Thread(target=client_side,
                         args=(conn.client_to_server, n),
                         daemon=True).start()
        threading.Thread(target=conn.server_to_client, daemon=True).start()
