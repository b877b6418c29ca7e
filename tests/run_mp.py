# Runs tests/unit under the MicroPython unix port with our small unittest.
# Usage (from the repository root): micropython tests/run_mp.py [test_module ...]
import sys

sys.path.insert(0, "tests/mp")
sys.path.insert(0, ".")

import gc
import os
import time
import unittest

UNIT_DIR = "tests/unit"


def modules(selected):
    names = sorted(n[:-3] for n in os.listdir(UNIT_DIR) if n.startswith("test_") and n.endswith(".py"))
    if selected:
        names = [n for n in names if n in selected]
    return names


def load(name):
    __import__("tests.unit." + name)
    return sys.modules["tests.unit." + name]


def cases(mod):
    for attr in sorted(dir(mod)):
        obj = getattr(mod, attr)
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase:
            yield attr, obj


def run_case(cls, counts, failures):
    reason = getattr(cls, "__unittest_skip__", None)
    methods = [m for m in sorted(dir(cls)) if m.startswith("test")]
    if reason:
        counts["skipped"] += len(methods)
        return
    cls.setUpClass()
    try:
        for m in methods:
            tc = cls()
            label = cls.__name__ + "." + m
            try:
                tc.setUp()
                try:
                    getattr(tc, m)()
                finally:
                    tc.tearDown()
                    tc.doCleanups()
                counts["passed"] += 1
            except unittest.SkipTest:
                counts["skipped"] += 1
            except Exception as e:
                counts["failed"] += 1
                failures.append((label, e))
            gc.collect()
    finally:
        cls.tearDownClass()


def main():
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    t0 = time.ticks_ms()
    for name in modules(sys.argv[1:]):
        try:
            mod = load(name)
        except Exception as e:
            counts["failed"] += 1
            failures.append((name + " (import)", e))
            continue
        for _, cls in cases(mod):
            run_case(cls, counts, failures)
    for label, e in failures:
        print("FAIL:", label)
        sys.print_exception(e)
    secs = time.ticks_diff(time.ticks_ms(), t0) / 1000
    print(
        "micropython: %d passed, %d skipped, %d failed in %.2fs"
        % (counts["passed"], counts["skipped"], counts["failed"], secs)
    )
    if counts["failed"]:
        sys.exit(1)


main()
