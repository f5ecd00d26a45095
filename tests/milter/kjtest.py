"""kjtest: shared helpers for the milter-protocol tests.

run.sh exports:
  KJ_BUILD   the build directory (kanjiki-milter, kanjiki)
  KJ_TMP     a private temporary directory for this run
  KJ_USER    the user the milter runs as when started as root ("" if not root)
  KJ_SHARED  the directory of the shared milter instance run.sh started
             (k.conf, k.sock, k.db, milter.log, milter.pid, rules/)

  KJ_DNS_DIR where the test DNS (tests/dnsenv) lives when a test needs it
             (started on first use by dns_env(), stopped at exit; run.sh
             stops it again at the end, whatever happened)

Tests that need a daemon of their own (monitor mode, reload, SIGTERM,
socket handling) start one with Milter(name, ...).start(); every instance
lives in KJ_TMP/NAME with the same base configuration as the shared one.
Blocklist and SPF tests give theirs dns_conf() as extra configuration: the
one private DNS environment of the run, shared by every module.
"""

import atexit
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dnsenv"))
from milterdrv import MilterClient  # noqa: E402

BUILD = os.path.abspath(os.environ.get("KJ_BUILD", "build"))
TMP = os.environ.get("KJ_TMP") or "/tmp"
USER = os.environ.get("KJ_USER", "")
MILTER = os.path.join(BUILD, "kanjiki-milter")
CLI = os.path.join(BUILD, "kanjiki")

BASE_CONF = """\
# written by tests/milter
socket = unix:{dir}/k.sock
database = {dir}/k.db
{user_line}mode = {mode}
local_domains = local.test
relay_domains = relay.test
trusted_networks = 192.0.2.10/32, 2001:db8:1::/48
local_addresses = 192.0.2.1
rules = {dir}/rules
"""

RELAY_DENIED = "554 5.7.1 Relaying denied (kanjiki): "
BAD_SYNTAX = "501 5.1.3 Bad recipient address syntax (kanjiki)"
ACCESS_DENIED = "550 5.7.1 Access denied (kanjiki)"

# instances stopped without waiting; reaped at the end of the run
_pending_stops = []
# every instance a test started, to make sure none is left running
_started = []


def token():
    return secrets.token_hex(4)


def conf_text(dirpath, mode="enforce", extra=""):
    user_line = "user = %s\n" % USER if USER else ""
    return BASE_CONF.format(dir=dirpath, user_line=user_line, mode=mode) + extra


def give_to_user(path):
    """When running as root, hand PATH (and what is under it) to the
    milter's user so that it can write there after dropping root."""
    if not USER or os.geteuid() != 0:
        return
    pw = pwd.getpwnam(USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    give_to_user(os.path.dirname(path))


def socket_accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Milter:
    """One kanjiki-milter instance in KJ_TMP/NAME (or an existing one)."""

    def __init__(self, name, mode="enforce", rules=None, extra_conf="", fresh=True):
        self._paths(os.path.join(TMP, name))
        if fresh:
            if os.path.exists(self.dir):
                shutil.rmtree(self.dir)
            os.makedirs(self.rules)
            with open(self.conf, "w") as f:
                f.write(conf_text(self.dir, mode, extra_conf))
            for fname, text in (rules or {}).items():
                with open(os.path.join(self.rules, fname), "w") as f:
                    f.write(text)
            give_to_user(self.dir)

    def _paths(self, d):
        self.dir = d
        self.conf = os.path.join(d, "k.conf")
        self.sock = os.path.join(d, "k.sock")
        self.db = os.path.join(d, "k.db")
        self.log = os.path.join(d, "milter.log")
        self.pidfile = os.path.join(d, "milter.pid")
        self.rules = os.path.join(d, "rules")
        self.proc = None
        self.pid = None

    @classmethod
    def shared(cls):
        """The instance run.sh started for the whole run."""
        d = os.environ.get("KJ_SHARED")
        if not d:
            raise unittest.SkipTest("KJ_SHARED not set: run through tests/milter/run.sh")
        m = cls.__new__(cls)
        m._paths(d)
        with open(m.pidfile) as f:
            m.pid = int(f.read().strip())
        return m

    # ------------------------------------------------------------ process

    def start(self, wait=True, expect_ok=True, timeout=5.0):
        """Start kanjiki-milter -f -c CONF -p PIDFILE, stderr appended to
        the log.  With WAIT, return once the socket accepts connections
        (or fail if the process died)."""
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([MILTER, "-f", "-c", self.conf, "-p", self.pidfile],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        self.pid = self.proc.pid
        _started.append(self)
        if not wait:
            return self
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if expect_ok:
                    raise AssertionError("kanjiki-milter exited %s at start:\n%s"
                                         % (self.proc.returncode, self.log_tail()))
                return self
            if socket_accepts(self.sock) and self.log_has("started on"):
                return self
            time.sleep(0.05)
        raise AssertionError("kanjiki-milter did not start within %.0fs:\n%s"
                             % (timeout, self.log_tail()))

    def alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
            return True
        except OSError:
            return False

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=15.0):
        """Wait for our child to exit; returns its exit status (None on
        timeout)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, wait=False):
        """SIGTERM.  Without WAIT the exit is reaped at the end of the run
        (libmilter takes a few seconds to notice the stop)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        if wait:
            return self.wait_exit()
        _pending_stops.append(self)
        return None

    def kill9(self):
        self.proc.kill()
        self.proc.wait(5)

    # ------------------------------------------------------------ talking

    def client(self, negotiate=True):
        c = MilterClient.unix(self.sock, timeout=10.0)
        if negotiate:
            c.negotiate()
        return c

    def session(self, client_ip="198.51.100.7", family=None, hostname="client.example",
                helo="client.example", daemon_addr=None):
        """A negotiated client after CONNECT (and HELO unless HELO is None).
        Asserts both are answered with continue."""
        c = self.client()
        if family is None:
            family = "6" if ":" in client_ip else "4"
        macros = {"j": "mx.local.test", "_": "%s [%s]" % (hostname, client_ip)}
        if daemon_addr:
            macros["{daemon_addr}"] = daemon_addr
        r = c.connect(hostname, family, client_ip, port=40000, macros=macros)
        if r.cmd != "c":
            raise AssertionError("CONNECT answered %r" % r)
        if helo is not None:
            r = c.helo(helo)
            if r.cmd != "c":
                raise AssertionError("HELO answered %r" % r)
        return c

    # ------------------------------------------------------------ evidence

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_bytes(self):
        try:
            with open(self.log, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def log_tail(self, n=15):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_has(self, pattern, start=0):
        return re.search(pattern, self.log_text()[start:]) is not None

    def wait_log(self, pattern, start=0, timeout=5.0):
        """Wait until the log (from character START on) matches PATTERN;
        returns the match or raises AssertionError."""
        deadline = time.time() + timeout
        while True:
            m = re.search(pattern, self.log_text()[start:])
            if m:
                return m
            if time.time() >= deadline:
                raise AssertionError("log never matched %r; tail:\n%s"
                                     % (pattern, self.log_tail()))
            time.sleep(0.05)

    def log_len(self):
        return len(self.log_text())

    def query_raw(self, *args):
        """kanjiki -d DB query --format json --limit 0 ARGS: raw stdout bytes."""
        p = subprocess.run([CLI, "-d", self.db, "query", "--format", "json",
                            "--limit", "0"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if p.returncode != 0:
            raise AssertionError("kanjiki query failed (%d): %s"
                                 % (p.returncode, p.stderr.decode("utf-8", "replace")))
        return p.stdout

    def verdicts(self, *args):
        out = []
        for line in self.query_raw(*args).splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def wait_verdicts(self, pred, count=1, timeout=5.0):
        """Poll the database until at least COUNT verdicts satisfy PRED;
        returns them (oldest first)."""
        deadline = time.time() + timeout
        while True:
            rows = [v for v in self.verdicts() if pred(v)]
            if len(rows) >= count:
                return sorted(rows, key=lambda v: v["id"])
            if time.time() >= deadline:
                raise AssertionError("expected %d matching verdicts, found %d: %r"
                                     % (count, len(rows), rows))
            time.sleep(0.1)


# ------------------------------------------------------------ test DNS

_dns = {"env": None, "dir": None}


def dns_env():
    """The private DNS of tests/dnsenv (dnsmasq in front of rbldnsd and a
    server that never answers), started once per run on first use in
    KJ_DNS_DIR (default KJ_TMP/dns) and stopped when the run ends.  Returns
    env.sh as a dict (DNS_FRONT=127.0.0.1:PORT, DNS_RBL, DNS_DEAD, ...).
    Raises when it cannot start (missing rbldnsd/dnsmasq included: nothing
    may pass vacuously)."""
    if _dns["env"] is None:
        import dnsenv
        d = os.environ.get("KJ_DNS_DIR") or os.path.join(TMP, "dns")
        _dns["dir"] = d
        atexit.register(dns_stop)
        _dns["env"] = dnsenv.start(d)
    return _dns["env"]


def dns_stop():
    """Stop the test DNS if this process started it; returns the stop
    script's status (0: nothing left running)."""
    if _dns["dir"] is None:
        return 0
    import dnsenv
    rc = dnsenv.stop(_dns["dir"])
    _dns["env"] = None
    _dns["dir"] = None
    return rc


def dns_query(name, qtype="A"):
    """(rcode, answers, ttl) for NAME straight from the test DNS (what the
    milter should have seen)."""
    import dnsenv
    return dnsenv.query(dns_env()["DNS_FRONT"], name, qtype)


def dns_conf(timeout="2s"):
    """Configuration lines pointing a milter at the test DNS."""
    return "dns_servers = %s\ndns_timeout = %s\n" % (dns_env()["DNS_FRONT"], timeout)


def reap_pending(timeout=15.0):
    """Wait for instances stopped without waiting; returns a list of
    (name, problem) for those that did not exit 0."""
    bad = []
    deadline = time.time() + timeout
    for m in _pending_stops:
        left = max(0.1, deadline - time.time())
        try:
            rc = m.proc.wait(left)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
            bad.append((m.dir, "did not exit within %.0fs of SIGTERM" % timeout))
            continue
        if rc != 0:
            bad.append((m.dir, "exit status %d after SIGTERM" % rc))
    _pending_stops.clear()
    for m in _started:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait()
            bad.append((m.dir, "still running at the end of the tests (killed)"))
    _started.clear()
    return bad


def by_sender(sender):
    return lambda v: v.get("sender") == sender


def codes(v):
    return [r["code"] for r in v.get("reasons") or []]


class KjTestCase(unittest.TestCase):
    """Base class: self.m is the shared milter; self.sender a sender
    address unique to the test, so its verdicts can be told apart."""

    milter = None

    @classmethod
    def setUpClass(cls):
        if cls.milter is None:
            KjTestCase.milter = Milter.shared()

    def setUp(self):
        self.m = KjTestCase.milter
        self.tok = token()
        self.sender = "%s-%s@sender.test" % (self._testMethodName.replace("_", "-")[5:40],
                                             self.tok)

    def assertReply(self, r, text):
        """A 'y' reply with exactly TEXT."""
        self.assertEqual(r.cmd, "y", "expected reply code %r, got %r" % (text, r))
        self.assertEqual(r.text, text)

    def assertRelayDenied(self, r, detail=None):
        self.assertEqual(r.cmd, "y", "expected a 554 refusal, got %r" % r)
        self.assertTrue(r.text.startswith(RELAY_DENIED), r.text)
        self.assertIn("kanjiki", r.text)
        self.assertEqual(r.code, 554)
        self.assertEqual(r.xcode, "5.7.1")
        if detail is not None:
            self.assertIn(detail, r.text)

    def assertContinue(self, r):
        self.assertEqual(r.cmd, "c", "expected continue, got %r" % r)


class OwnMilterCase(KjTestCase):
    """A daemon of the class's own: NAME, MODE, and RULES (the text of one
    rules file) and extra_conf() (more kanjiki.conf lines) as the subclass
    sets them; started once for the class, checked alive after each test."""

    NAME = None
    RULES = ""
    MODE = "enforce"
    RULES_FILE = "50-test.rules"

    @classmethod
    def extra_conf(cls):
        return ""

    @classmethod
    def setUpClass(cls):
        cls.inst = Milter(cls.NAME, mode=cls.MODE, rules={cls.RULES_FILE: cls.RULES},
                          extra_conf=cls.extra_conf()).start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def setUp(self):
        super().setUp()
        self.m = self.inst

    def tearDown(self):
        self.assertTrue(self.m.alive(), "kanjiki-milter died:\n" + self.m.log_tail())
