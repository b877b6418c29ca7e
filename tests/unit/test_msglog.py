import unittest

from firmware.compat import json_loads
from firmware.ocpp import msglog


class RedactTest(unittest.TestCase):
    def test_authorization_key_in_change_configuration(self):
        p = {"key": "AuthorizationKey", "value": "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"}
        self.assertEqual(msglog.redact(p), {"key": "AuthorizationKey", "value": "***"})
        self.assertEqual(p["value"][:4], "0001")  # the original is untouched

    def test_other_keys_shared_not_copied(self):
        p = {"key": "HeartbeatInterval", "value": "60"}
        self.assertIs(msglog.redact(p), p)

    def test_nested_certificates_and_2x_passwords(self):
        p = {
            "setVariableData": [
                {"variable": {"name": "BasicAuthPassword"}, "component": {"name": "SecurityCtrlr"}, "attributeValue": "secretpass12345678"},
                {"variable": {"name": "HeartbeatInterval"}, "attributeValue": "30"},
            ],
            "certificateChain": "-----BEGIN CERTIFICATE-----",
        }
        out = msglog.redact(p)
        self.assertEqual(out["setVariableData"][0]["attributeValue"], "***")
        self.assertEqual(out["setVariableData"][1]["attributeValue"], "30")
        self.assertEqual(out["certificateChain"], "***")


class RecordTest(unittest.TestCase):
    def test_line_has_utc_ms_direction_type_id_action_rtt(self):
        text = msglog.line(1764086200123, "rx", 3, "id1", "Heartbeat", {"currentTime": "x"}, 42)
        rec = json_loads(text)
        self.assertEqual(
            rec,
            {"t": "2025-11-25T15:56:40.123Z", "dir": "rx", "type": "CALLRESULT", "id": "id1", "action": "Heartbeat", "payload": {"currentTime": "x"}, "rtt_ms": 42},
        )

    def test_unparseable_text_with_a_secret_is_withheld(self):
        rec = msglog.record(0, "rx", None, None, None, '[2,"a","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cr3t"', None)
        self.assertNotIn("s3cr3t", rec["raw"])

    def test_error_body(self):
        rec = msglog.record(0, "tx", 4, "a", None, ("NotSupported", "no", {}), None)
        self.assertEqual(rec["error"], {"code": "NotSupported", "description": "no", "details": {}})
