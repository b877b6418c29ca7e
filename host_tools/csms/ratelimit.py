"""Per-client rate limits, one token bucket per (client, class of route).

A class allows `limit` requests per `window` seconds: the bucket holds at most
`limit` tokens and refills at limit/window tokens a second, so bursts up to the
limit pass and the sustained rate is the limit. A refused request learns how
many whole seconds until one token is back: that is its Retry-After (RFC 9110
§10.2.3, delay-seconds).
"""
import math
import time

# Class of route: (limit, window seconds). Reads are cheap; commands reach
# chargers; writes change the bench's own configuration.
DEFAULT_LIMITS = {
    "read": (1200, 60.0),
    "write": (600, 60.0),
    "command": (600, 60.0),
}


def parse_limit(text):
    """'read=100/60' -> ('read', (100, 60.0)); '/60' may be '/1.5' or absent (60)."""
    name, _, spec = text.partition("=")
    if not name or not spec:
        raise ValueError("expected CLASS=LIMIT[/WINDOW_SECONDS], got %r" % text)
    count, _, window = spec.partition("/")
    limit = int(count)
    seconds = float(window) if window else 60.0
    if limit < 1 or seconds <= 0:
        raise ValueError("limit and window must be positive: %r" % text)
    return name.strip(), (limit, seconds)


class RateLimiter:
    MAX_CLIENTS = 10000  # buckets kept before full ones are forgotten

    def __init__(self, limits=None, clock=time.monotonic):
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.clock = clock
        self._buckets = {}  # (client, cls) -> [tokens, last time]

    def check(self, client, cls):
        """(allowed, retry_after_seconds, remaining) for one request now."""
        rule = self.limits.get(cls)
        if rule is None:
            return True, 0, None
        limit, window = rule
        rate = limit / window
        now = self.clock()
        key = (client, cls)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_CLIENTS:
                self._forget_full(now)
            bucket = self._buckets[key] = [float(limit), now]
        tokens = min(float(limit), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True, 0, int(bucket[0])
        bucket[0] = tokens
        retry = max(1, int(math.ceil((1.0 - tokens) / rate)))
        return False, retry, 0

    def _forget_full(self, now):
        for key in list(self._buckets):
            limit, window = self.limits.get(key[1], (1, 1.0))
            tokens, last = self._buckets[key]
            if tokens + (now - last) * limit / window >= limit:
                del self._buckets[key]
