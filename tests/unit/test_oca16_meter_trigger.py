# OCTT 1.6 Charge Point cases: meter values (Core profile) and trigger
# message (RemoteTrigger profile). Each test is named after the case it
# mirrors.
import unittest

from firmware.clock import parse_iso8601
from tests.unit.cpkit import Bench, booted


def measurands(mv):
    return sorted(sv.get("measurand", "Energy.Active.Import.Register") for sv in mv["meterValue"][0]["sampledValue"])


def stamp(mv):
    return parse_iso8601(mv["meterValue"][0]["timestamp"])


class MeterValuesCases(unittest.TestCase):
    def test_TC_070_CS_sampled_meter_values(self):
        """Sampled Meter Values"""
        b = booted(overrides={"MeterValueSampleInterval": 10, "ClockAlignedDataInterval": 0})
        conf = b.call("GetConfiguration", {"key": ["MeterValuesSampledData"]}, "g1")
        configured = sorted(conf[2]["configurationKey"][0]["value"].split(","))
        b.charging(tx_id=70)
        b.take()
        b.meter_run(30000)
        b.settle()
        mvs = b.payloads("MeterValues")
        self.assertEqual(len(mvs), 3)
        self.assertEqual([stamp(mvs[1]) - stamp(mvs[0]), stamp(mvs[2]) - stamp(mvs[1])], [10000, 10000])
        for mv in mvs:
            self.assertEqual((mv["connectorId"], mv["transactionId"]), (1, 70))
            self.assertEqual(measurands(mv), configured)
            for sv in mv["meterValue"][0]["sampledValue"]:
                self.assertEqual(sv["context"], "Sample.Periodic")
                self.assertNotEqual(sv.get("location"), "EV")
                self.assertNotIn("format", sv)  # Raw by default

    def test_TC_070_CS_empty_sampled_data_means_energy_register(self):
        """Sampled Meter Values (an empty MeterValuesSampledData means Energy.Active.Import.Register)"""
        b = booted(overrides={"MeterValueSampleInterval": 10, "MeterValuesSampledData": ""})
        b.charging()
        b.take()
        b.meter_run(10000)
        b.settle()
        mv = b.payloads("MeterValues")[0]
        self.assertEqual(measurands(mv), ["Energy.Active.Import.Register"])
        self.assertEqual(mv["meterValue"][0]["sampledValue"][0]["unit"], "Wh")

    def test_TC_071_CS_clock_aligned_meter_values(self):
        """Clock-aligned Meter Values"""
        b = booted(overrides={"MeterValueSampleInterval": 0, "ClockAlignedDataInterval": 20, "MeterValuesAlignedData": "Energy.Active.Import.Register,Power.Active.Import"})
        b.charging(tx_id=71)
        b.take()
        b.advance(3000)  # start away from a boundary
        b.meter_run(60000)
        b.settle()
        mvs = b.payloads("MeterValues")
        self.assertEqual(len(mvs), 3)
        for mv in mvs:
            self.assertEqual(stamp(mv) % 20000, 0)  # on the clock: seconds 0, 20, 40
            self.assertEqual(mv["transactionId"], 71)
            self.assertEqual(measurands(mv), ["Energy.Active.Import.Register", "Power.Active.Import"])
            for sv in mv["meterValue"][0]["sampledValue"]:
                self.assertEqual(sv["context"], "Sample.Clock")
        self.assertEqual([stamp(mvs[1]) - stamp(mvs[0]), stamp(mvs[2]) - stamp(mvs[1])], [20000, 20000])

    def test_TC_071_CS_clock_aligned_idle_connector(self):
        """Clock-aligned Meter Values (an idle connector reports without transactionId)"""
        b = booted(overrides={"ClockAlignedDataInterval": 20})
        b.meter_run(20000)
        b.settle()
        mv = b.payloads("MeterValues")[0]
        self.assertEqual(mv["connectorId"], 1)
        self.assertNotIn("transactionId", mv)
        self.assertEqual(mv["meterValue"][0]["sampledValue"][0]["context"], "Sample.Clock")
        # Offline they are not queued (not transaction-related, C16 §3.7).
        b.take()
        b.disconnect()
        b.meter_run(40000)
        b.connect()
        b.settle()
        self.assertEqual(b.payloads("MeterValues"), [])

    def test_spec_C16_4_7_a_boundary_just_before_the_start_is_not_the_transactions(self):
        """A clock-aligned reading stamped at a boundary that passed just before
        a transaction began (the timer pass came a little after it) is the
        idle connector's, not the transaction's (C16 §4.7)"""
        b = booted(overrides={"ClockAlignedDataInterval": 20, "MeterValueSampleInterval": 0,
                              "StopTxnAlignedData": "Energy.Active.Import.Register"})
        off = b.cp.offset
        boundary = ((b.now + off) // 20000 + 1) * 20000
        b.at(boundary - 10 - off)
        b.reading(wh=1000)
        b.plug(drawing=True)
        b.settle()
        b.take()
        b.now = boundary + 5 - off  # the transaction starts after the boundary, before the pass
        b.card("TAG1")
        b.settle(start_tx_id=47)
        start = b.payloads("StartTransaction")[0]
        self.assertGreater(parse_iso8601(start["timestamp"]), boundary)
        b.advance(10)  # the pass for the boundary
        b.settle()
        clock = [mv for mv in b.payloads("MeterValues") if mv["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"]
        self.assertEqual(len(clock), 1)
        self.assertEqual(stamp(clock[0]), boundary)
        self.assertNotIn("transactionId", clock[0])
        # The next boundary, inside the transaction, is the transaction's.
        b.meter_run(20000)
        b.settle()
        clock = [mv for mv in b.payloads("MeterValues") if mv["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"]
        self.assertEqual([(stamp(mv), mv.get("transactionId")) for mv in clock], [(boundary, None), (boundary + 20000, 47)])
        b.card("TAG1")
        b.settle()
        data = b.payloads("StopTransaction")[0]["transactionData"]
        self.assertNotIn(boundary, [parse_iso8601(mv["timestamp"]) for mv in data])

    def test_spec_C16_9_1_stop_txn_sampled_data(self):
        """StopTransaction.transactionData carries StopTxnSampledData: begin, periodic samples, end (C16 §4.10, §9.1)"""
        b = booted(overrides={"MeterValueSampleInterval": 10, "StopTxnSampledData": "Energy.Active.Import.Register"})
        b.charging(wh=1000)
        b.meter_run(20000, wh_per_step=10)
        b.card("TAG1")
        b.settle()
        data = b.payloads("StopTransaction")[0]["transactionData"]
        contexts = [mv["sampledValue"][0]["context"] for mv in data]
        self.assertEqual(contexts, ["Transaction.Begin", "Sample.Periodic", "Sample.Periodic", "Transaction.End"])
        self.assertEqual([mv["sampledValue"][0]["value"] for mv in data], ["1000.0", "1100.0", "1200.0", "1200.0"])


class TriggerMessageCases(unittest.TestCase):
    def _trigger(self, b, what, cid=None, msg_id="t1"):
        p = {"requestedMessage": what}
        if cid is not None:
            p["connectorId"] = cid
        before = len(b.sent)
        conf = b.call("TriggerMessage", p, msg_id)
        return conf, b.sent[before:]

    def test_TC_054_CS_trigger_message(self):
        """Trigger Message"""
        b = booted()
        b.reading(wh=5432)
        # Steps 1-4: MeterValues, answered first, then sent.
        conf, frames = self._trigger(b, "MeterValues", 1, "t1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual([f[0] for f in frames], [3, 2])
        mv = frames[1][3]
        self.assertEqual((frames[1][2], mv["connectorId"]), ("MeterValues", 1))
        self.assertEqual(mv["meterValue"][0]["sampledValue"][0]["context"], "Trigger")
        b.settle()
        # Steps 5-8: Heartbeat.
        conf, frames = self._trigger(b, "Heartbeat", None, "t2")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(frames[1][2:], ["Heartbeat", {}])
        b.settle()
        # Steps 9-12: StatusNotification, even though nothing changed.
        conf, frames = self._trigger(b, "StatusNotification", 1, "t3")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual((frames[1][2], frames[1][3]["connectorId"], frames[1][3]["status"]), ("StatusNotification", 1, "Available"))
        b.settle()
        # Steps 13-20: the FirmwareManagement messages are not implemented here.
        for what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            conf, frames = self._trigger(b, what, None, "t-" + what)
            self.assertEqual(conf[2], {"status": "NotImplemented"})
            self.assertEqual(frames, [conf])

    def test_TC_054_CS_trigger_boot_notification(self):
        """Trigger Message (BootNotification)"""
        b = booted()
        conf, frames = self._trigger(b, "BootNotification")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(frames[1][2], "BootNotification")
        b.settle()
        # Accepted again: connector 0 and every connector are reported (C16E §3.22).
        self.assertEqual(sorted(b.status_frames()), [(0, "Available", "NoError"), (1, "Available", "NoError")])

    def test_TC_054_CS_trigger_status_notification_all_connectors(self):
        """Trigger Message (StatusNotification without connectorId: connector 0 and every connector)"""
        b = booted(connectors=2)
        conf, frames = self._trigger(b, "StatusNotification")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(sorted(b.status_frames()), [(0, "Available", "NoError"), (1, "Available", "NoError"), (2, "Available", "NoError")])

    def test_TC_055_CS_trigger_message_rejected(self):
        """Trigger Message - Rejected"""
        b = booted(connectors=2)
        b.reading(1)
        conf, frames = self._trigger(b, "MeterValues", 3)
        self.assertEqual(conf[2], {"status": "Rejected"})
        b.settle()
        self.assertEqual(b.sent, [conf])

    def test_spec_C16_5_17_trigger_meter_values_without_a_reading_rejected(self):
        """Trigger Message (MeterValues) with no fresh meter reading: Rejected, since nothing would be sent"""
        b = booted(connectors=2)
        conf, frames = self._trigger(b, "MeterValues", 1)
        self.assertEqual(conf[2], {"status": "Rejected"})
        self.assertEqual(frames, [conf])
        b.reading(cid=2, wh=1000)
        conf, frames = self._trigger(b, "MeterValues", None, "t2")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual([(f[2], f[3]["connectorId"]) for f in frames[1:]], [("MeterValues", 2)])
