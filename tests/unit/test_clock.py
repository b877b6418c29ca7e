import unittest

from firmware import clock


class ClockTest(unittest.TestCase):
    def test_format_known_instants(self):
        self.assertEqual(clock.iso8601(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(clock.iso8601(951782400000), "2000-02-29T00:00:00.000Z")
        self.assertEqual(clock.iso8601(4102444799999), "2099-12-31T23:59:59.999Z")

    def test_round_trip_over_many_days(self):
        for day in range(-800, 60000, 97):
            ms = day * 86400000 + 12345678
            self.assertEqual(clock.parse_iso8601(clock.iso8601(ms)), ms)

    def test_parse_offsets_fractions_and_no_offset(self):
        self.assertEqual(clock.parse_iso8601("2026-11-25T16:56:40+01:00"), clock.parse_iso8601("2026-11-25T15:56:40Z"))
        self.assertEqual(clock.parse_iso8601("2026-11-25T15:56:40.5Z") % 1000, 500)
        self.assertEqual(clock.parse_iso8601("2026-11-25T15:56:40.123456Z") % 1000, 123)
        self.assertEqual(clock.parse_iso8601("2026-11-25T15:56:40"), clock.parse_iso8601("2026-11-25T15:56:40Z"))

    def test_rejects_garbage(self):
        for s in ("", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-25 15:56", "2026-11-25T15:56:40.Z", "2026-11-25T15:56:40+0100", "abcd-ef-ghT00:00:00Z", 5 and "2026-11-25T25:00:00Z"):
            self.assertIsNone(clock.parse_iso8601(s), s)
