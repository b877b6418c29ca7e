import unittest

from tests.unit.cpkit import Bench, T0_ISO


class BootTest(unittest.TestCase):
    def test_boot_accepted_reports_every_connector_then_heartbeats(self):
        b = Bench(connectors=2)
        b.connect()
        boot = b.take()
        self.assertEqual(boot[0][2], "BootNotification")
        b.sent = boot
        b.answer({"status": "Accepted", "currentTime": T0_ISO, "interval": 120})
        b.settle()
        self.assertEqual(sorted(b.status_frames()), [(0, "Available", "NoError"), (1, "Available", "NoError"), (2, "Available", "NoError")])
        b.take()
        b.advance(119000)
        self.assertEqual(b.calls("Heartbeat"), [])
        b.advance(2000)
        self.assertEqual(len(b.calls("Heartbeat")), 1)


class SessionTest(unittest.TestCase):
    def test_plug_card_charge_stop(self):
        b = Bench()
        b.boot()
        b.take()
        b.reading(wh=12345)
        b.plug()
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.settle()
        b.take()
        b.card("TAG1")
        self.assertEqual(b.last_call()[2:], ["Authorize", {"idTag": "TAG1"}])
        b.settle(start_tx_id=77)
        frames = b.take()
        start = [f for f in frames if f[0] == 2 and f[2] == "StartTransaction"][0]
        self.assertEqual(start[3]["meterStart"], 12345)
        self.assertEqual(start[3]["connectorId"], 1)
        self.assertEqual(b.relays, {1: True})
        b.drawing()
        b.settle()
        self.assertIn((1, "Charging", "NoError"), b.status_frames())
        b.take()
        b.advance(1000)
        b.reading(wh=20000)
        b.card("TAG1")
        b.settle()
        stop = b.calls("StopTransaction")[0][3]
        self.assertEqual(stop["transactionId"], 77)
        self.assertEqual(stop["meterStop"], 20000)
        self.assertEqual(stop["reason"], "Local")
        self.assertEqual(stop["idTag"], "TAG1")
        self.assertEqual(b.relays, {1: False})
        self.assertIn((1, "Finishing", "NoError"), b.status_frames())

    def test_a_stop_at_the_charger_itself_is_local_without_an_idtag(self):
        b = Bench()
        b.boot()
        b.take()
        self.assertFalse(b.cp.local_stop(1, b.now))  # nothing to stop
        b.charging(tx_id=78, wh=5000)
        b.take()
        b.reading(wh=5600)
        self.assertTrue(b.cp.local_stop(1, b.now))
        b.drain()
        b.settle()
        stop = b.calls("StopTransaction")[0][3]
        self.assertEqual((stop["transactionId"], stop["meterStop"], stop["reason"]), (78, 5600, "Local"))
        self.assertNotIn("idTag", stop)
        self.assertEqual(b.relays, {1: False})
        self.assertIn((1, "Finishing", "NoError"), b.status_frames())
        self.assertFalse(b.cp.local_stop(1, b.now))
