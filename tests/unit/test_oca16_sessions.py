# OCTT 1.6 Charge Point cases: local charging sessions, authorization and
# stopping (Core profile). Each test is named after the case it mirrors.
import unittest

from tests.unit.cpkit import Bench, booted, plug_in_starts

PARENT_START = {"StartTransaction": {"transactionId": 1000, "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}}}


class StartSessionCases(unittest.TestCase):
    def test_TC_003_CS_regular_charging_session_plugin_first(self):
        """Regular Charging Session - Plugin First"""
        b = booted()
        b.reading(wh=12345)
        b.plug(drawing=True)
        # Step 1: Preparing after the cable is plugged in.
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.settle()
        b.take()
        # Step 3: Authorize.req for the presented idTag.
        b.card("TAG1")
        self.assertEqual(b.actions(), ["Authorize"])
        self.assertEqual(b.last_call()[3], {"idTag": "TAG1"})
        b.settle(start_tx_id=77)
        # Steps 5 and 7: StartTransaction and Charging (either order).
        self.assertEqual(sorted(b.actions()), ["Authorize", "StartTransaction", "StatusNotification"])
        start = b.payloads("StartTransaction")[0]
        self.assertEqual((start["connectorId"], start["idTag"], start["meterStart"]), (1, "TAG1", 12345))
        self.assertTrue(start["timestamp"].endswith("Z"))
        self.assertEqual(b.status_frames(), [(1, "Charging", "NoError")])
        # The cable is locked before the contactor closes.
        self.assertEqual(b.hw, [("lock", 1, True), ("relay", 1, True)])

    def test_TC_004_1_CS_regular_charging_session_identification_first(self):
        """Regular Charging Session – Identification First"""
        b = booted(overrides={"MeterValueSampleInterval": 30})
        b.authorized("TAG1")
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        self.assertEqual(b.relays, {})
        start = plug_in_starts(self, b, wh=500)
        self.assertEqual(start["meterStart"], 500)

    def test_TC_004_2_CS_identification_first_connection_timeout(self):
        """Regular Charging Session – Identification First - ConnectionTimeOut"""
        b = booted(overrides={"ConnectionTimeOut": 30})
        b.authorized("TAG1")
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        start = b.now
        b.take()
        b.advance(29999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        # Step 2: Available once ConnectionTimeOut has expired.
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])
        self.assertEqual(b.now - start, 30000)
        b.settle()
        # The authorization has lapsed: plugging in now starts nothing.
        b.take()
        b.reading()
        b.plug()
        b.settle()
        self.assertEqual(b.actions(), ["StatusNotification"])
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])

    def test_TC_007_CS_regular_start_charging_session_cached_id(self):
        """Regular Start Charging Session – Cached Id"""
        b = booted(overrides={"AuthorizationCacheEnabled": True, "LocalPreAuthorize": True})
        b.cp.cache.put("TAG1", {"status": "Accepted"})
        b.card("TAG1")
        # Step 1: Preparing without an Authorize.req (the cache answers).
        self.assertEqual(b.actions(), ["StatusNotification"])
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.settle()
        plug_in_starts(self, b)

    def test_TC_007_2_CS_remote_start_charging_session_cached_id(self):
        """Remote Start Charging Session – Cached Id"""
        b = booted(overrides={"AuthorizationCacheEnabled": True, "LocalPreAuthorize": True, "AuthorizeRemoteTxRequests": True})
        b.cp.cache.put("TAG1", {"status": "Accepted"})
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertNotIn("Authorize", b.actions())
        b.settle()
        b.take()
        b.reading()
        b.plug(drawing=True)
        b.settle()
        self.assertEqual(b.payloads("StartTransaction")[0]["idTag"], "TAG1")

    def test_TC_023_1_CS_start_charging_session_authorize_invalid(self):
        """Start Charging Session – Authorize invalid"""
        self._refused("Invalid")

    def test_TC_023_2_CS_start_charging_session_authorize_expired(self):
        """Start Charging Session – Authorize expired"""
        self._refused("Expired")

    def test_TC_023_3_CS_start_charging_session_authorize_blocked(self):
        """Start Charging Session – Authorize blocked"""
        self._refused("Blocked")

    def _refused(self, status):
        b = booted(overrides={"LocalPreAuthorize": True})
        b.card("BAD")
        self.assertEqual(b.actions(), ["Authorize"])
        b.answer({"idTagInfo": {"status": status}})
        b.settle()
        # The Preparing shown while asking was undone before it went out.
        self.assertEqual(b.actions(), ["Authorize"])
        b.take()
        b.reading()
        b.plug()
        b.settle()
        # Step 3: Preparing after plugging in, and no transaction.
        self.assertEqual(b.actions(), ["StatusNotification"])
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.advance(120000)
        self.assertNotIn("StartTransaction", b.actions())
        self.assertEqual(b.hw, [])

    def test_TC_024_CS_start_charging_session_lock_failure(self):
        """Start Charging Session - Lock Failure"""
        b = booted()
        conf = b.call("GetConfiguration", {"key": ["AuthorizeRemoteTxRequests"]}, "g1")
        self.assertEqual(conf[2]["configurationKey"][0]["key"], "AuthorizeRemoteTxRequests")
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.actions(), ["Authorize", "StatusNotification"])
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.take()
        # Step 9: the cable is plugged in halfway; the lock does not engage.
        b.lock_fails.add(1)
        b.reading()
        b.plug()
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Faulted", "ConnectorLockFailure")])
        self.assertNotIn("StartTransaction", b.actions())
        self.assertNotIn(("relay", 1, True), b.hw)
        # Pulling the cable out ends the fault.
        b.take()
        b.lock_fails.discard(1)
        b.plug(plugged=False)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_024_CS_lock_without_feedback(self):
        """Start Charging Session - Lock Failure (the lock never reports back)"""
        b = Bench(auto_hw=False)
        b.boot()
        b.take()
        b.authorized("TAG1")
        b.take()
        b.reading()
        b.plug()
        self.assertEqual(b.hw, [("lock", 1, True)])
        self.assertEqual(b.cp.next_wake(), b.now + 5000)
        b.advance(4999)
        self.assertEqual(b.sent, [])
        b.advance(1)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Faulted", "ConnectorLockFailure")])
        self.assertEqual(b.hw, [("lock", 1, True), ("lock", 1, False)])
        self.assertNotIn("StartTransaction", b.actions())

    def test_TC_041_CS_fault_behavior(self):
        """Fault Behavior"""
        b = booted()
        b.cp.fault(1, "GroundFailure", "RCD tripped", b.now)
        b.drain()
        b.settle()
        sn = b.payloads("StatusNotification")[0]
        self.assertEqual((sn["status"], sn["errorCode"], sn["info"]), ("Faulted", "GroundFailure", "RCD tripped"))
        # A Faulted connector takes no session.
        b.take()
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
        self.assertEqual(conf[2], {"status": "Rejected"})
        b.cp.fault_cleared(1, b.now)
        b.drain()
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_041_CS_fault_during_transaction(self):
        """Fault Behavior (a fault ends the running transaction)"""
        b = booted()
        b.charging()
        b.take()
        b.cp.fault(1, "OverCurrentFailure", None, b.now)
        b.drain()
        b.settle()
        self.assertEqual(b.payloads("StopTransaction")[0]["reason"], "Other")
        self.assertEqual(b.status_frames(), [(1, "Faulted", "OverCurrentFailure")])
        self.assertEqual(b.relays, {1: False})


class EVSideDisconnectCases(unittest.TestCase):
    def _unplugged_on_ev_side(self, stop, unlock, **charging):
        """Charging with a cable sensed in the socket, then the EV side unplugged."""
        b = booted(overrides={"StopTransactionOnEVSideDisconnect": stop, "UnlockConnectorOnEVSideDisconnect": unlock})
        b.cable(1, True)
        b.charging(**charging)
        b.take()
        b.reading(wh=4000)
        b.plug(plugged=False)
        b.settle()
        return b

    def _available_once_cable_removed(self, b):
        b.take()
        b.cable(1, False)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_005_1_CS_ev_side_disconnected_stop_true_unlock_true(self):
        """EV Side Disconnected - StopTransactionOnEVSideDisconnect = true - UnlockConnectorOnEVSideDisconnect = true"""
        b = self._unplugged_on_ev_side(True, True, wh=1000)
        # Steps 1 and 3: StopTransaction (EVDisconnected) and Finishing, cable unlocked.
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["reason"], stop["meterStop"], stop["transactionId"]), ("EVDisconnected", 4000, 1000))
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        self.assertEqual(b.relays, {1: False})
        self.assertEqual(b.locks, {1: False})
        # Step 5: Available once the cable is taken out of the socket.
        self._available_once_cable_removed(b)

    def test_TC_005_2_CS_ev_side_disconnected_stop_true_unlock_false(self):
        """EV Side Disconnected - StopTransactionOnEVSideDisconnect = true - UnlockConnectorOnEVSideDisconnect = false"""
        b = self._unplugged_on_ev_side(True, False)
        self.assertEqual(b.payloads("StopTransaction")[0]["reason"], "EVDisconnected")
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        self.assertEqual(b.locks, {1: True})  # still locked
        # Steps 5-6: the Central System unlocks it.
        conf = b.call("UnlockConnector", {"connectorId": 1}, "u1")
        self.assertEqual(conf[2], {"status": "Unlocked"})
        self.assertEqual(b.locks, {1: False})
        self._available_once_cable_removed(b)

    def test_TC_005_3_CS_ev_side_disconnected_stop_false_unlock_false(self):
        """EV Side Disconnected - StopTransactionOnEVSideDisconnect = false - UnlockConnectorOnEVSideDisconnect = false"""
        b = self._unplugged_on_ev_side(False, False, tx_id=55)
        # Step 1: the transaction goes on, SuspendedEV, cable kept locked (C16 §4.10).
        self.assertEqual(b.status_frames(), [(1, "SuspendedEV", "NoError")])
        self.assertNotIn("StopTransaction", b.actions())
        self.assertEqual(b.locks, {1: True})
        b.take()
        conf = b.call("RemoteStopTransaction", {"transactionId": 55}, "s1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.payloads("StopTransaction")[0]["reason"], "Remote")
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        self.assertEqual(b.locks, {1: False})


class StopSessionCases(unittest.TestCase):
    def test_TC_068_CS_stop_transaction_idtag_matches_start(self):
        """Stop transaction - IdTag in StopTransaction matches IdTag in StartTransaction"""
        b = booted()
        b.charging("TAG1")
        b.take()
        # Step 1: another card neither authorizes nor stops (the session has no parentIdTag).
        b.card("TAG2")
        b.settle()
        self.assertEqual(b.sent, [])
        # Steps 3 and 5: the starting card stops it.
        b.card("TAG1")
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["idTag"], stop["reason"]), ("TAG1", "Local"))
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])

    def test_TC_069_CS_stop_transaction_parent_idtag_matches(self):
        """Stop transaction - ParentIdTag in StopTransaction matches ParentIdTag in StartTransaction"""
        b = booted()
        b.charging("TAG1", answers=PARENT_START)
        b.take()
        b.card("TAG2")
        # Step 1: Authorize.req for the other card, to learn its parentIdTag.
        self.assertEqual(b.actions(), ["Authorize"])
        self.assertEqual(b.last_call()[3], {"idTag": "TAG2"})
        b.answer({"idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}})
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual(stop["idTag"], "TAG2")
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])

    def test_TC_069_CS_parent_idtag_mismatch_does_not_stop(self):
        """Stop transaction - ParentIdTag in StopTransaction matches ParentIdTag in StartTransaction (other parent: no stop)"""
        b = booted()
        b.charging("TAG1", answers=PARENT_START)
        b.take()
        b.card("TAG3")
        b.answer({"idTagInfo": {"status": "Accepted", "parentIdTag": "OTHER"}})
        b.settle()
        self.assertEqual(b.actions(), ["Authorize"])
        self.assertIsNotNone(b.cp.connectors[1].tx)
        # A card of the same group that is itself blocked does not stop it either.
        b.take()
        b.card("TAG4")
        b.answer({"idTagInfo": {"status": "Blocked", "parentIdTag": "FLEET"}})
        b.settle()
        self.assertEqual(b.actions(), ["Authorize"])
        self.assertIsNotNone(b.cp.connectors[1].tx)
