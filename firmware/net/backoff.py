# Reconnect delays: exponential backoff with full jitter, bounded.
#
# Before retry n (0 for the first after a failure or a lost connection):
#     delay = min_ms + uniform(0 .. min(base_ms * 2**n, max_ms - min_ms))
# so every delay lies in [min_ms, max_ms], and a fleet that lost its CSMS at
# the same moment spreads its reconnects over the whole window instead of
# arriving in the same second. A connection that stayed up for reset_ms or
# longer starts the sequence again at n = 0. Pure: the caller gives times
# and the random source.
from firmware.compat import urandom


class Backoff:
    def __init__(self, min_ms, base_ms, max_ms, reset_ms, rng=urandom):
        if not 0 <= min_ms <= max_ms or base_ms <= 0:
            raise ValueError("backoff bounds")
        self.min_ms = min_ms
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.reset_ms = reset_ms
        self._rng = rng
        self.attempt = 0
        self._up_at = None

    def window(self, attempt):
        """The width of the random part before retry `attempt`."""
        span = self.max_ms - self.min_ms
        w = self.base_ms
        while attempt > 0 and w < span:
            w <<= 1
            attempt -= 1
        return w if w < span else span

    def next_delay(self):
        """The delay before the next attempt, in ms; counts the attempt."""
        w = self.window(self.attempt)
        if w < self.max_ms - self.min_ms:
            self.attempt += 1
        r = self._rng(4)
        x = (r[0] << 24) | (r[1] << 16) | (r[2] << 8) | r[3]
        return self.min_ms + x % (w + 1)

    def opened(self, now_ms):
        self._up_at = now_ms

    def closed(self, now_ms):
        """A connection ended; a stable one resets the sequence."""
        if self._up_at is not None and now_ms - self._up_at >= self.reset_ms:
            self.attempt = 0
        self._up_at = None
