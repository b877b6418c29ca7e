import unittest

from firmware.compat import crc32, json_dumps
from firmware.store import cbor
from firmware.store import records as R

START = {"connectorId": 1, "idTag": "04E2A1B2C3D4E5", "meterStart": 1234567, "timestamp": "2024-05-01T10:00:00Z"}
METER = {
    "connectorId": 2,
    "transactionId": 4711,
    "meterValue": [
        {
            "timestamp": "2024-05-01T10:15:00Z",
            "sampledValue": [
                {"value": "1250.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh", "location": "Outlet"},
                {"value": "7200", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16.1", "context": "Sample.Periodic", "measurand": "Current.Import", "unit": "A",
                 "phase": "L1"},
                {"value": "230.4", "context": "Sample.Periodic", "measurand": "Voltage", "unit": "V",
                 "phase": "L1-N"},
            ],
        }
    ],
}
STOP = {
    "transactionId": 4711,
    "idTag": "04E2A1B2C3D4E5",
    "meterStop": 1240000,
    "timestamp": "2024-05-01T11:00:00Z",
    "reason": "PowerLoss",
    "transactionData": [
        {"timestamp": "2024-05-01T11:00:00Z",
         "sampledValue": [{"value": "1240000", "context": "Transaction.End", "unit": "Wh"}]}
    ],
}
EVENT_201 = {
    "eventType": "Ended",
    "timestamp": "2024-05-01T11:00:00.000Z",
    "triggerReason": "EVDeparted",
    "seqNo": 7,
    "offline": True,
    "transactionInfo": {"transactionId": "b2f7-11", "chargingState": "Idle", "stoppedReason": "EVDisconnected"},
    "idToken": {"idToken": "ABC", "type": "ISO14443"},
    "evse": {"id": 1, "connectorId": 1},
}
SECURITY = {"type": "StartupOfTheDevice", "timestamp": "2024-05-01T09:00:00Z", "techInfo": "cold boot"}

# The first entries of each table and their CRC-32: the tables may only grow,
# since journals already written refer to these positions.
PINNED = ((R.KEYS, 44, 0x3241D9EE), (R.VALUES, 126, 0x5F0DC1C1), (R.ACTIONS, 6, 0x07E82873))


def table_crc(table, n):
    return crc32("\n".join(table[:n]).encode()) & 0xFFFFFFFF


class PayloadPackingTest(unittest.TestCase):
    def test_payloads_come_back_exactly(self):
        for p in (START, METER, STOP, EVENT_201, SECURITY, {}, {"vendorField": [1, 2.5, None, True]}):
            self.assertEqual(R.unpack_payload(R.pack_payload(p)), p)

    def test_enum_fields_keep_any_value_exactly(self):
        odd = [
            {"unit": "furlongs"},  # a string not in the table
            {"unit": 5},  # an int where a string belongs
            {"unit": [0]},  # a one-item list
            {"unit": {"x": "Wh"}},
            {"unit": None},
            {"reason": True},
            {"measurand": ["Voltage", "SoC"]},
        ]
        for p in odd:
            self.assertEqual(R.unpack_payload(R.pack_payload(p)), p)

    def test_packed_meter_values_are_a_fraction_of_the_json(self):
        packed = R.pack_payload(METER)
        self.assertLess(len(packed) * 3, len(json_dumps(METER)))

    def test_known_keys_and_values_become_small_ints(self):
        self.assertEqual(R.pack_payload({"unit": "Wh"}), b"\xa1\x0b" + cbor.dumps(R.VALUES.index("Wh")))
        self.assertEqual(R.pack_payload({"unit": "Wh"})[:2], b"\xa1\x0b")

    def test_plain_values_are_written_as_cbor_writes_them(self):
        k = R.KEYS.index("idTag")
        for v in ("", "x" * 23, "x" * 24, "x" * 300, "Zähler", 0, 23, 24, -1, 2**40, 1.5, None, False):
            self.assertEqual(R.pack_payload({"idTag": v}), b"\xa1" + bytes([k]) + cbor.dumps(v))

    def test_keys_must_be_strings(self):
        with self.assertRaises(ValueError):
            R.pack_payload({1: "x"})

    def test_corrupt_codes_are_errors(self):
        for data in (cbor.dumps({200: 1}), cbor.dumps({11: 999}), cbor.dumps({11: 1.5}), b"\xa1"):
            with self.assertRaises(cbor.CBORError):
                R.unpack_payload(data)


class TablesTest(unittest.TestCase):
    def test_tables_have_no_duplicates(self):
        for table in (R.KEYS, R.VALUES, R.ENUM_KEYS, R.ACTIONS, R.KIND_NAMES):
            self.assertEqual(len(set(table)), len(table))

    def test_enum_keys_are_keys(self):
        for k in R.ENUM_KEYS:
            self.assertIn(k, R.KEYS)

    def test_kind_names_match_kind_numbers(self):
        self.assertEqual(R.KIND_NAMES[R.K_QUEUED], "queued")
        self.assertEqual(R.KIND_NAMES[R.K_RELEASED], "released")
        self.assertEqual(R.KIND_NAMES[R.K_AUTH], "auth_cache")
        self.assertEqual(len(R.KIND_NAMES), R.K_AUTH + 1)

    def test_tables_only_grow(self):
        for table, n, crc in PINNED:
            self.assertGreaterEqual(len(table), n)
            self.assertEqual(table_crc(table, n), crc, table[0])

    def test_actions_are_coded(self):
        self.assertEqual(R.action_code("MeterValues"), 2)
        self.assertEqual(R.action_code("Heartbeat"), "Heartbeat")
        self.assertEqual(R.action_name(2), "MeterValues")
        self.assertEqual(R.action_name("Heartbeat"), "Heartbeat")
        with self.assertRaises(cbor.CBORError):
            R.action_name(99)
