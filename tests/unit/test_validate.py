import unittest

from firmware.ocpp import validate as V
from firmware.ocpp.errors import E_FORMAT, E_OCCURRENCE, E_PROPERTY, E_TYPE, V16, V201, V21
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check, datetime_ok, multiple_ok
from tests.support import CPYTHON_ONLY, IS_MICROPYTHON

# Hand-built nodes in the table encoding (see firmware/ocpp/validate.py).
UNIT = ("Wh", "kWh", "A", "V")
SAMPLE = ({"value": V.STRING}, {"unit": UNIT, "phase": ("L1", "L2", "L3")})
METER = ({"timestamp": V.DATETIME, "sampledValue": (V.ARRAY, SAMPLE, 1, -1)}, {})
PAYLOAD = ({"connectorId": V.INTEGER, "meterValue": (V.ARRAY, METER, 1, 2)}, {"transactionId": V.INTEGER})


def obj(required=None, optional=None):
    return (required or {}, optional or {})


def one(node):
    """An object with one optional property "x" of the given node."""
    return ({}, {"x": node})


def meter_payload():
    return {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            {
                "timestamp": "2024-05-01T12:34:56Z",
                "sampledValue": [{"value": "1.5", "unit": "kWh"}, {"value": "16", "unit": "A", "phase": "L1"}],
            }
        ],
    }


class TypeTest(unittest.TestCase):
    def assertType(self, node, value):
        r = check(one(node), {"x": value})
        self.assertIsNotNone(r, "%r accepted for %r" % (value, node))
        self.assertEqual(r[0], E_TYPE, "%r for %r: %r" % (value, node, r))

    def assertOk(self, node, value):
        self.assertIsNone(check(one(node), {"x": value}), "%r refused for %r" % (value, node))

    def test_string(self):
        self.assertOk(V.STRING, "")
        self.assertOk(V.STRING, "héllo")
        for bad in (1, 1.5, True, None, [], {}):
            self.assertType(V.STRING, bad)

    def test_integer_is_not_bool_float_or_string(self):
        self.assertOk(V.INTEGER, 0)
        self.assertOk(V.INTEGER, -12345678901234567890)
        for bad in (True, False, 1.0, 2.5, "1", None, [1], {}):
            self.assertType(V.INTEGER, bad)

    def test_number(self):
        for good in (0, -3, 1.0, 2.5, 1e300):
            self.assertOk(V.NUMBER, good)
        for bad in (True, "1.5", None, [], float("inf"), float("-inf"), float("nan")):
            self.assertType(V.NUMBER, bad)

    def test_boolean_is_not_int(self):
        self.assertOk(V.BOOLEAN, True)
        self.assertOk(V.BOOLEAN, False)
        for bad in (0, 1, "true", None):
            self.assertType(V.BOOLEAN, bad)

    def test_object_array_null_any(self):
        self.assertOk(V.OBJECT, {"anything": [1, 2]})
        self.assertType(V.OBJECT, [])
        self.assertOk(V.ARRAY, [1, "a", None])
        self.assertOk(V.ARRAY, (1, 2))  # tuples are JSON arrays when we send them
        self.assertType(V.ARRAY, {})
        self.assertType(V.ARRAY, "[]")
        self.assertOk(V.NULL, None)
        self.assertType(V.NULL, 0)
        for anything in (None, 1, "a", [], {}, 1.5, True):
            self.assertOk(V.ANY, anything)

    def test_constrained_nodes_check_type_first(self):
        self.assertType(-20, 5)
        self.assertType((V.STRING, 1, 5, 0), 5)
        self.assertType((V.INTEGER, 0, 10, None), True)
        self.assertType((V.INTEGER, 0, 10, None), 5.0)
        self.assertType((V.NUMBER, 0, 10, None), "5")
        self.assertType(UNIT, 1)
        self.assertType(UNIT, ["Wh"])
        self.assertType(obj({"a": V.STRING}), "a")
        self.assertType((V.ARRAY, V.STRING, 0, -1), "a")
        self.assertType(V.DATETIME, 20240501)


class KeywordTest(unittest.TestCase):
    def err(self, node, value):
        return check(one(node), {"x": value})

    def test_enum(self):
        self.assertIsNone(self.err(UNIT, "kWh"))
        self.assertEqual(self.err(UNIT, "kwh"), (E_PROPERTY, "x: not in enum"))
        self.assertEqual(self.err(UNIT, ""), (E_PROPERTY, "x: not in enum"))

    def test_max_length_counts_characters(self):
        self.assertIsNone(self.err(-3, "abc"))
        self.assertIsNone(self.err(-3, "é€😀"))
        self.assertIsNone(self.err(-3, ""))
        self.assertEqual(self.err(-3, "abcd"), (E_PROPERTY, "x: longer than 3"))

    def test_min_and_max_length(self):
        node = (V.STRING, 2, 4, 0)
        self.assertIsNone(self.err(node, "ab"))
        self.assertIsNone(self.err(node, "abcd"))
        self.assertEqual(self.err(node, "a"), (E_PROPERTY, "x: shorter than 2"))
        self.assertEqual(self.err(node, "abcde"), (E_PROPERTY, "x: longer than 4"))
        self.assertIsNone(self.err((V.STRING, 1, -1, 0), "a" * 1000))

    def test_string_with_length_and_date_time(self):
        node = (V.STRING, 0, 30, 1)
        self.assertIsNone(self.err(node, "2024-05-01T00:00:00Z"))
        self.assertEqual(self.err(node, "2024-05-01"), (E_PROPERTY, "x: not an RFC 3339 date-time"))
        self.assertEqual(self.err(node, "2024-05-01T00:00:00.00000000000Z")[0], E_PROPERTY)

    def test_minimum_maximum(self):
        node = (V.INTEGER, 0, 10, None)
        self.assertIsNone(self.err(node, 0))
        self.assertIsNone(self.err(node, 10))
        self.assertEqual(self.err(node, -1), (E_PROPERTY, "x: below minimum 0"))
        self.assertEqual(self.err(node, 11), (E_PROPERTY, "x: above maximum 10"))
        node = (V.NUMBER, -0.5, None, None)
        self.assertIsNone(self.err(node, -0.5))
        self.assertIsNone(self.err(node, 10**6))
        self.assertEqual(self.err(node, -0.6)[0], E_PROPERTY)

    def test_multiple_of_tenth_is_judged_on_the_decimal_text(self):
        node = (V.NUMBER, None, None, 0.1)
        for good in (21.4, 0.1, 0.3, -0.1, 0, 5, 230.0, 1234567.8, 1e20, 1e300, -7.7):
            self.assertIsNone(self.err(node, good), good)
        for bad in (4.11, 0.05, 0.30000000000000004, 1e-7, 123.45, -0.01):
            self.assertEqual(self.err(node, bad), (E_PROPERTY, "x: not a multiple of 0.1"), bad)

    def test_multiple_of_integer(self):
        self.assertTrue(multiple_ok(15, 5))
        self.assertTrue(multiple_ok(15.0, 5))
        self.assertFalse(multiple_ok(16, 5))
        self.assertFalse(multiple_ok(15.5, 5))
        self.assertEqual(self.err((V.INTEGER, None, None, 5), 7), (E_PROPERTY, "x: not a multiple of 5"))

    def test_required(self):
        node = obj({"a": V.STRING, "b": V.INTEGER}, {"c": V.BOOLEAN})
        self.assertIsNone(check(node, {"a": "", "b": 1}))
        self.assertIsNone(check(node, {"a": "", "b": 1, "c": True}))
        self.assertEqual(check(node, {"a": ""}), (E_OCCURRENCE, "b: missing"))
        self.assertEqual(check(node, {"c": False}), (E_OCCURRENCE, "a: missing"))  # first by name
        self.assertEqual(check(node, {}), (E_OCCURRENCE, "a: missing"))

    def test_additional_properties(self):
        closed = obj({"a": V.STRING})
        self.assertEqual(check(closed, {"a": "", "zz": 1}), (E_FORMAT, "zz: not allowed"))
        opened = ({"a": V.STRING}, {}, 0)
        self.assertIsNone(check(opened, {"a": "", "zz": 1}))
        self.assertEqual(check(opened, {"zz": 1}), (E_OCCURRENCE, "a: missing"))
        self.assertEqual(check(opened, {"a": 1, "zz": 1}), (E_TYPE, "a: not a string"))

    def test_several_faults_give_the_same_answer_on_every_runtime(self):
        # Dict order differs between runtimes; the reported fault must not.
        node = obj({"a": V.STRING, "b": V.INTEGER}, {"c": UNIT})
        self.assertEqual(check(node, {"zz": 1, "c": "x", "b": "1", "a": 2}), (E_TYPE, "a: not a string"))
        self.assertEqual(check(node, {"zz": 1, "c": "x", "b": "1"}), (E_TYPE, "b: not an integer"))
        self.assertEqual(check(node, {"zz": 1, "c": "x"}), (E_PROPERTY, "c: not in enum"))
        self.assertEqual(check(node, {"zz": 1}), (E_FORMAT, "zz: not allowed"))
        self.assertEqual(check(node, {"c": "Wh"}), (E_OCCURRENCE, "a: missing"))
        p = meter_payload()
        p["meterValue"][0]["sampledValue"][1]["unit"] = "mA"
        p["meterValue"][0]["sampledValue"][0]["phase"] = "L9"
        p["transactionId"] = None
        self.assertEqual(check(PAYLOAD, p), (E_PROPERTY, "meterValue[0].sampledValue[0].phase: not in enum"))

    def test_min_items_max_items(self):
        node = (V.ARRAY, V.INTEGER, 1, 2)
        self.assertIsNone(self.err(node, [1]))
        self.assertIsNone(self.err(node, [1, 2]))
        self.assertEqual(self.err(node, []), (E_OCCURRENCE, "x: fewer than 1 items"))
        self.assertEqual(self.err(node, [1, 2, 3]), (E_OCCURRENCE, "x: more than 2 items"))
        self.assertEqual(self.err(node, [1, "2"]), (E_TYPE, "x[1]: not an integer"))

    def test_array_of_any(self):
        self.assertIsNone(self.err((V.ARRAY, V.ANY, 1, -1), [None, {}]))
        self.assertEqual(self.err((V.ARRAY, V.ANY, 1, -1), [])[0], E_OCCURRENCE)

    def test_root_must_be_an_object(self):
        for payload in ([], [{}], "x", 1, None, True):
            self.assertEqual(check(PAYLOAD, payload), (E_FORMAT, "payload: not an object"))

    def test_root_error_texts(self):
        self.assertEqual(check(({"a": V.ANY}, {}), {}), (E_OCCURRENCE, "a: missing"))


class NestedTest(unittest.TestCase):
    def test_valid(self):
        self.assertIsNone(check(PAYLOAD, meter_payload()))

    def test_where_names_the_path(self):
        p = meter_payload()
        p["meterValue"][0]["sampledValue"][1]["unit"] = "mA"
        self.assertEqual(check(PAYLOAD, p), (E_PROPERTY, "meterValue[0].sampledValue[1].unit: not in enum"))
        p = meter_payload()
        del p["meterValue"][0]["sampledValue"][0]["value"]
        self.assertEqual(check(PAYLOAD, p), (E_OCCURRENCE, "meterValue[0].sampledValue[0].value: missing"))
        p = meter_payload()
        p["meterValue"][0]["sampledValue"][1]["extra"] = 1
        self.assertEqual(check(PAYLOAD, p), (E_FORMAT, "meterValue[0].sampledValue[1].extra: not allowed"))
        p = meter_payload()
        p["meterValue"][0]["sampledValue"] = []
        self.assertEqual(check(PAYLOAD, p), (E_OCCURRENCE, "meterValue[0].sampledValue: fewer than 1 items"))
        p = meter_payload()
        p["meterValue"][0]["sampledValue"][0] = "1.5"
        self.assertEqual(check(PAYLOAD, p), (E_TYPE, "meterValue[0].sampledValue[0]: not an object"))
        p = meter_payload()
        p["meterValue"][0]["timestamp"] = "2024-05-01T12:34:56"
        self.assertEqual(check(PAYLOAD, p), (E_PROPERTY, "meterValue[0].timestamp: not an RFC 3339 date-time"))
        p = meter_payload()
        p["meterValue"] = p["meterValue"] * 3
        self.assertEqual(check(PAYLOAD, p), (E_OCCURRENCE, "meterValue: more than 2 items"))
        p = meter_payload()
        p["transactionId"] = "7"
        self.assertEqual(check(PAYLOAD, p), (E_TYPE, "transactionId: not an integer"))

    def test_tuples_as_arrays(self):
        p = meter_payload()
        p["meterValue"] = tuple(p["meterValue"])
        self.assertIsNone(check(PAYLOAD, p))


class DateTimeTest(unittest.TestCase):
    GOOD = (
        "2024-05-01T12:34:56Z",
        "2024-05-01T12:34:56.789Z",
        "2024-05-01T12:34:56.123456789Z",
        "2024-05-01t12:34:56z",
        "2024-05-01T12:34:56+05:30",
        "2024-05-01T12:34:56-00:00",
        "2024-05-01T12:34:56.5+23:59",
        "2024-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2024-04-30T00:00:00Z",
        "2024-01-31T00:00:00Z",
    )
    BAD = (
        "",
        "2024-05-01",
        "2024-05-01T12:34:56",
        "2024-05-01 12:34:56Z",
        "2024-05-01T12:34Z",
        "2024-05-01T12:34:56.Z",
        "2024-05-01T12:34:56,5Z",
        "2024-05-01T12:34:56ZZ",
        "2024-05-01T12:34:56Z ",
        " 2024-05-01T12:34:56Z",
        "2024-05-01T12:34:56+0530",
        "2024-05-01T12:34:56+05",
        "2024-05-01T12:34:56+24:00",
        "2024-05-01T12:34:56+05:60",
        "2024-05-01T12:34:56+5:30",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T23:60:00Z",
        "2024-05-01T23:59:61Z",
        "2024-5-01T12:34:56Z",
        "24-05-01T12:34:56Z",
        "+2024-05-01T12:34:56Z",
        "2024-05-01T12:34:5aZ",
        "2024-0a-01T12:34:56Z",
        "٢٠٢٤-05-01T12:34:56Z",  # Arabic-Indic digits are digits to str.isdigit
        "2024-05-01T12:34:56.٣Z",
        "2024-05-01T12:34:56.1+05:3٠",
        "2024-05-01X12:34:56Z",
        "2024/05/01T12:34:56Z",
        "2024-05-01T12-34-56Z",
    )

    def test_good(self):
        for s in self.GOOD:
            self.assertTrue(datetime_ok(s), s)

    def test_bad(self):
        for s in self.BAD:
            self.assertFalse(datetime_ok(s), s)

    def test_node(self):
        self.assertIsNone(check(one(V.DATETIME), {"x": "2024-05-01T12:34:56Z"}))
        self.assertEqual(check(one(V.DATETIME), {"x": "yesterday"}), (E_PROPERTY, "x: not an RFC 3339 date-time"))


class TablesTest(unittest.TestCase):
    def test_versions(self):
        self.assertEqual(len(load(V16).ACTIONS), 39)
        self.assertEqual(len(load(V201).ACTIONS), 64)
        self.assertRaises(ValueError, load, "ocpp1.5")

    def test_security_extension_is_in_1_6(self):
        actions = load(V16).ACTIONS
        for name in ("SignCertificate", "InstallCertificate", "SecurityEventNotification", "SignedUpdateFirmware",
                     "ExtendedTriggerMessage", "GetLog", "LogStatusNotification", "CertificateSigned"):
            self.assertIn(name, actions)

    def test_every_action_has_both_directions(self):
        for version in (V16, V201):
            for action, pair in load(version).ACTIONS.items():
                self.assertEqual(len(pair), 2, action)
                for node in pair:
                    self.assertIs(type(node[0]), dict, action)

    def test_send_only_message_in_2_1(self):
        req, resp = load(V21).ACTIONS["NotifyPeriodicEventStream"]
        self.assertIsNone(resp)
        self.assertEqual(check(req, {"id": 1, "pending": 0, "basetime": "2025-01-01T00:00:00Z", "data": []})[0],
                         E_OCCURRENCE)

    def test_shared_nodes_exist_once(self):
        a = load(V16).ACTIONS
        info = a["Authorize"][1][0]["idTagInfo"]
        self.assertIs(a["StartTransaction"][1][0]["idTagInfo"], info)
        self.assertIs(a["StopTransaction"][1][1]["idTagInfo"], info)
        # Enums shared through $ref-free duplication are folded as constants.
        mv = a["MeterValues"][0][0]["meterValue"][1][0]["sampledValue"][1][1]["measurand"]
        st = a["StopTransaction"][0][1]["transactionData"][1][0]["sampledValue"][1][1]["measurand"]
        self.assertIs(mv, st)
        b = load(V201).ACTIONS
        custom = b["Heartbeat"][0][1]["customData"]
        self.assertIs(b["BootNotification"][0][1]["customData"], custom)
        self.assertIs(b["BootNotification"][0][0]["chargingStation"][1]["customData"], custom)

    def test_1_6_examples(self):
        a = load(V16).ACTIONS
        boot = {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"}
        self.assertIsNone(check(a["BootNotification"][0], boot))
        boot["chargePointVendor"] = "V" * 21
        self.assertEqual(check(a["BootNotification"][0], boot), (E_PROPERTY, "chargePointVendor: longer than 20"))
        resp = {"status": "Accepted", "currentTime": "2013-02-01T20:53:32.486Z", "interval": 300}
        self.assertIsNone(check(a["BootNotification"][1], resp))
        resp["heartbeatInterval"] = 300  # the pre-1.6 name is not allowed
        self.assertEqual(check(a["BootNotification"][1], resp), (E_FORMAT, "heartbeatInterval: not allowed"))
        start = {"connectorId": 1, "idTag": "04A2B3C4", "meterStart": 0, "timestamp": "2024-05-01T12:00:00Z"}
        self.assertIsNone(check(a["StartTransaction"][0], start))
        start["meterStart"] = True
        self.assertEqual(check(a["StartTransaction"][0], start), (E_TYPE, "meterStart: not an integer"))
        mv = meter_payload()
        mv["meterValue"][0]["sampledValue"][0]["measurand"] = "Energy.Active.Import.Register"
        self.assertIsNone(check(a["MeterValues"][0], mv))
        mv["meterValue"][0]["sampledValue"][0]["unit"] = "kwh"
        self.assertEqual(check(a["MeterValues"][0], mv), (E_PROPERTY, "meterValue[0].sampledValue[0].unit: not in enum"))
        self.assertIsNone(check(a["Heartbeat"][0], {}))
        self.assertEqual(check(a["Heartbeat"][0], {"x": 1}), (E_FORMAT, "x: not allowed"))

    def test_1_6_charging_profile_limit_is_a_multiple_of_a_tenth(self):
        node = load(V16).ACTIONS["SetChargingProfile"][0]
        p = {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
                },
            },
        }
        self.assertIsNone(check(node, p))
        p["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 4.11
        self.assertEqual(
            check(node, p),
            (E_PROPERTY, "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit: not a multiple of 0.1"),
        )

    def test_2_0_1_examples(self):
        a = load(V201).ACTIONS
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M1", "vendorName": "V"}}
        self.assertIsNone(check(a["BootNotification"][0], boot))
        boot["chargingStation"]["customData"] = {"vendorId": "acme", "anything": [1]}
        self.assertIsNone(check(a["BootNotification"][0], boot))
        del boot["chargingStation"]["customData"]["vendorId"]
        self.assertEqual(check(a["BootNotification"][0], boot),
                         (E_OCCURRENCE, "chargingStation.customData.vendorId: missing"))
        self.assertIsNone(check(a["DataTransfer"][0], {"vendorId": "acme", "data": [{"any": None}]}))
        sv = {"value": 12.5, "measurand": "Voltage"}
        tx = {
            "eventType": "Updated",
            "timestamp": "2024-05-01T12:00:00Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 3,
            "transactionInfo": {"transactionId": "tx-1"},
            "meterValue": [{"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [sv]}],
        }
        self.assertIsNone(check(a["TransactionEvent"][0], tx))
        sv["value"] = "12.5"
        self.assertEqual(check(a["TransactionEvent"][0], tx),
                         (E_TYPE, "meterValue[0].sampledValue[0].value: not a number"))

    @unittest.skipIf(IS_MICROPYTHON, CPYTHON_ONLY)
    def test_prepared_tables_judge_like_the_generated_ones(self):
        import os

        from tests.support import repo_root

        # A fresh, unprepared copy of the generated table.
        ns = {}
        with open(os.path.join(repo_root(), "firmware", "ocpp", "schemas", "v16.py")) as f:
            exec(compile(f.read(), "v16.py", "exec"), ns)
        raw = ns["ACTIONS"]
        fast = load(V16).ACTIONS
        self.assertIs(type(raw["Reset"][0][0]["type"]), tuple)
        self.assertIs(type(fast["Reset"][0][0]["type"]), frozenset)
        mv = meter_payload()
        cases = (
            ("Reset", 0, {"type": "Hard"}),
            ("Reset", 0, {"type": "hard"}),
            ("Reset", 0, {"type": 1}),
            ("Reset", 0, {}),
            ("MeterValues", 0, mv),
            ("ChangeAvailability", 1, {"status": "Scheduled"}),
            ("ChangeAvailability", 1, {"status": "Sched"}),
        )
        for action, i, payload in cases:
            self.assertEqual(check(fast[action][i], payload), check(raw[action][i], payload), action)
        V.prepare(fast)  # idempotent
        self.assertIs(type(fast["Reset"][0][0]["type"]), frozenset)
        self.assertEqual(check(fast["Reset"][0], {"type": "x"}), (E_PROPERTY, "type: not in enum"))


class NoAllocationTest(unittest.TestCase):
    @unittest.skipUnless(IS_MICROPYTHON, "gc.mem_alloc counts on MicroPython only")
    def test_valid_payload_allocates_nothing(self):
        import gc

        node = load(V16).ACTIONS["MeterValues"][0]
        p = meter_payload()
        self.assertIsNone(check(node, p))
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            for _ in range(20):
                check(node, p)
            after = gc.mem_alloc()
        finally:
            gc.enable()
        self.assertLess(after - before, 64)  # loop noise only, not per check
