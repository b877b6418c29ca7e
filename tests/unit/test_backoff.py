import unittest

from firmware.net.backoff import Backoff
from tests.fuzz_ws import Rand
from tests.support import FakeClock


def const_rng(byte):
    return lambda n: bytes((byte,)) * n


class BackoffTest(unittest.TestCase):
    def test_windows_double_up_to_the_cap(self):
        b = Backoff(1000, 4000, 60000, 30000)
        self.assertEqual([b.window(n) for n in range(6)], [4000, 8000, 16000, 32000, 59000, 59000])

    def test_extremes_of_the_random_source(self):
        low = Backoff(1000, 4000, 60000, 30000, rng=const_rng(0))
        self.assertEqual([low.next_delay() for _ in range(6)], [1000] * 6)
        # 0xFFFFFFFF % (w + 1) for each window
        high = Backoff(1000, 4000, 60000, 30000, rng=const_rng(255))
        want = [1000 + 0xFFFFFFFF % (w + 1) for w in (4000, 8000, 16000, 32000, 59000, 59000)]
        self.assertEqual([high.next_delay() for _ in range(6)], want)

    def test_delays_stay_within_their_bounds(self):
        r = Rand(3)
        b = Backoff(1000, 10000, 300000, 60000, rng=r.bytes)
        seen_low = seen_high = False
        for n in range(2000):
            attempt = b.attempt
            d = b.next_delay()
            hi = 1000 + b.window(attempt)
            self.assertTrue(1000 <= d <= hi, (n, d, hi))
            self.assertLessEqual(d, 300000)
            seen_low = seen_low or d < 1000 + hi // 10
            seen_high = seen_high or d > 250000
        self.assertTrue(seen_low and seen_high)  # spread over the window

    def test_fleet_spreads_over_the_first_window(self):
        # A thousand chargers losing the CSMS at once: first retries spread
        # over the 10 s window, not all in one second.
        r = Rand(5)
        per_second = [0] * 11
        for _ in range(1000):
            d = Backoff(0, 10000, 300000, 60000, rng=r.bytes).next_delay()
            per_second[d // 1000] += 1
        self.assertLess(max(per_second), 160)

    def test_stable_connection_resets_a_short_one_does_not(self):
        clock = FakeClock(0)
        b = Backoff(1000, 1000, 60000, 30000, rng=const_rng(0))
        for _ in range(4):
            b.next_delay()
        self.assertEqual(b.attempt, 4)
        b.opened(clock())
        clock.advance(29999)
        b.closed(clock())
        self.assertEqual(b.attempt, 4)
        b.opened(clock())
        clock.advance(30000)
        b.closed(clock())
        self.assertEqual(b.attempt, 0)

    def test_bad_bounds(self):
        for args in ((-1, 1, 2, 0), (5, 1, 2, 0), (0, 0, 10, 0)):
            with self.assertRaises(ValueError):
                Backoff(*args)
