#!/usr/bin/env python3
"""Check that local Maildirs hold, byte for byte, what the server holds.

  samemail.py [--drop-field TEXT] SERVER LOCAL N [NUMBER...]

SERVER and LOCAL are Maildir paths holding a "%d", replaced by each number
from 1 to N (or by each NUMBER given).  For every mailbox the messages in
LOCAL/{new,cur} must be the messages in SERVER/{new,cur}, each exactly
once (compared by SHA-256 of the whole file, so flags in file names do not
matter), and LOCAL/tmp must be empty.  --drop-field TEXT first removes
from each local message the header fields containing TEXT (a peer's own
Received field: fetchmail adds one, with "(fetchmail-" in it).

Prints one line, "N mailboxes, M messages, all identical", or the first
few differences and a count; exits 0 when everything matched, 1 if not.
"""
import hashlib
import os
import sys


def drop_fields(data, text):
    """data without the header fields (continuation lines included) that
    contain text."""
    head, sep, body = data.partition(b"\n\n")
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    keep = [b"\n".join(f) for f in fields if text not in b"\n".join(f)]
    return b"\n".join(keep) + sep + body


def digests(d, drop=None):
    """SHA-256 of every message file in Maildir d, sorted (a multiset);
    with drop, of each message without its header fields containing drop."""
    out = []
    for sub in ("new", "cur"):
        try:
            names = os.listdir(os.path.join(d, sub))
        except FileNotFoundError:
            continue
        for name in names:
            with open(os.path.join(d, sub, name), "rb") as f:
                data = f.read()
            if drop:
                data = drop_fields(data, drop)
            out.append(hashlib.sha256(data).hexdigest())
    return sorted(out)


def leftovers(d):
    try:
        return os.listdir(os.path.join(d, "tmp"))
    except FileNotFoundError:
        return []


def main(argv):
    drop = None
    if len(argv) > 2 and argv[1] == "--drop-field":
        drop = argv[2].encode()
        argv = argv[:1] + argv[3:]
    if len(argv) < 4 or "%d" not in argv[1] or "%d" not in argv[2]:
        print(__doc__, file=sys.stderr)
        return 64
    server, local = argv[1], argv[2]
    numbers = [int(x) for x in argv[4:]] or range(1, int(argv[3]) + 1)
    bad, total, shown = 0, 0, 0
    for n in numbers:
        s = digests(server.replace("%d", str(n)))
        d = local.replace("%d", str(n))
        got = digests(d, drop)
        total += len(got)
        why = None
        if got != s:
            missing = len([x for x in s if x not in got])
            extra = len(got) - (len(s) - missing)
            why = (f"holds {len(got)} messages, the server {len(s)}: "
                   f"{missing} missing, {extra} not the server's or doubled")
        elif leftovers(d):
            why = f"{len(leftovers(d))} files left in tmp/"
        if why:
            bad += 1
            if shown < 5:
                print(f"mailbox {n} ({d}) {why}")
                shown += 1
    if bad:
        print(f"{bad} of {len(numbers)} mailboxes differ from the server")
        return 1
    print(f"{len(numbers)} mailboxes, {total} messages, all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
