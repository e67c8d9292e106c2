#!/usr/bin/env python3
"""Crash-consistency driver for tests/e2e/crash.sh: one scenario per call.

A round seeds a fresh mailbox on the real Dovecot with the original
messages, starts pullmail, kills it with SIGKILL after a random delay
(sometimes kills the recovery run too), checks what a crash may leave
behind, then runs pullmail to completion and compares what arrived with the
originals.  Round 0 runs uninterrupted and measures how long a run takes;
the kill delays are drawn between 0 and that.

After each kill:
  - every state file parses (the format of src/state.c);
  - the target holds only whole messages, each byte for byte an original
    (an mbox is parsed message by message, mboxrd quoting undone; Maildir
    new/ and cur/ are read file by file);
  - with keep = no, every original is still on the server or delivered.
After the recovery:
  - every original was delivered (zero losses), nothing else was;
  - the duplicates of all rounds together are at most the number of kills
    (times --max-dups);
  - the server holds every original (keep = yes) or none (keep = no).

With --disk-full the target (and in some rounds the state) is on a small
tmpfs, pre-filled with a file of random size: pullmail must stop with a
temporary error (exit 75) and lose nothing, and once the file is removed a
run must deliver everything.

The figures go to --figures as one line: name, kind (kill or disk),
rounds, kills, losses, duplicates, partial messages, and temporary files
left behind (in the Maildir's tmp/ and beside the state file).
"""
import argparse
import ctypes
import glob
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
STATE_MAGICS = {b"pullmail-state 1": 1, b"pullmail-state 2": 2}
BIND_NAMES = (b"protocol", b"server", b"port", b"user")


class Failure(Exception):
    pass


def sha(data):
    return hashlib.sha256(data).hexdigest()


def log(msg):
    print(msg, flush=True)


# --- what the target holds ---------------------------------------------------

def maildir_messages(d):
    """The messages of Maildir d (new/ and cur/) and the number of files in
    its tmp/."""
    msgs = []
    for sub in ("new", "cur"):
        p = os.path.join(d, sub)
        if not os.path.isdir(p):
            continue
        for name in sorted(os.listdir(p)):
            with open(os.path.join(p, name), "rb") as f:
                msgs.append(("%s/%s" % (sub, name), f.read()))
    tmp = os.path.join(d, "tmp")
    ntmp = len(os.listdir(tmp)) if os.path.isdir(tmp) else 0
    return msgs, ntmp


FROM_LINE = re.compile(rb"^From \S+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d "
                       rb"\d\d:\d\d:\d\d \d{4}\n\Z")
UNQUOTE = re.compile(rb"(?m)^>(>*From )")


def pending_cut(path, size):
    """Where the mbox at path is cut by the next run: the offset of the
    "append DEV INO OFFSET" line in the dot-lock a killed pullmail left
    (it was appending there when it died), or None.  The tail from there
    is the killed run's partial message, which the next run removes before
    it appends; right after a kill it is the one partial message allowed."""
    try:
        with open(path + ".lock", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    m = re.search(r"(?m)^append (\d+) (\d+) (\d+)$", text)
    if m is None:
        return None
    st = os.stat(path)
    off = int(m.group(3))
    if (int(m.group(1)), int(m.group(2))) != (st.st_dev, st.st_ino) or \
            off > size:
        return None
    return off


def mbox_messages(path, after_kill=False):
    """The messages of the mbox at path, mboxrd quoting undone.  A message
    that does not end as pullmail ends one (its text, then a blank line) is
    returned as it is, so that it matches no original.  after_kill: the
    tail a killed run's lock marks for cutting is left out."""
    if not os.path.exists(path):
        return [], []
    with open(path, "rb") as f:
        data = f.read()
    if after_kill:
        off = pending_cut(path, len(data))
        if off is not None:
            data = data[:off]
    if data == b"":
        return [], []
    problems = []
    if not data.startswith(b"From "):
        problems.append("does not begin with a From_ line")
    # With mboxrd quoting, every line that begins with "From " starts a
    # message.
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    msgs = []
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[s:e]
        nl = chunk.find(b"\n")
        head = chunk[:nl + 1] if nl >= 0 else chunk
        body = chunk[nl + 1:] if nl >= 0 else b""
        where = "message %d (offset %d)" % (i + 1, s)
        if not FROM_LINE.match(head):
            problems.append("%s: bad From_ line %r" % (where, head[:80]))
        if body.endswith(b"\n\n"):
            body = body[:-1]
        else:
            problems.append("%s: does not end with a blank line (%d bytes)"
                            % (where, len(body)))
        msgs.append((where, UNQUOTE.sub(rb"\1", body)))
    return msgs, problems


class Target:
    def __init__(self, kind, root):
        self.kind = kind
        self.root = root

    def read(self, after_kill=False):
        """(list of (where, bytes), problems, leftovers in tmp/).
        after_kill: right after a kill, an mbox's tail that the killed
        run's lock marks for cutting is not counted (the next run cuts
        it; verify() then finds none)."""
        if self.kind == "mbox":
            msgs, problems = mbox_messages(os.path.join(self.root, "mbox"),
                                           after_kill)
            return msgs, problems, 0
        msgs, ntmp = maildir_messages(os.path.join(self.root, "Maildir"))
        return msgs, [], ntmp


# --- the state file ------------------------------------------------------------

def state_decode(field):
    """Percent-decode a field as state.c's field_decode(); None if bad."""
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i]
        if c != 0x25:
            out.append(c)
            i += 1
            continue
        h = field[i + 1:i + 3]
        if len(h) != 2 or not all(chr(x) in "0123456789abcdefABCDEF"
                                  for x in h) or int(h, 16) == 0:
            return None
        out.append(int(h, 16))
        i += 3
    return bytes(out)


def check_state(state_dir):
    """Problems with the state files in state_dir, as state.c's
    state_parse() would see them (an empty list: all parse)."""
    problems = []
    for path in sorted(glob.glob(os.path.join(state_dir, "*.state"))):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        if b"\0" in data:
            problems.append("%s: contains NUL bytes" % name)
            continue
        lines = data.split(b"\n")
        if lines[-1] != b"":
            problems.append("%s:%d: truncated line" % (name, len(lines)))
            continue
        lines.pop()
        version = 0
        bound = set()
        for n, line in enumerate(lines, 1):
            if n == 1:
                version = STATE_MAGICS.get(line, 0)
                if version == 0:
                    if line.startswith(b"pullmail-state "):
                        problems.append(
                            "%s: format %r is unknown to this checker "
                            "(update check_state() in tests/e2e/crash.py "
                            "along with src/state.c)" % (name, line))
                    else:
                        problems.append("%s: not a pullmail state file"
                                        % name)
                    break
                continue
            f = line.split(b"\t")
            if len(f) == 3 and f[0] == b"B" and version >= 2:
                if f[1] not in BIND_NAMES or f[1] in bound:
                    problems.append("%s:%d: bad binding record %r"
                                    % (name, n, line[:80]))
                bound.add(f[1])
                continue
            if len(f) != 3 or f[0] not in (b"V", b"U"):
                problems.append("%s:%d: malformed record %r"
                                % (name, n, line[:80]))
                continue
            a, b = state_decode(f[1]), state_decode(f[2])
            if a is None or b is None or b == b"":
                problems.append("%s:%d: malformed field %r"
                                % (name, n, line[:80]))
        if version >= 2 and len(bound) != len(BIND_NAMES):
            problems.append("%s: binding incomplete (%s)"
                            % (name, b" ".join(sorted(bound)).decode()))
    return problems


# --- the server ------------------------------------------------------------------

class Server:
    """A fresh mailbox per round, seeded as tests/servers/servers.sh's
    srv_seed does: each original hard-linked into tmp/, renamed into new/."""

    def __init__(self, mailroot, owner):
        self.mailroot = mailroot
        self.owner = owner        # (uid, gid) or None

    def maildir(self, user):
        return os.path.join(self.mailroot, user.lower())

    def seed(self, user, originals):
        d = self.maildir(user)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for i, path in enumerate(originals):
            name = "1700000000.M%dP%d.crash" % (i + 1, os.getpid())
            tmp = os.path.join(d, "tmp", name)
            try:
                os.link(path, tmp)
            except OSError:
                with open(path, "rb") as f, open(tmp, "wb") as g:
                    g.write(f.read())
            os.rename(tmp, os.path.join(d, "new", name))
        if self.owner is not None:
            for dirpath, dirs, files in os.walk(d):
                os.chown(dirpath, *self.owner)
                for x in files:
                    os.chown(os.path.join(dirpath, x), *self.owner)

    # The messages of user's INBOX, each once.  Dovecot may be at work in
    # the Maildir as we look (a session that just lost its client moves
    # files from new/ to cur/ and writes flags into their names, or
    # expunges): one that vanishes while we read means another look.
    # Keyed by the name without its flags, a file moved from new/ to cur/
    # between the two listings counts once.
    def messages(self, user):
        d = self.maildir(user)
        for _ in range(100):
            got, vanished = {}, False
            for sub in ("new", "cur"):
                p = os.path.join(d, sub)
                for name in os.listdir(p) if os.path.isdir(p) else []:
                    try:
                        with open(os.path.join(p, name), "rb") as f:
                            got[name.split(":", 1)[0]] = f.read()
                    except FileNotFoundError:
                        vanished = True
            if not vanished:
                break
            time.sleep(0.02)
        return list(got.values())


# --- one scenario -------------------------------------------------------------------

class Scenario:
    def __init__(self, a):
        self.a = a
        self.name = a.name
        self.rng = random.Random("%s/%s" % (a.seed, a.name))
        self.originals = sorted(glob.glob(os.path.join(a.originals, "*")))
        if a.messages and a.messages < len(self.originals):
            # Spread over the sizes, the smallest and the largest in.
            by_size = sorted(self.originals, key=os.path.getsize)
            k, n = a.messages, len(by_size)
            self.originals = sorted(set(
                by_size[(i * (n - 1)) // (k - 1)] for i in range(k)))
        self.orig = {}
        for p in self.originals:
            with open(p, "rb") as f:
                self.orig[sha(f.read())] = os.path.basename(p)
        if len(self.orig) != len(self.originals):
            raise Failure("the originals are not all distinct")
        with open(a.template) as f:
            self.template = f.read()
        owner = None
        if a.owner:
            u, g = a.owner.split(":")
            owner = (int(u), int(g))
        self.server = Server(a.mailroot, owner)
        self.kills = self.losses = self.dups = self.partials = 0
        self.rounds = 0
        self.tmp_left = 0
        self.failures = []
        self.runs = 0

    # A round's directory, mailbox and configuration.
    def setup(self, r, target_dir=None, state_dir=None):
        d = os.path.join(self.a.work, "r%d" % r)
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.target_dir = target_dir or d
        # One state directory for the scenario (its rounds are accounts of
        # their own), so the token cached there serves every run.
        self.state_dir = state_dir or os.path.join(self.a.work, "state")
        self.user = "%s-r%d@%s" % (self.a.user_prefix, r, self.a.domain)
        self.server.seed(self.user, self.originals)
        cfg = (self.template.replace("@USER@", self.user)
               .replace("@ACCOUNT@", "r%d" % r)
               .replace("@DIR@", self.target_dir)
               .replace("@STATE@", self.state_dir))
        self.config = os.path.join(d, "config")
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cfg)
        self.target = Target(self.a.target, self.target_dir)
        self.bad = set()        # partial messages seen in this round
        self.bad_when = []

    # The partial messages of the round: counted, and the round fails.
    def end_round(self):
        if self.bad_when:
            self.partials += max(len(self.bad), 1)
            when, self.bad_when = self.bad_when[0], []
            raise Failure("the target holds a partial or foreign message "
                          "%s" % when)

    def start(self):
        self.runs += 1
        base = os.path.join(self.dir, "run%d" % self.runs)
        out = open(base + ".out", "wb")
        err = open(base + ".err", "wb")
        p = subprocess.Popen([self.a.pullmail, "-c", self.config],
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err)
        out.close()
        err.close()
        p.base = base
        p.t0 = time.monotonic()
        return p

    def output(self, p):
        with open(p.base + ".err", "rb") as f:
            return f.read().decode("utf-8", "replace")

    # The gist of a run's errors: its last line, and where the rest is.
    def gist(self, p):
        lines = [x for x in self.output(p).splitlines() if x.strip()]
        if not lines:
            return "(nothing on stderr)"
        more = "" if len(lines) == 1 else " (%d lines in all in %s.err)" % (
            len(lines), p.base)
        return lines[-1] + more

    # Run to completion; the exit status and how long it took.
    def run(self):
        p = self.start()
        try:
            rc = p.wait(timeout=self.a.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("pullmail did not finish within %d s (%s)"
                          % (self.a.timeout, p.base))
        return rc, time.monotonic() - p.t0, p

    # Reap the children pullmail left (an MDA reading the rest of its
    # message): this process is their subreaper.
    def reap_orphans(self):
        deadline = time.monotonic() + 30
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if time.monotonic() > deadline:
                    raise Failure("an MDA left by pullmail is still "
                                  "running after 30 s")
                time.sleep(0.01)

    # Start a run and SIGKILL it after a random delay; 1 if it was killed.
    def run_and_kill(self, hi, what):
        delay = self.rng.uniform(0, hi)
        p = self.start()
        try:
            rc = p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            self.reap_orphans()
            self.kills += 1
            log("  %s: killed after %.3f s" % (what, delay))
            self.after_crash("after the kill of the %s (%.3f s)"
                             % (what, delay))
            return 1
        log("  %s: ended by itself before %.3f s (exit %d)"
            % (what, delay, rc))
        if rc not in (0, 1):
            raise Failure("pullmail exited %d: %s" % (rc, self.gist(p)))
        return 0

    # Classify what the target holds.  Returns (counts by original,
    # messages matching none).
    def inventory(self, after_kill=False):
        msgs, problems, ntmp = self.target.read(after_kill)
        counts = {}
        unknown = []
        for where, data in msgs:
            h = sha(data)
            if h in self.orig:
                counts[h] = counts.get(h, 0) + 1
            else:
                unknown.append((where, len(data)))
        return counts, unknown, problems, ntmp

    # Every message in the target must be whole.  A partial one is
    # noted (the round fails at its end) but the round goes on, to see
    # whether the recovery copes with it.
    def check_whole(self, when, after_kill=False):
        counts, unknown, problems, ntmp = self.inventory(after_kill)
        for p in problems:
            log("  PARTIAL %s: mbox %s" % (when, p))
        for where, n in unknown:
            log("  PARTIAL %s: %s (%d bytes) is not one of the originals"
                % (when, where, n))
            self.bad.add(where)
        if problems or unknown:
            self.bad_when.append(when)
        return counts, ntmp

    def check_state(self, when):
        problems = check_state(self.state_dir)
        for p in problems:
            log("  STATE %s: %s" % (when, p))
        if problems:
            raise Failure("a state file does not parse %s" % when)

    # No original may be neither on the server nor delivered.
    def check_nothing_lost(self, counts, when):
        have = set(counts)
        for data in self.server.messages(self.user):
            have.add(sha(data))
        lost = [self.orig[h] for h in self.orig if h not in have]
        if lost:
            self.losses += len(lost)
            log("  LOST %s: %s" % (when, " ".join(sorted(lost))))
            raise Failure("%d messages lost %s" % (len(lost), when))

    def after_crash(self, when):
        self.check_state(when)
        counts, _ = self.check_whole(when, after_kill=True)
        if self.a.keep == "no":
            self.check_nothing_lost(counts, when)

    # The final comparison with the originals; the round's duplicates.
    def verify(self, when):
        self.check_state(when)
        counts, ntmp = self.check_whole(when)
        self.check_nothing_lost(counts, when)
        missing = [self.orig[h] for h in self.orig if h not in counts]
        if missing:
            self.losses += len(missing)
            log("  LOST %s: not delivered: %s"
                % (when, " ".join(sorted(missing))))
            raise Failure("%d messages not delivered %s"
                          % (len(missing), when))
        dups = sum(c - 1 for c in counts.values())
        on_server = len(self.server.messages(self.user))
        want = len(self.orig) if self.a.keep == "yes" else 0
        if on_server != want:
            raise Failure("the server holds %d messages %s, expected %d"
                          % (on_server, when, want))
        self.tmp_left += ntmp + len(glob.glob(
            os.path.join(self.state_dir, "*.state.tmp*")))
        return dups

    def recover(self):
        rc, _, p = self.run()
        if rc not in (0, 1):
            raise Failure("the recovery run exited %d: %s"
                          % (rc, self.gist(p)))
        return self.verify("after the recovery run")

    # --- the kill rounds ---

    def kill_rounds(self):
        rc, took, p = (None, None, None)
        self.setup(0)
        rc, took, p = self.run()
        if rc != 0:
            raise Failure("the uninterrupted run exited %d: %s"
                          % (rc, self.gist(p)))
        d = self.verify("after the uninterrupted run")
        self.end_round()
        if d:
            raise Failure("%d duplicates without a kill" % d)
        log("  uninterrupted run: %.3f s" % took)
        r = 0
        while (self.kills < self.a.kills and r < 4 * self.a.kills + 4 and
               len(self.failures) < 3):
            r += 1
            self.rounds += 1
            self.setup(r)
            log(" round %d:" % r)
            before = self.kills
            try:
                k = self.run_and_kill(took, "run")
                if k and self.rng.random() < 0.25:
                    self.run_and_kill(took, "recovery run")
                d = self.recover()
                self.dups += d
                log("  %d kills, %d duplicates" % (self.kills - before, d))
                self.end_round()
            except Failure as e:
                self.fail_round(r, e)
        if self.dups > self.kills * self.a.max_dups:
            self.failures.append("%d duplicates for %d kills (at most %d "
                                 "per kill)" % (self.dups, self.kills,
                                                self.a.max_dups))

    # A failed round: noted, and the next round starts afresh.
    def fail_round(self, r, e):
        log("  round %d failed: %s" % (r, e))
        self.failures.append("round %d: %s" % (r, e))
        try:
            self.end_round()
        except Failure as e2:
            self.failures.append("round %d: %s" % (r, e2))

    # --- the full disk ---

    def mount(self, d, size):
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0755" % size, "pullmail-crash", d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return r.stdout.decode("utf-8", "replace").strip() or "failed"
        return None

    def disk_rounds(self):
        size = 1024 * 1024
        total = sum(os.path.getsize(p) for p in self.originals)
        for r in range(1, self.a.rounds + 1):
            self.rounds += 1
            fs = os.path.join(self.a.work, "fs%d" % r)
            why = self.mount(fs, size)
            if why is not None:
                raise Failure("cannot mount a tmpfs: %s" % why)
            try:
                self.disk_round(r, fs, size, total)
            except Failure as e:
                self.fail_round(r, e)
            finally:
                subprocess.run(["umount", fs])

    def disk_round(self, r, fs, size, total):
        on_fs = self.rng.random() < 0.5
        fill = self.rng.randrange(size - total - 16384, size - 16384)
        fill = max(fill, 0)
        with open(os.path.join(fs, "fill"), "wb") as f:
            f.write(b"\0" * fill)
        self.setup(r, target_dir=fs,
                   state_dir=os.path.join(fs, "state") if on_fs else None)
        log(" round %d: %d bytes free of %d, state on the %s" % (
            r, size - fill, size, "tmpfs" if on_fs else "disk"))
        rc, _, p = self.run()
        err = self.output(p)
        log("  full run: exit %d" % rc)
        if rc not in (0, 75):
            raise Failure("a full disk: exit %d, expected 75: %s"
                          % (rc, self.gist(p)))
        if rc == 75 and "No space left on device" not in err:
            raise Failure("exit 75 without saying the disk is full: %s"
                          % self.gist(p))
        self.after_crash("on the full disk")
        os.unlink(os.path.join(fs, "fill"))
        d = self.recover()
        self.dups += d
        log("  %d duplicates" % d)
        self.end_round()

    def figures(self):
        with open(self.a.figures, "a") as f:
            f.write("%s %s %d %d %d %d %d %d\n" % (
                self.name, "disk" if self.a.disk_full else "kill",
                self.rounds, self.kills, self.losses, self.dups,
                self.partials, self.tmp_left))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--pullmail", required=True)
    ap.add_argument("--template", required=True,
                    help="configuration with @ACCOUNT@, @USER@, @DIR@ and @STATE@")
    ap.add_argument("--target", choices=("maildir", "mbox", "mda"),
                    required=True)
    ap.add_argument("--keep", choices=("yes", "no"), required=True)
    ap.add_argument("--originals", required=True)
    ap.add_argument("--mailroot", required=True)
    ap.add_argument("--owner", default="", help="uid:gid of mail files")
    ap.add_argument("--user-prefix", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--messages", type=int, default=0,
                    help="use only this many originals, spread over the "
                    "sizes")
    ap.add_argument("--max-dups", type=int, default=1,
                    help="duplicates allowed per kill")
    ap.add_argument("--disk-full", action="store_true")
    ap.add_argument("--seed", required=True)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--figures", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    # Orphaned MDAs come back to us, to be waited for.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    s = Scenario(a)
    log("%s: seed %s (PULLMAIL_CRASH_SEED=%s replays it)"
        % (a.name, a.seed, a.seed))
    try:
        if a.disk_full:
            s.disk_rounds()
        else:
            s.kill_rounds()
    except Failure as e:
        s.failures.append(str(e))
    s.figures()
    for f in s.failures:
        log("FAIL: %s: %s" % (a.name, f))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
