import unittest

from firmware.store import cbor
from tests.support import CPYTHON_ONLY, IS_MICROPYTHON

NAN = float("nan")

# (value, its encoding) from RFC 8949 Appendix A, for the types we support.
RFC_VECTORS = (
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (float("inf"), "f97c00"),
    (float("-inf"), "f9fc00"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ("\"\\", "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({"a": 1}, "a1616101"),
    ({"a": [2, 3]}, "a1616182 0203".replace(" ", "")),
    ({1: 2}, "a10102"),
)


def unhex(s):
    return bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))


def same(a, b):
    # Equality that treats NaN as equal to NaN and keeps -0.0 apart from 0.0.
    if type(a) is float and type(b) is float:
        if a != a:
            return b != b
        return a == b and str(a)[0] == str(b)[0]
    if type(a) in (list, tuple) and type(b) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class RfcVectorsTest(unittest.TestCase):
    def test_encodes_as_the_rfc_examples(self):
        for value, hexed in RFC_VECTORS:
            self.assertEqual(cbor.dumps(value), unhex(hexed), repr(value))

    def test_decodes_the_rfc_examples(self):
        for value, hexed in RFC_VECTORS:
            self.assertTrue(same(cbor.loads(unhex(hexed)), value), repr(value))

    def test_decodes_every_float_width(self):
        # The same value written wider than needed reads back the same.
        self.assertEqual(cbor.loads(unhex("fb3ff8000000000000")), 1.5)
        self.assertEqual(cbor.loads(unhex("fa3fc00000")), 1.5)
        self.assertEqual(cbor.loads(unhex("f93e00")), 1.5)
        self.assertTrue(cbor.loads(unhex("f97e00")) != cbor.loads(unhex("f97e00")))  # NaN
        self.assertEqual(cbor.loads(unhex("f903ff")), 0.00006097555160522461)  # largest subnormal
        self.assertEqual(cbor.loads(unhex("fa7f800000")), float("inf"))

    def test_decodes_wider_than_needed_integers(self):
        self.assertEqual(cbor.loads(unhex("1b0000000000000001")), 1)
        self.assertEqual(cbor.loads(unhex("3a00000000")), -1)
        self.assertEqual(cbor.loads(unhex("7800")), "")


class RoundTripTest(unittest.TestCase):
    def test_round_trips_what_the_journal_stores(self):
        values = [
            [1, 7, 0, b"\xa2\x00\x01", None, 0],
            {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": []}]},
            {3: "three", -4: [True, False, None], "x": {"y": {"z": 1.25}}},
            [2**31, -(2**31), 2**32, -(2**32) - 1, 2**63, -(2**63), 2**64 - 1],
            [0.1, -2.5e-310, 1e-7, 123456.789, 65505.0, 65520.0, 2.0**-24, 2.0**-25],
            "naïve ✓ 水 🚗",
            b"\x00" * 300,
            list(range(300)),
        ]
        for v in values:
            self.assertTrue(same(cbor.loads(cbor.dumps(v)), v), repr(v))

    def test_items_of_a_list_are_written_as_on_their_own(self):
        items = [0, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1, -1, -(2**64), "", "x" * 30, b"", b"\x01" * 30,
                 1.5, None, True, [1, "a"], {"k": 1}]
        for x in items:
            self.assertEqual(cbor.dumps([x]), b"\x81" + cbor.dumps(x), repr(x))
        for x in (2**64, -(2**64) - 1):
            with self.assertRaises(cbor.CBORError):
                cbor.dumps([x])

    def test_tuples_and_bytearrays_encode_as_lists_and_bytes(self):
        self.assertEqual(cbor.loads(cbor.dumps((1, bytearray(b"ab")))), [1, b"ab"])

    def test_floats_take_the_shortest_exact_width(self):
        self.assertEqual(len(cbor.dumps(0.5)), 3)
        self.assertEqual(len(cbor.dumps(230.25)), 3)
        self.assertEqual(len(cbor.dumps(1234.5)), 5)
        self.assertEqual(len(cbor.dumps(0.1)), 9)
        self.assertEqual(cbor.dumps(NAN), unhex("f97e00"))

    def test_decode_from_walks_a_sequence(self):
        data = cbor.dumps([1]) + cbor.dumps("x") + cbor.dumps(None)
        pos, out = 0, []
        while pos < len(data):
            v, pos = cbor.decode_from(data, pos)
            out.append(v)
        self.assertEqual(out, [[1], "x", None])

    def test_reads_from_a_memoryview(self):
        data = memoryview(bytearray(cbor.dumps({"k": [b"v", "w"]})))
        self.assertEqual(cbor.loads(data), {"k": [b"v", "w"]})


class StrictDecodingTest(unittest.TestCase):
    def bad(self, hexed, word):
        with self.assertRaises(cbor.CBORError) as cm:
            cbor.loads(unhex(hexed))
        self.assertIn(word, str(cm.exception))

    def test_every_truncation_is_refused(self):
        data = cbor.dumps([1000, "text", b"bytes", {"k": 1.1}, -70000, 2**40])
        for n in range(len(data)):
            with self.assertRaises(cbor.CBORError):
                cbor.loads(data[:n])

    def test_trailing_bytes_are_refused(self):
        self.bad("0100", "trailing")
        self.bad("8101f6", "trailing")

    def test_indefinite_lengths_are_refused(self):
        for hexed in ("5f42010243030405ff", "7f657374726561ff", "9f018202039f0405ffff", "bf6346756ef5ff"):
            self.bad(hexed, "indefinite")

    def test_tags_are_refused(self):
        self.bad("c074323031332d30332d32315432303a30343a30305a", "tags")
        self.bad("c249010000000000000000", "tags")  # bignum

    def test_other_simple_values_are_refused(self):
        for hexed in ("f7", "f0", "f8ff", "f820"):
            self.bad(hexed, "simple")
        self.bad("ff", "break")

    def test_reserved_additional_information_is_refused(self):
        for hexed in ("1c", "3d", "5e", "7c", "9d", "be", "dc", "fc"):
            self.bad(hexed, "reserved")

    def test_invalid_utf8_is_refused(self):
        self.bad("62c328", "UTF-8")
        self.bad("61ff", "UTF-8")

    def test_map_keys_must_be_str_or_int_and_unique(self):
        self.bad("a1f401", "key")
        self.bad("a1420102f6", "key")
        self.bad("a2616101616102", "duplicate")

    def test_absurd_lengths_fail_before_allocating(self):
        self.bad("5bffffffffffffffff", "truncated")
        self.bad("9bffffffffffffffff", "truncated")
        self.bad("bb7fffffffffffffff", "truncated")

    def test_nesting_limit_is_the_same_both_ways(self):
        deep = 1
        for _ in range(cbor.MAX_DEPTH):
            deep = [deep]
        self.assertEqual(cbor.loads(cbor.dumps(deep)), deep)
        with self.assertRaises(cbor.CBORError):
            cbor.dumps([deep])
        with self.assertRaises(cbor.CBORError):
            cbor.loads(b"\x81" + cbor.dumps(deep))

    def test_nesting_is_bounded(self):
        self.bad("81" * 40 + "01", "nesting")
        with self.assertRaises(cbor.CBORError):
            deep = []
            for _ in range(40):
                deep = [deep]
            cbor.dumps(deep)

    def test_unsupported_types_are_refused_when_encoding(self):
        for v in (object(), {(1, 2): 3}, {1.5: 0}, 2**64, -(2**64) - 1, {None: 1}):
            with self.assertRaises(cbor.CBORError):
                cbor.dumps(v)

    def test_errors_are_value_errors(self):
        self.assertTrue(issubclass(cbor.CBORError, ValueError))


@unittest.skipIf(IS_MICROPYTHON, CPYTHON_ONLY)
class AgainstCbor2Test(unittest.TestCase):
    """Our codec and the cbor2 package must read each other's output."""

    def setUp(self):
        import cbor2

        self.cbor2 = cbor2

    def samples(self):
        import random

        rng = random.Random(8949)

        def value(depth):
            kind = rng.randrange(10 if depth < 4 else 7)
            if kind == 0:
                return rng.choice([None, True, False])
            if kind == 1:
                return rng.choice([0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
            if kind == 2:
                return -rng.randrange(1, 2**rng.choice([5, 8, 16, 32, 64]) + 1)
            if kind == 3:
                return rng.choice([0.0, -0.0, 1.5, 0.1, 1e300, -2.5e-310, 65504.0, 3.4028234663852886e38,
                                   rng.uniform(-1e6, 1e6), float(rng.randrange(-70000, 70000)) / 4])
            if kind == 4:
                return "".join(rng.choice("aé水🚗_Z0") for _ in range(rng.randrange(0, 30)))
            if kind == 5:
                return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            if kind == 6:
                return rng.randrange(-(2**63), 2**63)
            if kind == 7:
                return [value(depth + 1) for _ in range(rng.randrange(0, 6))]
            d = {}
            for _ in range(rng.randrange(0, 6)):
                k = rng.choice(["k%d" % rng.randrange(50), rng.randrange(-30, 3000)])
                d[k] = value(depth + 1)
            return d

        return [value(0) for _ in range(400)]

    def test_cbor2_reads_ours(self):
        for v in self.samples():
            self.assertTrue(same(self.cbor2.loads(cbor.dumps(v)), v), repr(v))

    def test_we_read_cbor2_default_and_canonical(self):
        for v in self.samples():
            for canonical in (False, True):
                data = self.cbor2.dumps(v, canonical=canonical)
                self.assertTrue(same(cbor.loads(data), v), repr(v))

    def test_floats_and_scalars_match_cbor2_canonical_bytes(self):
        for v in [0.0, -0.0, 1.5, 0.1, 1e300, 65504.0, 100000.0, 5.960464477539063e-8, 1234.5,
                  2.0**-20, -4.1, float("inf"), float("-inf"), 0, -1, 2**64 - 1, -(2**64), "x" * 300,
                  b"y" * 70000, [1, "a", None]]:
            self.assertEqual(cbor.dumps(v), self.cbor2.dumps(v, canonical=True), repr(v))

    def test_maps_match_cbor2_byte_for_byte_in_insertion_order(self):
        v = {"b": 1, "a": [2, {"c": None}], 7: b"z"}
        self.assertEqual(cbor.dumps(v), self.cbor2.dumps(v))

    def test_what_cbor2_can_write_but_we_refuse(self):
        import datetime

        for v in (datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), 2**70, {1, 2},
                  self.cbor2.undefined):
            with self.assertRaises(cbor.CBORError):
                cbor.loads(self.cbor2.dumps(v))
