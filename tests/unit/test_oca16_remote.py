# OCTT 1.6 Charge Point cases: remote start/stop and unlock connector
# (Core profile). Each test is named after the case it mirrors.
import unittest

from tests.unit.cpkit import Bench, booted, plug_in_starts


class RemoteStartStopCases(unittest.TestCase):
    def test_TC_010_CS_remote_start_cable_plugged_in_first(self):
        """Remote Start Charging Session – Cable Plugged in First"""
        b = booted()
        conf = b.call("GetConfiguration", {"key": ["AuthorizeRemoteTxRequests"]}, "g1")
        self.assertEqual(conf[2]["configurationKey"], [{"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "true"}])
        b.reading(wh=2000)
        b.plug(drawing=True)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.take()
        conf = b.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        # Step 7: AuthorizeRemoteTxRequests is true, so an Authorize.req first.
        self.assertEqual(b.actions(), ["Authorize"])
        b.settle(start_tx_id=9)
        self.assertEqual(b.actions(), ["Authorize", "StatusNotification", "StartTransaction"])
        start = b.payloads("StartTransaction")[0]
        self.assertEqual((start["connectorId"], start["idTag"], start["meterStart"]), (1, "TAG1", 2000))
        self.assertEqual(b.status_frames(), [(1, "Charging", "NoError")])

    def test_TC_010_CS_without_authorize_remote_tx_requests(self):
        """Remote Start Charging Session – Cable Plugged in First (AuthorizeRemoteTxRequests = false)"""
        b = booted(overrides={"AuthorizeRemoteTxRequests": False})
        b.reading()
        b.plug(drawing=True)
        b.settle()
        b.take()
        conf = b.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertNotIn("Authorize", b.actions())
        self.assertEqual(len(b.calls("StartTransaction")), 1)

    def test_TC_011_1_CS_remote_start_remote_start_first(self):
        """Remote Start Charging Session – Remote Start First"""
        b = booted()
        conf = b.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        # Steps 5 and 7: Authorize.req, then Preparing.
        self.assertEqual(b.actions(), ["Authorize", "StatusNotification"])
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        plug_in_starts(self, b)

    def test_TC_011_1_CS_remote_start_without_connector_id(self):
        """Remote Start Charging Session – Remote Start First (no connectorId: the charger picks a free connector, C16 §5.11)"""
        b = booted(connectors=2)
        b.charging(cid=1)
        b.take()
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG2"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.status_frames(), [(2, "Preparing", "NoError")])
        start = plug_in_starts(self, b, cid=2)
        self.assertEqual((start["connectorId"], start["idTag"]), (2, "TAG2"))

    def test_TC_011_2_CS_remote_start_time_out(self):
        """Remote Start Charging Session – Time Out"""
        b = booted(overrides={"ConnectionTimeOut": 45})
        conf = b.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG1"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        authorized_at = b.now
        b.take()
        b.advance(44999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])
        self.assertEqual(b.now - authorized_at, 45000)

    def test_TC_012_CS_remote_stop_charging_session(self):
        """Remote Stop Charging Session"""
        b = booted()
        b.charging(tx_id=4242, wh=100)
        b.take()
        b.reading(wh=7100)
        conf = b.call("RemoteStopTransaction", {"transactionId": 4242}, "s1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["meterStop"]), (4242, "Remote", 7100))
        self.assertNotIn("idTag", stop)
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        self.assertEqual(b.relays, {1: False})
        self.assertEqual(b.locks, {1: False})
        b.take()
        b.plug(plugged=False)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_026_CS_remote_start_charging_session_rejected(self):
        """Remote Start Charging Session – Rejected"""
        b = booted(overrides={"LocalPreAuthorize": False})
        b.charging()
        b.take()
        conf = b.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "TAG9"}, "r1")
        self.assertEqual(conf[2], {"status": "Rejected"})
        b.settle()
        self.assertEqual(b.sent, [conf])

    def test_TC_027_CS_remote_start_connector_id_shall_not_be_0(self):
        """Remote start transaction - connector id shall not be 0"""
        b = booted()
        conf = b.call("RemoteStartTransaction", {"connectorId": 0, "idTag": "TAG1"}, "r1")
        self.assertEqual(conf[2], {"status": "Rejected"})
        b.settle()
        self.assertEqual(b.sent, [conf])

    def test_TC_028_CS_remote_stop_transaction_rejected(self):
        """Remote Stop Transaction – Rejected"""
        b = booted()
        b.charging(tx_id=10)
        b.take()
        conf = b.call("RemoteStopTransaction", {"transactionId": 11}, "s1")
        self.assertEqual(conf[2], {"status": "Rejected"})
        b.settle()
        self.assertEqual(b.sent, [conf])
        self.assertIsNotNone(b.cp.connectors[1].tx)


class UnlockConnectorCases(unittest.TestCase):
    def test_TC_017_1_CS_unlock_connector_no_session_not_fixed_cable(self):
        """Unlock connector - no charging session running (Not fixed cable)"""
        b = booted()
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "Unlocked"})
        self.assertEqual(b.hw, [("lock", 1, False)])

    def test_TC_017_2_CS_unlock_connector_no_session_fixed_cable(self):
        """Unlock connector - no charging session running (Fixed cable)"""
        b = booted(fixed_cable=True)
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "NotSupported"})
        self.assertEqual(b.hw, [])

    def test_TC_018_1_CS_unlock_connector_with_session_not_fixed_cable(self):
        """Unlock Connector - With Charging Session (Not fixed cable)"""
        b = booted()
        b.charging(tx_id=5)
        b.take()
        b.hw = []
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "Unlocked"})
        b.settle()
        # The transaction ends first (UnlockCommand), then the lock opens.
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"]), (5, "UnlockCommand"))
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        self.assertEqual(b.hw, [("relay", 1, False), ("lock", 1, False)])
        b.take()
        b.plug(plugged=False)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_018_1_CS_unlock_connector_while_the_session_is_starting(self):
        """Unlock Connector - a start under way (lock closing, contactor not yet confirmed) is called off"""
        b = Bench(auto_hw=False)
        b.boot()
        b.reading()
        b.plug(drawing=True)
        b.card("TAG1")
        b.settle()  # Authorize accepted: the cable is being locked
        self.assertEqual(b.locks, {1: True})
        b.cp.lock_result(1, True, b.now)
        b.drain()
        self.assertEqual(b.relays, {1: True})  # closing; no feedback yet
        b.take()
        self.assertIsNone(b.call("UnlockConnector", {"connectorId": 1}, "u1"))
        self.assertEqual((b.relays, b.locks), ({1: False}, {1: False}))
        b.cp.relay_result(1, True, b.now)  # the late feedback of the close
        b.cp.lock_result(1, False, b.now)
        b.drain()
        b.settle()
        self.assertEqual(b.sent[0], [3, "u1", {"status": "Unlocked"}])
        self.assertEqual(b.payloads("StartTransaction"), [])
        self.assertIsNone(b.cp.connectors[1].tx)
        self.assertEqual(b.relays, {1: False})

    def test_TC_018_2_CS_unlock_connector_with_session_fixed_cable(self):
        """Unlock Connector - With Charging Session (Fixed cable)"""
        b = booted(fixed_cable=True)
        b.charging()
        b.take()
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "NotSupported"})
        b.settle()
        self.assertEqual(b.sent, [conf])
        self.assertIsNotNone(b.cp.connectors[1].tx)

    def test_TC_030_CS_unlock_connector_unlock_failure(self):
        """Unlock Connector - Unlock Failure"""
        b = booted()
        b.lock_fails.add(1)
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "UnlockFailed"})

    def test_TC_030_CS_unlock_failure_no_feedback(self):
        """Unlock Connector - Unlock Failure (the lock never reports back)"""
        b = Bench(auto_hw=False)
        b.boot()
        b.take()
        self.assertIsNone(b.call("UnlockConnector", {"connectorId": 1}, "u1"))
        self.assertEqual(b.locks, {1: False})
        b.advance(4999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        self.assertEqual(b.sent, [[3, "u1", {"status": "UnlockFailed"}]])

    def test_TC_031_CS_unlock_connector_unknown_connector(self):
        """Unlock Connector - Unknown Connector"""
        b = booted(connectors=2)
        conf = b.call("UnlockConnector", {"connectorId": 3}, "u1")
        self.assertEqual(conf[2], {"status": "NotSupported"})
        self.assertEqual(b.hw, [])
