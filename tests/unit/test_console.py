import unittest

from firmware import console
from firmware.compat import json_loads


class FakeAgent:
    def __init__(self):
        self.calls = []

    def console_card(self, req):
        self.calls.append(req)
        return {"accepted": True}

    def console_plug(self, req):
        raise ValueError("no connector %s" % req.get("connector"))

    def console_status(self, req):
        raise KeyError("bug")


class ParseTest(unittest.TestCase):
    def test_words_and_json_give_the_same_request(self):
        self.assertEqual(console.parse("card ABC 2")[0], {"cmd": "card", "idTag": "ABC", "connector": 2})
        self.assertEqual(console.parse('{"cmd":"card","idTag":"ABC","connector":2}')[0], {"cmd": "card", "idTag": "ABC", "connector": 2})

    def test_set_keeps_spaces_in_the_value(self):
        self.assertEqual(console.parse("set MeterValuesSampledData Voltage, Power.Active.Import")[0]["value"], "Voltage, Power.Active.Import")

    def test_errors_are_explained(self):
        self.assertIn("unknown command", console.parse("fly")[1])
        self.assertIn("JSON", console.parse("{bad")[1])
        self.assertIn("longer", console.parse("x" * 600)[1])
        self.assertIn("too many", console.parse("plug 1 2")[1])
        self.assertEqual(console.parse("   "), (None, None))


class HandleTest(unittest.TestCase):
    def test_answer_echoes_id_and_data(self):
        c = console.Console(FakeAgent())
        out = json_loads(c.handle('{"cmd":"card","idTag":"T","id":9}'))
        self.assertEqual(out, {"ok": True, "cmd": "card", "id": 9, "accepted": True})

    def test_value_error_is_a_clear_refusal(self):
        out = json_loads(console.Console(FakeAgent()).handle("plug 7"))
        self.assertEqual(out, {"ok": False, "cmd": "plug", "error": "no connector 7"})

    def test_a_bug_in_a_command_never_escapes(self):
        out = json_loads(console.Console(FakeAgent()).handle("status"))
        self.assertFalse(out["ok"])
        self.assertIn("KeyError", out["error"])

    def test_event_line(self):
        self.assertEqual(json_loads(console.event_line("status", {"connector": 1})), {"event": "status", "connector": 1})
