#!/usr/bin/env python3
"""Write a benchmark workload straight into a Maildir (the server's side).

  genmaildir.py [--each N] [--sizes] DIR COUNT SIZE TAG

puts COUNT distinct messages of SIZE bytes each (LF line endings, as in a
Maildir) into DIR/new, creating DIR/{new,cur,tmp}.  With --each N, DIR and
TAG each hold a "%d", and mailboxes 1 to N are written, each with its own
messages (the scale benchmark's hundreds of mailboxes, in one process).
Text messages up to 64 KiB; larger ones carry a base64 attachment of
pseudo-random bytes (as a real 1 MB mail does).  Deterministic: the same
arguments give the same bytes.  One process instead of one `ln` per
message: 5,000 messages take well under a second.  With --sizes, each
file name carries ",S=size,W=size with CRLF line ends", as Dovecot's own
delivery (LMTP, dovecot-lda) names the mail it stores: Dovecot then answers
RFC822.SIZE from the name instead of reading the message.
"""
import base64
import hashlib
import os
import sys

WORDS = ("the report is attached and the numbers for the quarter look fine "
         "please check the figures before the meeting on thursday so that "
         "we can send the summary to everyone in the team by friday").split()


def text_body(n, seed):
    """About n bytes of plain text lines, one starting with a dot (POP3
    dot-stuffing) and one with "From " (mbox quoting)."""
    lines = [".a line starting with a dot", "From the start of a line"]
    size = sum(len(x) + 1 for x in lines)
    h = hashlib.shake_256(seed.encode()).digest(4096)
    i = 0
    while size < n:
        words = [WORDS[(h[(i + k) % len(h)] + i) % len(WORDS)]
                 for k in range(12)]
        line = " ".join(words)
        lines.append(line)
        size += len(line) + 1
        i += 1
    return "\n".join(lines) + "\n"


def message(size, tag, i):
    seed = f"{tag}/{i}"
    head = (f"Return-Path: <sender{i % 97}@example.org>\n"
            "Received: from mx.example.org (mx.example.org [192.0.2.25])\n"
            " by mail.example.test with ESMTPS; Mon, 2 Jun 2025 09:12:44 +0000\n"
            f"From: Sender {i % 97} <sender{i % 97}@example.org>\n"
            "To: bench@example.test\n"
            f"Subject: benchmark message {i} ({tag})\n"
            "Date: Mon, 02 Jun 2025 09:12:40 +0000\n"
            f"Message-ID: <{i}.{tag}@example.org>\n"
            "MIME-Version: 1.0\n")
    if size <= 65536:
        head += "Content-Type: text/plain; charset=us-ascii\n\n"
        body = text_body(max(0, size - len(head)), seed)
        return (head + body).encode()[:max(size, len(head) + 1) - 1] + b"\n"
    head += ('Content-Type: multipart/mixed; boundary="b1"\n\n'
             "--b1\nContent-Type: text/plain; charset=us-ascii\n\n"
             "The attachment is generated.\n\n"
             "--b1\nContent-Type: application/octet-stream\n"
             "Content-Transfer-Encoding: base64\n"
             'Content-Disposition: attachment; filename="data.bin"\n\n')
    tail = "--b1--\n"
    need = size - len(head) - len(tail)
    out = bytearray(head.encode())
    block = 0
    while need > 0:
        raw = hashlib.shake_256(f"{seed}/{block}".encode()).digest(57 * 1024)
        block += 1
        b64 = base64.b64encode(raw)
        chunk = b"\n".join(b64[k:k + 76] for k in range(0, len(b64), 76))
        chunk += b"\n"
        out += chunk[:need]
        need -= len(chunk)
    if not out.endswith(b"\n"):
        out[-1:] = b"\n"
    out += tail.encode()
    return bytes(out)


def fill(d, count, size, tag, sizes=False):
    """COUNT messages of SIZE bytes tagged TAG into Maildir D; with sizes,
    the physical and the virtual size in each file name."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for i in range(1, count + 1):
        data = message(size, tag, i)
        name = f"1700000000.B{i}P{os.getpid()}.bench"
        if sizes:
            vsize = len(data) + data.count(b"\n")
            name += f",S={len(data)},W={vsize}"
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(d, "new", name))


def main(argv):
    each, sizes = 0, False
    if len(argv) > 2 and argv[1] == "--each":
        each = int(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) > 1 and argv[1] == "--sizes":
        sizes = True
        argv = argv[:1] + argv[2:]
    if len(argv) != 5 or (each and not ("%d" in argv[1] and "%d" in argv[4])):
        print(__doc__, file=sys.stderr)
        return 64
    d, count, size, tag = argv[1], int(argv[2]), int(argv[3]), argv[4]
    if not each:
        fill(d, count, size, tag, sizes)
        return 0
    for n in range(1, each + 1):
        fill(d.replace("%d", str(n)), count, size, tag.replace("%d", str(n)),
             sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
