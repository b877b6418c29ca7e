# The RPC layer with the real generated tables: payload errors reach the wire
# with each version's spelling, for requests the CSMS sends to a charger.
import unittest

from firmware.compat import json_loads
from firmware.ocpp import rpc
from firmware.ocpp.errors import V16, V201, V21
from firmware.ocpp.schemas import load


def endpoint(version, action, response):
    return rpc.Endpoint(version, load(version).ACTIONS, {action: lambda p: response})


def reply(ep, text):
    return json_loads(ep.receive(text, 0))


class PayloadClassesPerVersionTest(unittest.TestCase):
    # (version, action, good response, [(payload text, expected code)])
    CASES = (
        (
            V16,
            "ChangeAvailability",
            {"status": "Accepted"},
            [
                ('{"connectorId":1}', "OccurenceConstraintViolation"),
                ('{"connectorId":"1","type":"Operative"}', "TypeConstraintViolation"),
                ('{"connectorId":1,"type":"Sideways"}', "PropertyConstraintViolation"),
                ('{"connectorId":1,"type":"Operative","x":1}', "FormationViolation"),
            ],
        ),
        (
            V201,
            "ChangeAvailability",
            {"status": "Accepted"},
            [
                ("{}", "OccurrenceConstraintViolation"),
                ('{"operationalStatus":7}', "TypeConstraintViolation"),
                ('{"operationalStatus":"Sideways"}', "PropertyConstraintViolation"),
                ('{"operationalStatus":"Operative","x":1}', "FormatViolation"),
            ],
        ),
        (
            V21,
            "ChangeAvailability",
            {"status": "Accepted"},
            [
                ("{}", "OccurrenceConstraintViolation"),
                ('{"operationalStatus":"Operative","x":1}', "FormatViolation"),
            ],
        ),
    )

    def test_each_class_with_real_tables(self):
        for version, action, good, cases in self.CASES:
            for payload, code in cases:
                ep = endpoint(version, action, good)
                out = reply(ep, '[2,"q1","%s",%s]' % (action, payload))
                self.assertEqual(out[:3], [4, "q1", code], (version, payload))
                self.assertEqual(out[4], {})

    def test_valid_call_answered_with_validated_result(self):
        ep = endpoint(V16, "ChangeAvailability", {"status": "Scheduled"})
        self.assertEqual(reply(ep, '[2,"q2","ChangeAvailability",{"connectorId":0,"type":"Inoperative"}]'), [3, "q2", {"status": "Scheduled"}])

    def test_action_of_another_version_is_not_implemented(self):
        ep = endpoint(V16, "ChangeAvailability", {"status": "Accepted"})
        self.assertEqual(reply(ep, '[2,"q3","RequestStartTransaction",{}]')[:3], [4, "q3", "NotImplemented"])

    def test_known_action_without_handler_is_not_supported(self):
        ep = endpoint(V201, "ChangeAvailability", {"status": "Accepted"})
        self.assertEqual(reply(ep, '[2,"q4","GetVariables",{"getVariableData":[]}]')[:3], [4, "q4", "NotSupported"])

    def test_our_bad_response_never_leaves(self):
        ep = endpoint(V16, "ChangeAvailability", {"status": "Maybe"})
        ep.on_exception = lambda e: None
        self.assertEqual(reply(ep, '[2,"q5","ChangeAvailability",{"connectorId":0,"type":"Inoperative"}]')[:3], [4, "q5", "InternalError"])
