#!/usr/bin/env python3
"""tests/cli/test_install.py BUILD: `make install DESTDIR=... PREFIX=/usr` puts
the binaries, man pages, default configuration and rules, schema, systemd
unit, logrotate file and MTA snippets where they belong, with sane modes;
the unit points at the installed binary and at the directories the sample
configuration uses, and passes `systemd-analyze verify` when that exists; a
second install never overwrites an administrator's configuration."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="kanjiki-install-")
        self.addCleanup(shutil.rmtree, self.dest)

    def install(self):
        p = subprocess.run(["make", "-s", "-C", REPO, "install", "DESTDIR=" + self.dest,
                            "PREFIX=/usr", "BUILD=" + BUILD],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def path(self, p):
        return os.path.join(self.dest, p.lstrip("/"))

    def test_everything_in_place(self):
        self.install()
        want = {
            "/usr/sbin/kanjiki-milter": 0o755, "/usr/bin/kanjiki": 0o755,
            "/usr/share/man/man1/kanjiki.1": 0o644, "/usr/share/man/man5/kanjiki.conf.5": 0o644,
            "/usr/share/man/man5/kanjiki.rules.5": 0o644,
            "/usr/share/man/man8/kanjiki-milter.8": 0o644,
            "/etc/kanjiki/kanjiki.conf": 0o644, "/etc/kanjiki/rules/20-snowshoe.rules": 0o644,
            "/etc/kanjiki/rules/platforms.list": 0o644,
            "/usr/share/kanjiki/sql/001_initial.sql": 0o644,
            "/etc/systemd/system/kanjiki-milter.service": 0o644,
            "/etc/logrotate.d/kanjiki": 0o644,
            "/usr/share/kanjiki/contrib/postfix/main.cf.kanjiki": 0o644,
        }
        for p, mode in want.items():
            st = os.stat(self.path(p))
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, p)
        for root, dirs, files in os.walk(self.dest):
            for f in files + dirs:
                m = os.stat(os.path.join(root, f)).st_mode
                self.assertFalse(m & stat.S_IWOTH, os.path.join(root, f))   # never world-writable
        unit = open(self.path("/etc/systemd/system/kanjiki-milter.service")).read()
        self.assertIn("ExecStart=/usr/sbin/kanjiki-milter -f -c /etc/kanjiki/kanjiki.conf", unit)
        for d in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict",
                  "RuntimeDirectory=kanjiki", "StateDirectory=kanjiki", "User=kanjiki"):
            self.assertIn(d, unit)
        conf = open(self.path("/etc/kanjiki/kanjiki.conf")).read()
        self.assertIn("socket = unix:/run/kanjiki/", conf)       # RuntimeDirectory
        self.assertIn("database = /var/lib/kanjiki/", conf)      # StateDirectory
        self.assertIn("user = kanjiki", conf)
        analyze = shutil.which("systemd-analyze")
        if analyze:
            local = os.path.join(self.dest, "unit.service")
            with open(local, "w") as f:
                f.write(unit.replace("/usr/sbin/kanjiki-milter",
                                     self.path("/usr/sbin/kanjiki-milter")))
            p = subprocess.run([analyze, "verify", local], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            # only the man pages (not installed on this system) may be missing
            errs = [l for l in p.stderr.decode().splitlines()
                    if l.strip() and "Command 'man " not in l]
            self.assertEqual(errs, [])
        # the installed binary runs and reads the installed configuration
        p = subprocess.run([self.path("/usr/bin/kanjiki"), "-c", self.path("/etc/kanjiki/kanjiki.conf"),
                            "--version"], stdout=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 0)

    def test_reinstall_keeps_the_administrators_files(self):
        self.install()
        conf = self.path("/etc/kanjiki/kanjiki.conf")
        rules = self.path("/etc/kanjiki/rules/20-snowshoe.rules")
        for f in (conf, rules):
            with open(f, "a") as fh:
                fh.write("# edited by the administrator\n")
        self.install()
        for f in (conf, rules):
            self.assertTrue(open(f).read().endswith("# edited by the administrator\n"), f)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
