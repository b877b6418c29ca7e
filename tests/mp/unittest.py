# The part of unittest our tests use, for the MicroPython unix port (which
# ships none). Only tests/run_mp.py puts this folder on sys.path; CPython
# uses its own unittest.


class SkipTest(Exception):
    pass


class _Raises:
    def __init__(self, expected, tc):
        self.expected = expected
        self.exception = None
        self.tc = tc

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.tc.fail("%r not raised" % (self.expected,))
        if issubclass(exc_type, self.expected):
            self.exception = exc
            return True
        return False


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class TestCase:
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        pass

    def tearDown(self):
        pass

    def addCleanup(self, fn, *args, **kwargs):
        if not hasattr(self, "_cleanups"):
            self._cleanups = []
        self._cleanups.append((fn, args, kwargs))

    def doCleanups(self):
        cleanups = getattr(self, "_cleanups", None) or []
        while cleanups:
            fn, args, kwargs = cleanups.pop()
            fn(*args, **kwargs)

    def subTest(self, *a, **kw):
        return _NullContext()

    def skipTest(self, reason):
        raise SkipTest(reason)

    def fail(self, msg=""):
        raise AssertionError(msg)

    def assertEqual(self, a, b, msg=None):
        if not a == b:
            self.fail(msg or "%r != %r" % (a, b))

    def assertNotEqual(self, a, b, msg=None):
        if a == b:
            self.fail(msg or "%r == %r" % (a, b))

    def assertTrue(self, x, msg=None):
        if not x:
            self.fail(msg or "%r is not true" % (x,))

    def assertFalse(self, x, msg=None):
        if x:
            self.fail(msg or "%r is not false" % (x,))

    def assertIs(self, a, b, msg=None):
        if a is not b:
            self.fail(msg or "%r is not %r" % (a, b))

    def assertIsNot(self, a, b, msg=None):
        if a is b:
            self.fail(msg or "%r is %r" % (a, b))

    def assertIsNone(self, x, msg=None):
        if x is not None:
            self.fail(msg or "%r is not None" % (x,))

    def assertIsNotNone(self, x, msg=None):
        if x is None:
            self.fail(msg or "unexpectedly None")

    def assertIn(self, a, b, msg=None):
        if a not in b:
            self.fail(msg or "%r not in %r" % (a, b))

    def assertNotIn(self, a, b, msg=None):
        if a in b:
            self.fail(msg or "%r unexpectedly in %r" % (a, b))

    def assertIsInstance(self, x, cls, msg=None):
        if not isinstance(x, cls):
            self.fail(msg or "%r is not an instance of %r" % (x, cls))

    def assertLess(self, a, b, msg=None):
        if not a < b:
            self.fail(msg or "%r not less than %r" % (a, b))

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            self.fail(msg or "%r not less than or equal to %r" % (a, b))

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            self.fail(msg or "%r not greater than %r" % (a, b))

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            self.fail(msg or "%r not greater than or equal to %r" % (a, b))

    def assertAlmostEqual(self, a, b, places=7, msg=None, delta=None):
        if delta is not None:
            ok = abs(a - b) <= delta
        else:
            ok = round(abs(a - b), places) == 0
        if not ok:
            self.fail(msg or "%r != %r within tolerance" % (a, b))

    def assertCountEqual(self, a, b, msg=None):
        a, b = list(a), list(b)
        for x in a:
            if x in b:
                b.remove(x)
            else:
                self.fail(msg or "element counts differ: %r" % (x,))
        if b:
            self.fail(msg or "element counts differ: %r" % (b,))

    def assertRaises(self, exc, fn=None, *args, **kwargs):
        ctx = _Raises(exc, self)
        if fn is None:
            return ctx
        with ctx:
            fn(*args, **kwargs)
        return ctx


def skip(reason):
    def deco(obj):
        if isinstance(obj, type):
            obj.__unittest_skip__ = reason
            return obj

        def skipped(*a, **kw):
            raise SkipTest(reason)

        return skipped

    return deco


def skipIf(cond, reason):
    if cond:
        return skip(reason)
    return lambda obj: obj


def skipUnless(cond, reason):
    return skipIf(not cond, reason)


def main(*a, **kw):
    raise SystemExit("run the tests with tests/run_mp.py")
