#!/usr/bin/env python3
"""Compare what an MTA delivered into a Maildir with the originals.

usage: same-after-trace.py [--drops-return-path] MAILDIR ORIGINAL...

An MTA puts its own trace lines in front of a message it delivers
(Postfix: Return-Path, X-Original-To, Delivered-To, Received; Dovecot LMTP:
Return-Path, Delivered-To, Received).  Each delivered file must be exactly
one of the originals with nothing but such lines (and their continuation
lines) in front; every original must be there once.  Prints the Return-Path
of each delivered message (sorted) so the caller can check the envelope
sender.  Exit 1 with a reason otherwise.

--drops-return-path: the MTA removes a Return-Path header the message
carries (Postfix's cleanup does, it writes its own at delivery), so the
originals are compared without theirs.
"""
import os
import re
import sys

TRACE = re.compile(rb"(?i)^(Return-Path|X-Original-To|Delivered-To|Received):")


def trace_only(prefix):
    """The lines of prefix if it is nothing but trace lines, else None."""
    lines = prefix.splitlines(keepends=True)
    if prefix and not prefix.endswith(b"\n"):
        return None
    for n, line in enumerate(lines):
        if TRACE.match(line):
            continue
        if n > 0 and line[:1] in (b" ", b"\t"):
            continue
        return None
    return lines


def without_return_path(data):
    """data without the Return-Path fields of its header section."""
    head, sep, body = data.partition(b"\n\n")
    out, skip = [], False
    for line in head.splitlines(keepends=True):
        if line.lower().startswith(b"return-path:"):
            skip = True
            continue
        if skip and line[:1] in (b" ", b"\t"):
            continue
        skip = False
        out.append(line)
    return b"".join(out) + sep + body


def main():
    args = sys.argv[1:]
    drops = args[:1] == ["--drops-return-path"]
    if drops:
        args = args[1:]
    box, originals = args[0], args[1:]
    left = []
    for path in originals:
        with open(path, "rb") as f:
            data = f.read()
        left.append(without_return_path(data) if drops else data)
    paths = []
    for sub in ("new", "cur"):
        d = os.path.join(box, sub)
        if os.path.isdir(d):
            paths += [os.path.join(d, n) for n in os.listdir(d)]
    if len(paths) != len(originals):
        sys.exit("%s holds %d messages, expected %d" % (box, len(paths), len(originals)))
    senders = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        for i, orig in enumerate(left):
            if not data.endswith(orig):
                continue
            trace = trace_only(data[:len(data) - len(orig)])
            if trace is None:
                continue
            del left[i]
            break
        else:
            sys.exit("%s is not one of the originals behind trace lines" % path)
        for line in trace:
            if line.lower().startswith(b"return-path:"):
                senders.append(line.decode("ascii", "replace").rstrip("\r\n"))
    for s in sorted(senders):
        print(s)


main()
