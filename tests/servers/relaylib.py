"""What pullmail's relaying fault injectors share (imapfault.py,
exchangefault.py): the log, a buffered socket reader, and the listening
socket whose port goes to the file the tests wait for."""
import os
import socket
import sys
import time


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


def listen(port_file):
    """A listening socket on a free loopback port, written (atomically) to
    port_file; accept() times out every second."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', 0))
    ls.listen(8)
    ls.settimeout(1.0)
    with open(port_file + '.tmp', 'w') as f:
        f.write('%d\n' % ls.getsockname()[1])
    os.rename(port_file + '.tmp', port_file)
    return ls
