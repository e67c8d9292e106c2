#!/usr/bin/env python3
"""Compare what `pullmail import fetchmailrc --dump-facts` read from each rc
file with what fetchmail itself reads (`fetchmail --configdump`).

usage: fetchmail-oracle.py PULLMAIL FETCHMAIL RCFILE...
Prints one line per file and exits 1 if any fact differs.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import check_all  # noqa: E402

# Facts compared: pullmail's key -> fetchmail's dump key.
USER_KEYS = ["remote", "localnames", "keep", "fetchall", "flush",
             "limitflush", "idle", "ssl", "lmtp", "dropstatus",
             "dropdelivered", "mimedecode", "sslcertck", "limit",
             "fetchlimit", "mda", "bsmtp", "sslproto", "sslcertfile",
             "sslfingerprint", "smtpaddress", "smtpname", "preconnect",
             "postconnect", "smtphunt", "mailboxes"]
SERVER_KEYS = ["pollname", "via", "protocol", "service", "auth", "timeout",
               "interval", "plugin", "plugout", "localdomains"]
BOOLS = {"keep", "fetchall", "flush", "limitflush", "idle", "ssl", "lmtp",
         "dropstatus", "dropdelivered", "mimedecode", "sslcertck", "active",
         "syslog"}
# fetchmail reports kpop and sdps as POP3 with other login settings.
PROTO = {"kpop": "pop3", "sdps": "pop3"}


def fetchmail_view(fetchmail, rc, home):
    """fetchmail's own reading of rc, flattened to one dict per user."""
    path = os.path.join(home, "fetchmailrc")
    shutil.copyfile(rc, path)
    os.chmod(path, 0o600)
    env = dict(os.environ, HOME=home)
    out = subprocess.run([fetchmail, "--configdump", "-f", path],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0 or "fetchmailrc = {" not in out.stdout:
        raise RuntimeError("fetchmail rejected %s: %s" % (rc, out.stderr))
    scope = {}
    exec(out.stdout, scope)  # a Python literal, as fetchmailconf reads it
    cfg = scope["fetchmailrc"]
    view = {"poll_interval": cfg["poll_interval"],
            "postmaster": cfg["postmaster"],
            "syslog": bool(cfg["syslog"]), "entries": []}
    for srv in cfg["servers"]:
        for usr in srv["users"]:
            e = {k: srv[k] for k in SERVER_KEYS}
            e["active"] = bool(srv["active"])
            e.update({k: usr[k] for k in USER_KEYS})
            # fetchmail fills in a password for logins that need none.
            if srv["auth"] in ("any", "password") and \
                    e["protocol"] not in ("ETRN", "ODMR"):
                e["has_password"] = usr["password"] is not None
            e["localnames"] = [list(n) if isinstance(n, tuple) else n
                               for n in e["localnames"]]
            e["protocol"] = e["protocol"].lower()
            view["entries"].append(e)
    return view


def pullmail_view(pullmail, rc):
    out = subprocess.run([pullmail, "import", "fetchmailrc", "--dump-facts",
                          rc], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("pullmail failed on %s (%d): %s"
                           % (rc, out.returncode, out.stderr))
    facts = json.loads(out.stdout)
    for e in facts["entries"]:
        e["protocol"] = PROTO.get(e["protocol"], e["protocol"])
    return facts


def norm(key, value):
    if key in BOOLS:
        return bool(value)
    return value


def compare(fm, pm):
    diffs = []
    for k in ("poll_interval", "postmaster", "syslog"):
        if norm(k, fm[k]) != norm(k, pm[k]):
            diffs.append("%s: fetchmail %r, pullmail %r" % (k, fm[k], pm[k]))
    if len(fm["entries"]) != len(pm["entries"]):
        diffs.append("entries: fetchmail %d, pullmail %d"
                     % (len(fm["entries"]), len(pm["entries"])))
        return diffs
    for i, (f, p) in enumerate(zip(fm["entries"], pm["entries"])):
        for k in ["active", "has_password"] + SERVER_KEYS + USER_KEYS:
            if k not in f:
                continue
            if norm(k, f[k]) != norm(k, p[k]):
                diffs.append("entry %d (%s) %s: fetchmail %r, pullmail %r"
                             % (i, f["pollname"], k, f[k], p[k]))
    return diffs


def main():
    pullmail, fetchmail = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as home:
        return check_all(sys.argv[3:], lambda rc: compare(
            fetchmail_view(fetchmail, rc, home), pullmail_view(pullmail, rc)))

if __name__ == "__main__":
    sys.exit(main())
