"""Run tests/milter/test_*.py and print PASS/FAIL per test.

Usage (normally through run.sh, which sets up the environment):
    python3 runtests.py [SUBSTRING ...]
Only tests whose id contains one of the substrings run when any are given.
A skipped test counts as a failure: nothing here may pass vacuously.
Exit status 0 only when every test passed.
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import kjtest  # noqa: E402


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = 0
        self.failed = []
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.time()

    def _name(self, test):
        return test.id()

    def _fail(self, test, kind, err):
        dt = time.time() - self._t0
        print("FAIL %s (%s, %.2fs)" % (self._name(test), kind, dt))
        if isinstance(err, tuple):
            # without unittest's own frames
            text = self._exc_info_to_string(err, test)
        else:
            text = str(err)
        for line in text.rstrip().splitlines():
            print("    " + line)
        self.failed.append(test.id())
        sys.stdout.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        print("PASS %s (%.2fs)" % (self._name(test), time.time() - self._t0))
        sys.stdout.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, "failed", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._fail(test, "skipped, which counts as a failure", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._fail(test, "expected failure", err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._fail(test, "unexpected success", "")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(subtest, "failed", err)


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def main(argv):
    t0 = time.time()
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = list(flatten(suite))
    # import errors show up as _FailedTest cases: they must fail loudly
    if argv:
        tests = [t for t in tests if any(a in t.id() for a in argv)
                 or t.__class__.__name__ == "_FailedTest"]
    if not tests:
        print("FAIL milter-tests: no tests selected")
        return 1
    result = Result()
    unittest.TestSuite(tests).run(result)
    for where, problem in kjtest.reap_pending():
        print("FAIL stop of %s: %s" % (where, problem))
        result.failed.append(where)
    print("milter-tests: %d passed, %d failed, %.1fs"
          % (result.passed, len(result.failed), time.time() - t0))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
