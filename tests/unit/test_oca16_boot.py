# OCTT 1.6 Charge Point cases: cold boot (Core profile).
#
# Each test mirrors one case of the OCPP 1.6 Compliancy Testing Tool test
# case document (system under test: Charge Point) and is named after it.
import unittest

from tests.unit.cpkit import Bench, BOOT_INFO, T0_ISO


def boot_conf(status, interval):
    return {"status": status, "currentTime": T0_ISO, "interval": interval}


class ColdBootCases(unittest.TestCase):
    def test_TC_001_CS_cold_boot_charge_point(self):
        """Cold Boot Charge Point"""
        b = Bench(connectors=2)
        b.connect()
        self.assertEqual(b.actions(), ["BootNotification"])
        self.assertEqual(b.last_call()[3], BOOT_INFO)
        # Step 2: Rejected; the charger waits the interval, sending nothing.
        b.answer(boot_conf("Rejected", 20))
        b.take()
        b.advance(19999)
        self.assertEqual(b.sent, [])
        # While Rejected it does not answer the Central System either (C16 §4.2.1).
        self.assertIsNone(b.call("GetConfiguration", {}))
        # Step 3: the next BootNotification comes after the interval.
        b.advance(1)
        self.assertEqual(b.actions(), ["BootNotification"])
        # Step 4: Accepted with the heartbeat interval.
        b.take()
        b.answer(boot_conf("Accepted", 60))
        b.settle()
        # Step 5: a StatusNotification per connector and for connectorId 0, Available.
        self.assertEqual(sorted(b.status_frames()), [(0, "Available", "NoError"), (1, "Available", "NoError"), (2, "Available", "NoError")])
        last = b.now
        b.take()
        # Step 7: a Heartbeat every interval seconds.
        b.advance(59999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        self.assertEqual(b.actions(), ["Heartbeat"])
        self.assertEqual(b.now - last, 60000)
        b.settle()
        b.take()
        b.advance(60000)
        self.assertEqual(b.actions(), ["Heartbeat"])

    def test_TC_001_CS_reconnect_keeps_the_rejected_interval(self):
        """Cold Boot Charge Point (a dropped connection does not shorten the Rejected wait)"""
        b = Bench()
        b.connect()
        b.answer(boot_conf("Rejected", 300))
        b.advance(10000)
        b.disconnect()
        b.take()
        b.connect()
        self.assertEqual(b.sent, [])
        b.advance(289999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        self.assertEqual(b.actions(), ["BootNotification"])

    def test_TC_002_CS_cold_boot_charge_point_pending(self):
        """Cold Boot Charge Point - Pending"""
        b = Bench()
        b.connect()
        b.answer(boot_conf("Pending", 30))
        b.take()
        # Steps 3-6: the Central System reads and sets configuration while Pending.
        conf = b.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, "g1")
        self.assertEqual(conf[2]["configurationKey"], [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}])
        conf = b.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}, "c1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        # The charger itself sends nothing until the interval has passed.
        b.take()
        b.advance(29999)
        self.assertEqual(b.sent, [])
        # Step 7: BootNotification after the interval from step 2.
        b.advance(1)
        self.assertEqual(b.actions(), ["BootNotification"])
        b.take()
        b.answer(boot_conf("Accepted", 120))
        b.settle()
        # Step 9: StatusNotification per connector and connectorId 0, Available.
        self.assertEqual(sorted(b.status_frames()), [(0, "Available", "NoError"), (1, "Available", "NoError")])
        b.take()
        # Step 11: Heartbeat every interval seconds.
        b.advance(120000)
        self.assertEqual(b.actions(), ["Heartbeat"])
        self.assertEqual(b.cp.config.get("MeterValueSampleInterval"), 30)

    def test_TC_002_CS_pending_refuses_remote_start_and_answers_triggers(self):
        """Cold Boot Charge Point - Pending (no remote start; a triggered message may be sent, C16 §4.2.1)"""
        b = Bench()
        b.connect()
        b.answer(boot_conf("Pending", 60))
        b.take()
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1}, "r1")
        self.assertEqual(conf[2], {"status": "Rejected"})
        conf = b.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}, "t1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])
        self.assertNotIn("Heartbeat", b.actions())
        self.assertNotIn("StartTransaction", b.actions())
