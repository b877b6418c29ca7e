# The RPC layer with a stand-in validator: nodes are functions here, so these
# tests pin framing, matching, timeouts and error spelling independently of
# the generated schema tables (tests/unit/test_rpc_schemas.py uses the real ones).
import unittest

from firmware.compat import json_loads
from firmware.ocpp import errors, rpc
from firmware.ocpp.errors import OcppError, V16, V201, V21


def ok(value):
    return None


def needs_id_tag(value):
    if "idTag" not in value:
        return (errors.E_OCCURRENCE, "idTag: required")
    if type(value["idTag"]) is not str:
        return (errors.E_TYPE, "idTag: not a string")
    if len(value["idTag"]) > 20:
        return (errors.E_PROPERTY, "idTag: longer than 20")
    return None


def status_only(value):
    return None if set(value) == {"status"} else (errors.E_FORMAT, "unexpected property")


ACTIONS = {
    "Heartbeat": (ok, ok),
    "Authorize": (needs_id_tag, ok),
    "Reset": (ok, status_only),
    "UnlockConnector": (ok, status_only),
    "ClearCache": (ok, status_only),
    "NotifyPeriodicEventStream": (ok, ok),
}


def check(node, value):
    return node(value)


class Recorder:
    def __init__(self):
        self.events = []

    def rpc_result(self, action, payload, ctx, rtt_ms):
        self.events.append(("result", action, payload, ctx, rtt_ms))

    def rpc_error(self, action, key, code, description, details, ctx, rtt_ms):
        self.events.append(("error", action, key, code, description, details, ctx))

    def rpc_timeout(self, action, ctx):
        self.events.append(("timeout", action, ctx))

    def rpc_lost(self, action, ctx):
        self.events.append(("lost", action, ctx))

    def rpc_send(self, action, payload):
        self.events.append(("send", action, payload))

    def rpc_result_error(self, key, code, description, details):
        self.events.append(("result_error", key, code))


def boom(payload):
    raise KeyError("bug")


def make(version=V16, handlers=None, log=None):
    if handlers is None:
        handlers = {
            "Reset": lambda p: {"status": "Accepted"},
            "UnlockConnector": boom,
            "ClearCache": lambda p: {"status": "Accepted", "extra": 1},
        }
    rec = Recorder()
    ids = iter("id%d" % i for i in range(1, 100))
    ep = rpc.Endpoint(version, ACTIONS, handlers, rec, check=check, new_id=lambda: next(ids), timeout_ms=1000, log=log)
    return ep, rec


def frame(text):
    return json_loads(text)


class CallAnswerTest(unittest.TestCase):
    def test_handler_result_is_framed_with_the_call_id(self):
        ep, _ = make()
        self.assertEqual(frame(ep.receive('[2,"abc","Reset",{"type":"Soft"}]', 0)), [3, "abc", {"status": "Accepted"}])

    def test_unknown_action_is_not_implemented(self):
        for version in errors.VERSIONS:
            ep, _ = make(version)
            out = frame(ep.receive('[2,"a1","FlyToTheMoon",{}]', 0))
            self.assertEqual(out[:3], [4, "a1", "NotImplemented"])
            self.assertEqual(out[4], {})

    def test_known_action_without_handler_is_not_supported(self):
        ep, _ = make()
        self.assertEqual(frame(ep.receive('[2,"a2","Heartbeat",{}]', 0))[:3], [4, "a2", "NotSupported"])

    def test_handler_exception_is_internal_error_and_endpoint_survives(self):
        seen = []
        ep, _ = make()
        ep.on_exception = seen.append
        out = frame(ep.receive('[2,"a3","UnlockConnector",{"connectorId":1}]', 0))
        self.assertEqual(out[:3], [4, "a3", "InternalError"])
        self.assertEqual(len(seen), 1)
        self.assertEqual(frame(ep.receive('[2,"a4","Reset",{"type":"Hard"}]', 0))[0], 3)

    def test_handler_ocpp_error_keeps_its_details(self):
        def refuse(p):
            raise OcppError(errors.E_SECURITY, "no", {"why": "test"})

        ep, _ = make(V201, {"Reset": refuse})
        self.assertEqual(frame(ep.receive('[2,"a5","Reset",{}]', 0)), [4, "a5", "SecurityError", "no", {"why": "test"}])

    def test_invalid_own_response_becomes_internal_error(self):
        seen = []
        ep, _ = make()
        ep.on_exception = seen.append
        self.assertEqual(frame(ep.receive('[2,"a6","ClearCache",{}]', 0))[:3], [4, "a6", "InternalError"])
        self.assertEqual(seen[0].key, errors.E_FORMAT)


class PayloadErrorSpellingTest(unittest.TestCase):
    CASES = (
        ("{}", errors.E_OCCURRENCE),
        ('{"idTag":5}', errors.E_TYPE),
        ('{"idTag":"012345678901234567890"}', errors.E_PROPERTY),
        ("[]", errors.E_FORMAT),
    )
    EXPECT = {
        V16: {
            errors.E_OCCURRENCE: "OccurenceConstraintViolation",
            errors.E_TYPE: "TypeConstraintViolation",
            errors.E_PROPERTY: "PropertyConstraintViolation",
            errors.E_FORMAT: "FormationViolation",
        },
        V201: {
            errors.E_OCCURRENCE: "OccurrenceConstraintViolation",
            errors.E_TYPE: "TypeConstraintViolation",
            errors.E_PROPERTY: "PropertyConstraintViolation",
            errors.E_FORMAT: "FormatViolation",
        },
    }

    def test_each_class_spelled_per_version(self):
        for version in (V16, V201):
            for payload, key in self.CASES:
                ep, _ = make(version, {"Authorize": lambda p: {}})
                out = frame(ep.receive('[2,"p1","Authorize",' + payload + "]", 0))
                self.assertEqual(out[:3], [4, "p1", self.EXPECT[version][key]], (version, payload))


class MalformedFrameTest(unittest.TestCase):
    # (received text, {version: expected reply or None for silence})
    CASES = (
        (
            "not json",
            {
                V16: [4, "-1", "FormationViolation", "frame is not valid JSON", {}],
                V201: [4, "-1", "RpcFrameworkError", "frame is not valid JSON", {}],
                V21: [4, "-1", "RpcFrameworkError", "frame is not valid JSON", {}],
            },
        ),
        (
            '[2,"m7","Reset",{"type":',
            {
                V16: [4, "m7", "FormationViolation", "frame is not valid JSON", {}],
                V201: [4, "m7", "RpcFrameworkError", "frame is not valid JSON", {}],
                V21: [4, "m7", "RpcFrameworkError", "frame is not valid JSON", {}],
            },
        ),
        (
            '{"a":1}',
            {
                V16: [4, "-1", "FormationViolation", "frame is not a JSON array", {}],
                V201: [4, "-1", "RpcFrameworkError", "frame is not a JSON array", {}],
                V21: [4, "-1", "RpcFrameworkError", "frame is not a JSON array", {}],
            },
        ),
        (
            '[9,"m1",{}]',
            {
                V16: None,
                V201: [4, "m1", "MessageTypeNotSupported", "unknown message type 9", {}],
                V21: None,
            },
        ),
        (
            '[5,"m1","GenericError","",{}]',
            {V16: None, V201: [4, "m1", "MessageTypeNotSupported", "unknown message type 5", {}], V21: None},
        ),
        (
            '[2,42,"Reset",{}]',
            {
                V16: [4, "-1", "FormationViolation", "messageId missing or not a string", {}],
                V201: [4, "-1", "RpcFrameworkError", "messageId missing or not a string", {}],
                V21: [4, "-1", "RpcFrameworkError", "messageId missing or not a string", {}],
            },
        ),
        (
            "[2]",
            {
                V16: [4, "-1", "FormationViolation", "messageId missing or not a string", {}],
                V201: [4, "-1", "RpcFrameworkError", "messageId missing or not a string", {}],
                V21: [4, "-1", "RpcFrameworkError", "messageId missing or not a string", {}],
            },
        ),
        (
            '["2","m2","Reset",{}]',
            {
                V16: [4, "m2", "FormationViolation", "message type is not a number", {}],
                V201: [4, "m2", "RpcFrameworkError", "message type is not a number", {}],
                V21: [4, "m2", "RpcFrameworkError", "message type is not a number", {}],
            },
        ),
        (
            '[2,"m3","Reset"]',
            {
                V16: [4, "m3", "FormationViolation", "CALL must be [2, id, action, payload]", {}],
                V201: [4, "m3", "RpcFrameworkError", "CALL must be [2, id, action, payload]", {}],
                V21: [4, "m3", "RpcFrameworkError", "CALL must be [2, id, action, payload]", {}],
            },
        ),
        (
            '[2,"m4",7,{}]',
            {
                V16: [4, "m4", "FormationViolation", "CALL must be [2, id, action, payload]", {}],
                V201: [4, "m4", "RpcFrameworkError", "CALL must be [2, id, action, payload]", {}],
                V21: [4, "m4", "RpcFrameworkError", "CALL must be [2, id, action, payload]", {}],
            },
        ),
        (
            '[2,"m5","Reset",[1]]',
            {
                V16: [4, "m5", "FormationViolation", "payload must be a JSON object", {}],
                V201: [4, "m5", "FormatViolation", "payload must be a JSON object", {}],
                V21: [4, "m5", "FormatViolation", "payload must be a JSON object", {}],
            },
        ),
        (
            '[2,"' + "x" * 37 + '","Reset",{}]',
            {
                V16: [4, "x" * 37, "FormationViolation", "messageId longer than 36 characters", {}],
                V201: [4, "x" * 37, "RpcFrameworkError", "messageId longer than 36 characters", {}],
                V21: [4, "x" * 37, "RpcFrameworkError", "messageId longer than 36 characters", {}],
            },
        ),
        ('[3,"nobody",{}]', {V16: None, V201: None, V21: None}),
        ('[4,"nobody","GenericError","",{}]', {V16: None, V201: None, V21: None}),
    )

    def test_every_class_gets_the_exact_frame(self):
        for text, per_version in self.CASES:
            for version in errors.VERSIONS:
                ep, _ = make(version)
                out = ep.receive(text, 0)
                want = per_version[version]
                self.assertEqual(None if out is None else frame(out), want, (version, text))

    def test_description_capped_at_255_and_details_always_object(self):
        def long_error(p):
            raise OcppError(errors.E_GENERIC, "x" * 400, ["not", "an", "object"])

        ep, _ = make(V201, {"Reset": long_error})
        out = frame(ep.receive('[2,"d1","Reset",{}]', 0))
        self.assertEqual(len(out[3]), 255)
        self.assertEqual(out[4], {})


class OutgoingCallTest(unittest.TestCase):
    def test_result_matched_to_outstanding_call(self):
        ep, rec = make()
        text = ep.call("Heartbeat", {}, 100, ctx="hb")
        self.assertEqual(frame(text), [2, "id1", "Heartbeat", {}])
        self.assertTrue(ep.busy())
        self.assertIsNone(ep.receive('[3,"id1",{"currentTime":"2026-01-01T00:00:00Z"}]', 150))
        self.assertEqual(rec.events, [("result", "Heartbeat", {"currentTime": "2026-01-01T00:00:00Z"}, "hb", 50)])
        self.assertFalse(ep.busy())

    def test_second_call_while_one_outstanding_is_refused(self):
        ep, _ = make()
        ep.call("Heartbeat", {}, 0)
        with self.assertRaises(OcppError):
            ep.call("Heartbeat", {}, 0)

    def test_our_invalid_payload_never_reaches_the_wire(self):
        ep, _ = make()
        with self.assertRaises(OcppError) as cm:
            ep.call("Authorize", {"idTag": 12}, 0)
        self.assertEqual(cm.exception.key, errors.E_TYPE)
        self.assertFalse(ep.busy())

    def test_unknown_id_is_dropped_and_pending_kept(self):
        ep, rec = make()
        ep.call("Heartbeat", {}, 0)
        self.assertIsNone(ep.receive('[3,"other",{}]', 10))
        self.assertEqual(rec.events, [])
        self.assertTrue(ep.busy())
        self.assertEqual(ep.stats["unknown_answers"], 1)

    def test_callerror_reaches_listener_with_key(self):
        ep, rec = make(V16)
        ep.call("Heartbeat", {}, 0, ctx=7)
        ep.receive('[4,"id1","OccurenceConstraintViolation","missing",{"f":1}]', 5)
        self.assertEqual(rec.events, [("error", "Heartbeat", errors.E_OCCURRENCE, "OccurenceConstraintViolation", "missing", {"f": 1}, 7)])

    def test_other_versions_spelling_is_still_understood(self):
        ep, rec = make(V201)
        ep.call("Heartbeat", {}, 0)
        ep.receive('[4,"id1","OccurenceConstraintViolation","",{}]', 5)
        self.assertEqual(rec.events[0][2], errors.E_OCCURRENCE)

    def test_timeout_on_fake_clock_then_late_answer_ignored(self):
        ep, rec = make()
        ep.call("Heartbeat", {}, 1000, ctx="c")
        self.assertEqual(ep.deadline(), 2000)
        ep.poll(1999)
        self.assertEqual(rec.events, [])
        ep.poll(2000)
        self.assertEqual(rec.events, [("timeout", "Heartbeat", "c")])
        self.assertFalse(ep.busy())
        ep.receive('[3,"id1",{}]', 2500)
        self.assertEqual(len(rec.events), 1)

    def test_connection_lost_releases_pending(self):
        ep, rec = make()
        ep.call("Heartbeat", {}, 0, ctx="c")
        ep.lost()
        self.assertEqual(rec.events, [("lost", "Heartbeat", "c")])
        self.assertFalse(ep.busy())

    def test_invalid_result_payload_is_an_error_to_us(self):
        ep, rec = make(V16)
        ep.call("Reset", {}, 0)
        self.assertIsNone(ep.receive('[3,"id1",{"status":"Accepted","x":1}]', 1))
        self.assertEqual(rec.events[0][:4], ("error", "Reset", errors.E_FORMAT, "FormationViolation"))

    def test_invalid_result_gets_callresulterror_in_21(self):
        ep, rec = make(V21)
        ep.call("Reset", {}, 0)
        out = frame(ep.receive('[3,"id1",{"status":"Accepted","x":1}]', 1))
        self.assertEqual(out[:3], [5, "id1", "FormatViolation"])

    def test_message_ids_unique_and_short(self):
        gen = rpc.IdGenerator()
        seen = set()
        for _ in range(1000):
            i = gen()
            self.assertLessEqual(len(i), 36)
            seen.add(i)
        self.assertEqual(len(seen), 1000)
        self.assertNotEqual(rpc.IdGenerator().prefix, gen.prefix)


class Send21Test(unittest.TestCase):
    def test_send_is_delivered_and_never_answered(self):
        ep, rec = make(V21)
        self.assertIsNone(ep.receive('[6,"s1","NotifyPeriodicEventStream",{"id":1}]', 0))
        self.assertEqual(rec.events, [("send", "NotifyPeriodicEventStream", {"id": 1})])

    def test_send_may_cross_an_outstanding_call(self):
        ep, _ = make(V21)
        ep.call("Heartbeat", {}, 0)
        self.assertEqual(frame(ep.send("NotifyPeriodicEventStream", {}))[:3], [6, "id2", "NotifyPeriodicEventStream"])

    def test_send_refused_before_21(self):
        ep, _ = make(V201)
        with self.assertRaises(OcppError):
            ep.send("NotifyPeriodicEventStream", {})

    def test_callresulterror_reaches_listener(self):
        ep, rec = make(V21)
        ep.receive('[5,"r1","FormatViolation","bad result",{}]', 0)
        self.assertEqual(rec.events, [("result_error", errors.E_FORMAT, "FormatViolation")])


class LogTest(unittest.TestCase):
    def test_one_record_per_frame_with_rtt_for_answers(self):
        records = []
        ep, _ = make(log=lambda *a: records.append(a))
        ep.call("Heartbeat", {}, 10)
        ep.receive('[3,"id1",{}]', 35)
        ep.receive('[2,"x","Reset",{}]', 40)
        self.assertEqual(
            records,
            [
                ("tx", 2, "id1", "Heartbeat", {}, None),
                ("rx", 3, "id1", "Heartbeat", {}, 25),
                ("rx", 2, "x", "Reset", {}, None),
                ("tx", 3, "x", "Reset", {"status": "Accepted"}, None),
            ],
        )
