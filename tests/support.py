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
