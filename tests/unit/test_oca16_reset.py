# OCTT 1.6 Charge Point cases: reset, power failure and availability
# (Core profile). Each test is named after the case it mirrors; the
# availability cases without an OCTT counterpart are named after the
# specification section they check.
import unittest

from tests.unit.cpkit import Bench, booted


def sorted_statuses(b):
    return sorted(b.status_frames())


class ResetCases(unittest.TestCase):
    def _reset_without_transaction(self, kind):
        b = booted(connectors=2)
        conf = b.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "a1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Unavailable", "NoError")])
        b.take()
        conf = b.call("Reset", {"type": kind}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(b.resets, [kind == "Hard"])
        self.assertIsNone(b.cp.ep)  # nothing more goes out before the reboot
        # Steps 7-10: after the reboot, BootNotification and every status;
        # Unavailable persisted (C16 §5.14 NOTE).
        b.reboot()
        b.boot()
        self.assertEqual(b.actions()[0], "BootNotification")
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Unavailable", "NoError"), (2, "Available", "NoError")])
        b.take()
        # Steps 11-14: operative again.
        conf = b.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"}, "a2")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])

    def test_TC_013_CS_hard_reset_without_transaction(self):
        """Hard Reset Without transaction"""
        self._reset_without_transaction("Hard")

    def test_TC_014_CS_soft_reset_without_transaction(self):
        """Soft Reset Without Transaction"""
        self._reset_without_transaction("Soft")

    def test_TC_015_CS_hard_reset_with_transaction(self):
        """Hard Reset With Transaction"""
        b = booted(connectors=2)
        b.charging(cid=1, tx_id=321, wh=1000)
        b.take()
        b.reading(1, 1500)
        conf = b.call("Reset", {"type": "Hard"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        # A hard reset does not wait: the contactor opens and the reboot
        # follows; StopTransaction is persisted and sent after the reboot
        # (C16 §5.14, C16E §3.36).
        self.assertEqual(b.resets, [True])
        self.assertEqual(b.relays, {1: False})
        self.assertEqual(b.actions(), [])
        b.reboot()
        b.reading(1, 1500)
        b.plug(1)  # the EV is still connected
        b.boot()
        self.assertEqual(b.actions()[0], "BootNotification")
        # Step 9: the connector that had the transaction is Preparing (cable still in), the others Available.
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Preparing", "NoError"), (2, "Available", "NoError")])
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["meterStop"]), (321, "HardReset", 1500))

    def test_TC_016_CS_soft_reset_with_transaction(self):
        """Soft Reset With Transaction"""
        b = booted()
        b.charging(tx_id=77)
        b.take()
        conf = b.call("Reset", {"type": "Soft"}, "r1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(b.resets, [])
        b.settle()
        # The transaction ends normally first (SoftReset), Finishing; then the reset.
        self.assertEqual(b.actions(), ["StatusNotification", "StopTransaction"])
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"]), (77, "SoftReset"))
        self.assertEqual(b.resets, [False])
        b.reboot()
        b.reading()
        b.plug()
        b.boot()
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Preparing", "NoError")])
        self.assertNotIn("StopTransaction", b.actions())

    def test_TC_016_CS_soft_reset_waits_at_most_the_drain_time(self):
        """Soft Reset With Transaction (a Central System that never answers does not block the reset)"""
        b = booted()
        b.charging(tx_id=77)
        b.take()
        b.call("Reset", {"type": "Soft"}, "r1")
        b.answer({})  # StatusNotification
        self.assertEqual(b.outstanding()[2], "StopTransaction")
        b.advance(29999)
        self.assertEqual(b.resets, [])
        b.advance(1)
        self.assertEqual(b.resets, [False])
        # The unanswered StopTransaction is still queued for after the reboot.
        b.reboot()
        b.boot()
        self.assertEqual(b.payloads("StopTransaction")[0]["reason"], "SoftReset")


class PowerFailureCases(unittest.TestCase):
    def test_TC_032_1_CS_power_failure_stop_transactions_before_going_down(self):
        """Power failure boot charging point - configured to stop transaction(s) before going down"""
        b = booted(connectors=2)
        b.charging(cid=1, tx_id=12, wh=100)
        b.take()
        b.reading(1, 900)
        # Supply lost, backup power holds: the agent stops every transaction.
        b.cp.stop_all("PowerLoss", b.now)
        b.drain()
        b.settle()
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["meterStop"]), (12, "PowerLoss", 900))
        self.assertEqual(b.status_frames(), [(1, "Finishing", "NoError")])
        b.reboot()
        b.reading(1, 900)
        b.plug(1)
        b.boot()
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Preparing", "NoError"), (2, "Available", "NoError")])
        self.assertNotIn("StopTransaction", b.actions())

    def test_TC_032_2_CS_power_failure_stop_transactions_after_reboot(self):
        """Power failure boot charging point-configured to stop transaction(s)"""
        b = booted(connectors=2, overrides={"MeterValueSampleInterval": 10})
        b.charging(cid=1, tx_id=13, wh=100)
        b.meter_run(30000, cid=1, wh_per_step=10)  # periodic samples reach the journal
        b.settle()
        last_wh = b.store.state.open[b.cp.connectors[1].tx.local_id][4]
        self.assertEqual(last_wh, 400)
        b.take()
        # Power cut: nothing is sent; the journal keeps the open transaction.
        b.reboot()
        # This charger does not resume: at boot the journalled transaction ends
        # with PowerLoss and the last journalled reading, sent after
        # BootNotification; the EV still plugged in leaves it Finishing.
        self.assertIsNone(b.cp.connectors[1].tx)
        b.plug(1)
        self.assertEqual(b.sent, [])
        b.boot()
        self.assertEqual(b.actions()[0], "BootNotification")
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Finishing", "NoError"), (2, "Available", "NoError")])
        stop = b.payloads("StopTransaction")[0]
        self.assertEqual((stop["transactionId"], stop["reason"], stop["meterStop"]), (13, "PowerLoss", last_wh))

    def test_TC_034_CS_power_failure_with_unavailable_status(self):
        """Power Failure with Unavailable Status"""
        b = booted(connectors=2)
        conf = b.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, "a1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.settle()
        self.assertEqual(sorted_statuses(b), [(0, "Unavailable", "NoError"), (1, "Unavailable", "NoError"), (2, "Unavailable", "NoError")])
        b.take()
        b.reboot()
        b.boot()
        self.assertEqual(sorted_statuses(b), [(0, "Unavailable", "NoError"), (1, "Unavailable", "NoError"), (2, "Unavailable", "NoError")])
        # Unavailable means no session starts.
        b.take()
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1}, "r1")
        self.assertEqual(conf[2], {"status": "Rejected"})


class ChangeAvailabilitySpec(unittest.TestCase):
    # No OCTT 1.6 Charge Point case covers these; C16 §5.2 and §4.9 do.

    def test_spec_C16_5_2_scheduled_while_charging(self):
        """ChangeAvailability Inoperative during a transaction answers Scheduled and applies at its end (C16 §5.2)"""
        b = booted(connectors=2)
        b.charging(cid=1)
        b.take()
        conf = b.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "a1")
        self.assertEqual(conf[2], {"status": "Scheduled"})
        b.settle()
        self.assertEqual(b.sent, [conf])  # still Charging
        b.card("TAG1")
        b.settle()
        self.assertEqual(b.payloads("StopTransaction")[0]["reason"], "Local")
        self.assertEqual(b.status_frames(), [(1, "Unavailable", "NoError")])
        # It survives a reboot.
        b.take()
        b.reboot()
        b.boot()
        self.assertIn((1, "Unavailable", "NoError"), b.status_frames())

    def test_spec_C16_5_2_connector_0_scheduled_while_charging(self):
        """ChangeAvailability for connector 0 during a transaction: Scheduled; idle connectors go Unavailable at once (C16 §5.2)"""
        b = booted(connectors=2)
        b.charging(cid=1)
        b.take()
        conf = b.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, "a1")
        self.assertEqual(conf[2], {"status": "Scheduled"})
        b.settle()
        self.assertEqual(sorted_statuses(b), [(0, "Unavailable", "NoError"), (2, "Unavailable", "NoError")])
        b.take()
        b.card("TAG1")
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Unavailable", "NoError")])

    def test_spec_C16_5_2_operative_cancels_a_scheduled_inoperative(self):
        """A later Operative cancels a scheduled Inoperative, also across a reboot (C16 §5.2, §4.9)"""
        b = booted()
        b.charging()
        b.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}, "a1")
        conf = b.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"}, "a2")
        self.assertEqual(conf[2], {"status": "Accepted"})
        b.card("TAG1")
        b.settle()
        b.take()
        b.reboot()
        b.boot()
        self.assertEqual(sorted_statuses(b), [(0, "Available", "NoError"), (1, "Available", "NoError")])

    def test_spec_C16_5_2_unknown_connector_rejected(self):
        """ChangeAvailability for a connector that does not exist is Rejected (C16 §5.2)"""
        b = booted()
        conf = b.call("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}, "a1")
        self.assertEqual(conf[2], {"status": "Rejected"})
