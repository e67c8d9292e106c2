#!/usr/bin/env python3
"""Compare what `pullmail import getmailrc --dump-facts` read from each
getmailrc with what getmail6 itself reads: its own retriever and
destination classes (getmailcore), given the file's sections as getmail
gives them, and its options as getmail's main script reads them.

usage: getmail-oracle.py PULLMAIL GETMAILRC...
       getmail-oracle.py --rejects GETMAILRC...  (getmail6 refuses each)
Runs getmailcore under the system's /usr/bin/python3 (where Debian's
getmail6 package installs it); exits 1 if any fact differs.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import check_all  # noqa: E402

# Run by /usr/bin/python3 in a HOME holding ~/Maildir/ and ~/mbox, the
# destinations the corpus names.
GETMAIL_VIEW = r'''
import configparser, json, sys
from getmailcore import retrievers, destinations
# MDA_lmtp connects when made; its settings are read and checked before.
destinations.MDA_lmtp.initialize = lambda self: None
cp = configparser.RawConfigParser()
with open(sys.argv[1]) as f:
    cp.read_file(f)
rtype = cp.get("retriever", "type")
args = {"getmaildir": sys.argv[2], "configparser": cp}
args.update((k, v) for k, v in cp.items("retriever") if k != "type")
r = getattr(retrievers, rtype)(**args)
r.checkconf()
c = r.conf
facts = {"type": rtype, "server": c["server"], "port": c["port"],
         "timeout": c["timeout"], "username": c["username"],
         "has_password": c.get("password") is not None,
         "password_command": list(c["password_command"])}
if "mailboxes" in c:
    facts["mailboxes"] = list(c["mailboxes"])
    facts["use_peek"] = c["use_peek"]
    facts["use_xoauth2"] = c["use_xoauth2"]
if "ca_certs" in c:
    facts["ca_certs"] = c["ca_certs"]
    facts["ssl_fingerprints"] = list(c["ssl_fingerprints"])
dtype = cp.get("destination", "type")
facts["destination"] = dtype
dargs = {"configparser": cp}
dargs.update((k, v) for k, v in cp.items("destination") if k != "type")
d = getattr(destinations, dtype)(**dargs)
dc = d.conf
if "path" in dc:
    facts["path"] = dc["path"]
if "arguments" in dc:
    facts["arguments"] = list(dc["arguments"])
if "host" in dc:
    facts["host"] = dc["host"]
    facts["dport"] = dc["port"]
# The options, as getmail's main script reads them.
defaults = {"read_all": True, "delete": False, "delete_after": 0,
            "max_message_size": 0, "delivered_to": True, "received": True}
for k, v in defaults.items():
    if cp.has_option("options", k):
        v = (cp.getboolean if isinstance(v, bool) else cp.getint)("options", k)
    facts[k] = v
print("FACTS:" + json.dumps(facts))
'''


def getmail_view(rc, home):
    env = dict(os.environ, HOME=home)
    out = subprocess.run(["/usr/bin/python3", "-c", GETMAIL_VIEW, rc, home],
                         env=env, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("FACTS:"):
            return json.loads(line[6:])
    raise RuntimeError("getmail6 rejected %s: %s" % (rc, out.stderr.strip()
                       or out.stdout.strip()[-400:]))


def pullmail_view(pullmail, rc, home):
    out = subprocess.run([pullmail, "import", "getmailrc", "--dump-facts",
                          rc], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("pullmail failed on %s (%d): %s"
                           % (rc, out.returncode, out.stderr))
    facts = json.loads(out.stdout)
    # getmail expands ~ in its paths.
    for k in ("path", "ca_certs"):
        if facts.get(k):
            facts[k] = facts[k].replace("~", home, 1) \
                if facts[k].startswith("~") else facts[k]
    return facts


def diff_views(gm, pm):
    return ["%s: getmail %r, pullmail %r" % (k, gm.get(k), pm.get(k))
            for k in sorted(set(gm) | set(pm)) if gm.get(k) != pm.get(k)]


def rejects(files, home):
    """getmail6 refuses each of files; prints those it reads."""
    read = 0
    for rc in files:
        try:
            getmail_view(rc, home)
        except RuntimeError:
            print("ok   getmail6 rejects %s" % os.path.basename(rc))
            continue
        read += 1
        print("FAIL getmail6 reads %s" % os.path.basename(rc))
    return 1 if read else 0


def main():
    pullmail = sys.argv[1]
    with tempfile.TemporaryDirectory() as home:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, "Maildir", sub))
        open(os.path.join(home, "mbox"), "w").close()
        if pullmail == "--rejects":
            return rejects(sys.argv[2:], home)
        return check_all(sys.argv[2:], lambda rc: diff_views(
            getmail_view(rc, home), pullmail_view(pullmail, rc, home)))

if __name__ == "__main__":
    sys.exit(main())
