# Every status change reaches the CSMS, in order, even when they happen
# faster than StatusNotifications can go out (C16E §3.19), so the CSMS never
# sees a transition the C16 §4.9 table forbids.
import unittest

from firmware.ocpp.v16 import status as st
from tests.unit.cpkit import booted


class StatusOrderTest(unittest.TestCase):
    def test_a_quick_session_behind_a_slow_answer_is_reported_step_by_step(self):
        b = booted(overrides={"LocalPreAuthorize": True, "AuthorizationCacheEnabled": True})
        b.reading(wh=1000)
        b.card("TAG1")  # learn the card: Authorize, then it lapses unplugged
        b.settle()
        b.advance(61000)
        b.settle()
        b.take()
        b.reading(wh=1000)  # a fresh reading: the earlier one is stale now
        # The CSMS is slow: the first StatusNotification stays unanswered
        # while the whole session happens.
        b.plug()
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        b.card("TAG1")
        b.drawing()
        b.reading(wh=1500)
        b.card("TAG1")
        b.plug(plugged=False)
        b.settle()
        seq = [s for cid, s, _ in b.status_frames() if cid == 1]
        self.assertEqual(seq[0], "Preparing")
        self.assertEqual(seq[-1], "Available")
        self.assertIn("Charging", seq)
        self.assertIn("Finishing", seq)
        for a, c in zip(seq, seq[1:]):
            self.assertTrue(st.allowed(a, c), "%s -> %s" % (a, c))
        # Each carries the time it happened, in order.
        stamps = [f[3]["timestamp"] for f in b.calls("StatusNotification")]
        self.assertEqual(stamps, sorted(stamps))

    def test_changes_while_offline_collapse_to_the_last(self):
        b = booted()
        b.reading(wh=1000)
        b.disconnect()
        b.plug()
        b.plug(plugged=False)
        b.plug()
        b.take()
        b.connect()
        b.settle()
        self.assertEqual([s for cid, s, _ in b.status_frames() if cid == 1], ["Preparing"])


class EvCommunicationErrorTest(unittest.TestCase):
    def test_never_reported_with_charging(self):
        b = booted()
        b.reading(wh=1000)
        b.plug()
        b.card("TAG1")
        b.settle()
        b.drawing()
        b.settle()
        b.take()
        b.cp.warning(1, "EVCommunicationError", "no diode", b.now)
        b.drain()
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "SuspendedEVSE", "EVCommunicationError")])
