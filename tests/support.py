# Helpers shared by tests on both runtimes.
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"
CPYTHON_ONLY = "needs CPython (host packages or APIs)"


class FakeClock:
    """A millisecond clock that moves only when a test says so."""

    def __init__(self, start_ms=0):
        self.ms = start_ms

    def __call__(self):
        return self.ms

    def advance(self, ms):
        self.ms += ms
        return self.ms


def micropython_binary():
    """Path of the MicroPython unix port installed in the test venv (CPython only)."""
    import os
    import shutil

    here = os.path.join(os.path.dirname(sys.executable), "micropython")
    return here if os.path.exists(here) else shutil.which("micropython")


def repo_root():
    """The repository root (CPython only)."""
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
