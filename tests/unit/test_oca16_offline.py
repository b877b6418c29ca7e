# OCTT 1.6 Charge Point cases: connection loss and offline transactions
# (Core profile, C16 §3.7 queueing). Each test is named after the case it
# mirrors.
import unittest

from firmware.clock import parse_iso8601
from tests.unit.cpkit import Bench, booted

OFFLINE_CACHE = {"LocalAuthorizeOffline": True, "AuthorizationCacheEnabled": True}


def ms(iso):
    return parse_iso8601(iso)


class ConnectionLossCases(unittest.TestCase):
    def test_TC_036_CS_connection_loss_during_transaction(self):
        """Connection Loss During Transaction"""
        b = booted(overrides={"MeterValueSampleInterval": 10})
        b.charging(tx_id=36, wh=1000)
        b.take()
        b.disconnect()
        b.meter_run(35000, wh_per_step=5)  # three samples while offline
        self.assertEqual(b.sent, [])
        b.connect()
        b.settle()
        mvs = b.payloads("MeterValues")
        self.assertEqual(len(mvs), 3)
        stamps = [ms(mv["meterValue"][0]["timestamp"]) for mv in mvs]
        # Chronological, MeterValueSampleInterval apart.
        self.assertEqual([stamps[1] - stamps[0], stamps[2] - stamps[1]], [10000, 10000])
        for mv in mvs:
            self.assertEqual(mv["transactionId"], 36)
            for sv in mv["meterValue"][0]["sampledValue"]:
                self.assertEqual(sv["context"], "Sample.Periodic")
                self.assertNotIn("format", sv)
        energies = [mv["meterValue"][0]["sampledValue"][0]["value"] for mv in mvs]
        self.assertEqual(energies, ["1050.0", "1100.0", "1150.0"])
        # Then new samples follow in order.
        b.take()
        b.meter_run(10000)
        b.settle()
        nxt = b.payloads("MeterValues")
        self.assertEqual(len(nxt), 1)
        self.assertEqual(ms(nxt[0]["meterValue"][0]["timestamp"]) - stamps[2], 10000)


class OfflineTransactionCases(unittest.TestCase):
    def test_TC_037_1_CS_offline_start_transaction_valid_idtag(self):
        """Offline Start Transaction - Valid IdTag"""
        b = booted(overrides=OFFLINE_CACHE)
        b.cp.cache.put("TAG1", {"status": "Accepted"})
        b.disconnect()
        b.reading(wh=300)
        b.plug(drawing=True)
        b.card("TAG1")
        started = b.cp.wall(b.now)
        self.assertIsNotNone(b.cp.connectors[1].tx)
        b.meter_run(20000)
        self.assertEqual(b.sent, [])
        b.connect()
        b.settle(start_tx_id=371)
        self.assertEqual(sorted(b.actions()), ["StartTransaction", "StatusNotification"])
        start = b.payloads("StartTransaction")[0]
        self.assertEqual((start["idTag"], start["meterStart"]), ("TAG1", 300))
        self.assertEqual(ms(start["timestamp"]), started)  # when it started, not when it was sent
        self.assertEqual(b.status_frames(), [(1, "Charging", "NoError")])

    def test_TC_037_1_CS_cached_id_refused_offline_without_local_authorize_offline(self):
        """Offline Start Transaction - cached IdTag, LocalAuthorizeOffline false (C16 §9.1)"""
        b = booted(overrides={"LocalAuthorizeOffline": False, "AuthorizationCacheEnabled": True})
        b.cp.cache.put("TAG1", {"status": "Accepted"})
        b.disconnect()
        b.reading(wh=300)
        b.plug(drawing=True)
        b.card("TAG1")
        self.assertIsNone(b.cp.connectors[1].tx)
        self.assertIsNone(b.cp.connectors[1].auth)
        b.connect()
        b.settle()
        self.assertEqual(b.payloads("StartTransaction"), [])

    def test_TC_037_1_CS_unknown_id_allowed_offline(self):
        """Offline Start Transaction - Valid IdTag (AllowOfflineTxForUnknownId)"""
        b = booted(overrides={"AllowOfflineTxForUnknownId": True})
        b.disconnect()
        b.reading()
        b.plug(drawing=True)
        b.card("NEWCARD")
        self.assertIsNotNone(b.cp.connectors[1].tx)
        b.connect()
        b.settle()
        self.assertEqual(b.payloads("StartTransaction")[0]["idTag"], "NEWCARD")

    def test_TC_037_1_CS_unknown_id_refused_offline(self):
        """Offline Start Transaction - Valid IdTag (an unknown idTag is refused when not allowed)"""
        b = booted(overrides={"AllowOfflineTxForUnknownId": False})
        b.disconnect()
        b.reading()
        b.plug(drawing=True)
        b.card("NEWCARD")
        self.assertIsNone(b.cp.connectors[1].tx)
        self.assertEqual(b.hw, [])

    def _offline_invalid(self, stop_on_invalid):
        b = booted(overrides={"AllowOfflineTxForUnknownId": True, "StopTransactionOnInvalidId": stop_on_invalid})
        b.disconnect()
        b.reading()
        b.plug(drawing=True)
        b.card("BAD")
        b.meter_run(5000)
        b.connect()
        b.settle(start_tx_id=37, auth="Invalid")
        return b

    def test_TC_037_2_CS_offline_start_invalid_idtag_stop_on_invalid_false(self):
        """Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = false"""
        b = self._offline_invalid(False)
        # Energy stops, the transaction stays: SuspendedEVSE (C16 §4.8).
        self.assertEqual(b.relays, {1: False})
        self.assertNotIn("StopTransaction", b.actions())
        self.assertEqual(b.status_frames()[-1], (1, "SuspendedEVSE", "NoError"))
        b.take()
        b.card("BAD")
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["idTag"]), (37, "Local", "BAD"))

    def test_TC_037_3_CS_offline_start_invalid_idtag_stop_on_invalid_true(self):
        """Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = true"""
        b = self._offline_invalid(True)
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"]), (37, "DeAuthorized"))
        self.assertNotIn("idTag", stop)
        self.assertEqual(b.status_frames()[-1], (1, "Finishing", "NoError"))
        self.assertEqual(b.relays, {1: False})
        # The cable stays locked until its owner presents the idTag (C16 §4.8).
        self.assertEqual(b.locks, {1: True})
        b.card("OTHER")
        self.assertEqual(b.locks, {1: True})
        b.card("BAD")
        self.assertEqual(b.locks, {1: False})

    def test_TC_038_CS_offline_stop_transaction(self):
        """Offline Stop Transaction"""
        b = booted()
        b.charging("TAG1", tx_id=38, wh=100)
        b.take()
        b.disconnect()
        b.meter_run(10000, wh_per_step=10)
        b.card("TAG1")
        stopped = b.cp.wall(b.now)
        b.advance(60000)
        self.assertEqual(b.sent, [])
        b.connect()
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["meterStop"]), (38, "Local", 200))
        self.assertEqual(ms(stop["timestamp"]), stopped)
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])

    def test_TC_039_CS_offline_transaction(self):
        """Offline Transaction"""
        b = booted(overrides=OFFLINE_CACHE)
        b.cp.cache.put("TAG1", {"status": "Accepted"})
        b.disconnect()
        b.reading(wh=1000)
        b.plug(drawing=True)
        b.card("TAG1")
        b.meter_run(30000, wh_per_step=20)
        b.card("TAG1")
        b.plug(plugged=False)
        b.advance(5000)
        self.assertEqual(b.sent, [])
        b.connect()
        b.settle(start_tx_id=390)
        # Queued in order; the Stop carries the id the Central System gave the Start.
        self.assertEqual(b.actions(), ["StartTransaction", "StopTransaction"])
        start, stop = b.payloads("StartTransaction")[0], b.payloads("StopTransaction")[0]
        self.assertEqual((start["meterStart"], stop["transactionId"], stop["meterStop"], stop["reason"]), (1000, 390, 1600, "Local"))
        self.assertLess(ms(start["timestamp"]), ms(stop["timestamp"]))
