#!/usr/bin/env python3
"""Small helpers for pullmail's end-to-end test servers (standard library only).

  probe.py freeports N [HOST]         print N distinct free TCP ports
  probe.py closedport FILE            bind a port on 127.0.0.1 and never
                                      listen, until killed: connections are
                                      refused and no other process can take
                                      the port; its number into FILE
  probe.py wait-http URL TIMEOUT      wait until URL answers 200
  probe.py wait-imap HOST PORT MODE CAFILE TIMEOUT
                                      wait until Dovecot offers AUTH=XOAUTH2
                                      (MODE: implicit | starttls)
  probe.py imap-login HOST PORT MODE CAFILE USER MECH SECRET [FOLDER]
                                      log in (MECH: xoauth2 | oauthbearer |
                                      plain), print "OK <n>" with the number
                                      of messages, or "NO <reason>"; exit 0/1
  probe.py imap-fetch HOST PORT MODE CAFILE USER TOKEN UID OUTFILE
                                      fetch BODY.PEEK[] of UID with XOAUTH2,
                                      CRLF turned into LF, into OUTFILE
  probe.py pop3-login HOST PORT MODE CAFILE USER TOKEN
                                      AUTH XOAUTH2 over POP3 (MODE: implicit |
                                      stls); print "OK <n>" or "NO <reason>"
  probe.py genmsg SIZE SEED OUTFILE   write a deterministic MIME message of
                                      about SIZE bytes (LF line endings)
"""
import hashlib
import base64
import imaplib
import os
import poplib
import socket
import ssl
import sys
import time
import urllib.request


def freeports(n, host="127.0.0.1"):
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        socks.append(s)
        if port not in ports:
            ports.append(port)
    for s in socks:
        s.close()
    print(" ".join(str(p) for p in ports))


def wait_http(url, timeout):
    end = time.monotonic() + float(timeout)
    last = None
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return 0
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.05)
    print(f"probe: {url} not ready: {last}", file=sys.stderr)
    return 1


def connect(host, port, mode, cafile, timeout=10):
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "implicit":
        return imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx,
                                 timeout=timeout)
    m = imaplib.IMAP4(host, int(port), timeout=timeout)
    m.starttls(ssl_context=ctx)
    return m


def wait_imap(host, port, mode, cafile, timeout):
    end = time.monotonic() + float(timeout)
    last = None
    while time.monotonic() < end:
        try:
            m = connect(host, port, mode, cafile, timeout=2)
            caps = m.capabilities
            m.logout()
            if "AUTH=XOAUTH2" in caps:
                return 0
            last = f"no AUTH=XOAUTH2 in {caps}"
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.05)
    print(f"probe: imap {host}:{port} ({mode}) not ready: {last}",
          file=sys.stderr)
    return 1


def sasl_blob(user, mech, secret):
    if mech == "xoauth2":
        return f"user={user}\x01auth=Bearer {secret}\x01\x01".encode()
    if mech == "oauthbearer":
        return f"n,a={user},\x01auth=Bearer {secret}\x01\x01".encode()
    if mech == "plain":
        return f"\0{user}\0{secret}".encode()
    raise SystemExit(f"probe: unknown mechanism {mech}")


def imap_login(host, port, mode, cafile, user, mech, secret, folder="INBOX"):
    m = connect(host, port, mode, cafile)
    blob = sasl_blob(user, mech, secret)
    sent = []

    def answer(challenge):
        # First call: initial response; after an error challenge the
        # empty response the RFC requires.
        if sent:
            return b""
        sent.append(1)
        return blob

    try:
        m.authenticate(mech.upper(), answer)
    except imaplib.IMAP4.error as e:
        print(f"NO {e}")
        return 1
    typ, data = m.select(folder, readonly=True)
    if typ != "OK":
        print(f"NO select {data}")
        return 1
    print(f"OK {int(data[0])}")
    m.logout()
    return 0


def imap_fetch(host, port, mode, cafile, user, token, uid, outfile):
    m = connect(host, port, mode, cafile)
    m.authenticate("XOAUTH2", lambda c: sasl_blob(user, "xoauth2", token))
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
    if typ != "OK" or not data or not isinstance(data[0], tuple):
        print(f"probe: fetch of UID {uid} failed: {typ} {data}",
              file=sys.stderr)
        return 1
    with open(outfile, "wb") as f:
        f.write(data[0][1].replace(b"\r\n", b"\n"))
    m.logout()
    return 0


def pop3_login(host, port, mode, cafile, user, token):
    ctx = ssl.create_default_context(cafile=cafile)
    if mode == "implicit":
        p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=10)
    else:
        p = poplib.POP3(host, int(port), timeout=10)
        p.stls(context=ctx)
    blob = base64.b64encode(sasl_blob(user, "xoauth2", token)).decode()
    try:
        resp = p._shortcmd(f"AUTH XOAUTH2 {blob}")
        if not resp.startswith(b"+OK"):
            # An error challenge: answer it with the empty response.
            p._putcmd("")
            p._getresp()
    except poplib.error_proto as e:
        print(f"NO {e}")
        return 1
    count, _ = p.stat()
    print(f"OK {count}")
    p.quit()
    return 0


def genmsg(size, seed, outfile):
    """A MIME message with a base64 attachment of pseudo-random bytes."""
    size = int(size)
    head = (
        "From: Big Sender <big@example.org>\n"
        "To: alice@example.test\n"
        f"Subject: large message {seed}\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\n"
        f"Message-ID: <large-{seed}@example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"\n'
        "\n"
        "--b1\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "The attachment is generated; its digest is checked.\n"
        "\n"
        "--b1\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="data.bin"\n'
        "\n"
    ).encode()
    tail = b"--b1--\n"
    with open(outfile, "wb") as f:
        f.write(head)
        written = len(head) + len(tail)
        block = 0
        while written < size:
            # 57 raw bytes make one 76-character base64 line.
            raw = hashlib.shake_256(f"{seed}/{block}".encode()).digest(57 * 1024)
            block += 1
            b64 = base64.b64encode(raw)
            lines = b"\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
            f.write(lines + b"\n")
            written += len(lines) + 1
        f.write(tail)
    return 0


def closedport(path):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    with open(path + ".tmp", "w") as f:
        f.write(f"{s.getsockname()[1]}\n")
    os.rename(path + ".tmp", path)
    while True:
        time.sleep(3600)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    cmd, args = argv[1], argv[2:]
    if cmd == "freeports":
        freeports(int(args[0]), *args[1:])
        return 0
    if cmd == "closedport":
        return closedport(*args)
    if cmd == "wait-http":
        return wait_http(*args)
    if cmd == "wait-imap":
        return wait_imap(*args)
    if cmd == "imap-login":
        return imap_login(*args)
    if cmd == "imap-fetch":
        return imap_fetch(*args)
    if cmd == "pop3-login":
        return pop3_login(*args)
    if cmd == "genmsg":
        return genmsg(*args)
    print(f"probe: unknown command {cmd}", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
