# The charger's clock from currentTime (BootNotification.conf and
# Heartbeat.conf, C16 §4.2 / §4.6: synchronising is RECOMMENDED) when the
# answer is slow: the CSMS read its clock somewhere between our CALL and its
# answer, so a slow answer carries an old time. Found by make chaos with a
# CSMS that delays answers: stamps went back by the delay.
import unittest

from tests.unit.cpkit import T0, T0_ISO, Bench

HOUR = 3600000


def boot_answered_after(b, ms, current=T0_ISO):
    b.connect()
    b.now += ms
    b.answer({"status": "Accepted", "currentTime": current, "interval": 300})


class ClockFromSlowAnswers(unittest.TestCase):
    def test_a_clock_that_fits_the_answer_is_kept(self):
        b = Bench(wall=T0)
        boot_answered_after(b, 3000)  # currentTime T0, read when our CALL arrived
        self.assertEqual(b.cp.wall(b.now), T0 + 3000)

    def test_no_clock_takes_the_middle_of_the_round_trip(self):
        b = Bench(wall=None)
        boot_answered_after(b, 3000)
        self.assertEqual(b.cp.wall(b.now), T0 + 1500)
        self.assertEqual([e for e in b.events if e[0] == "clock_set"], [("clock_set", {"utc": T0_ISO})])

    def test_a_wrong_clock_is_corrected_to_the_middle(self):
        b = Bench(wall=T0 - HOUR)
        boot_answered_after(b, 2000)
        self.assertEqual(b.cp.wall(b.now), T0 + 1000)
        b = Bench(wall=T0 + 5000)  # ahead of anything the CSMS can have meant
        boot_answered_after(b, 2000)
        self.assertEqual(b.cp.wall(b.now), T0 + 1000)

    def test_a_prompt_answer_sets_the_clock_exactly(self):
        b = Bench(wall=T0 - HOUR)
        boot_answered_after(b, 0)
        self.assertEqual(b.cp.wall(b.now), T0)

    def test_a_slow_heartbeat_does_not_set_the_clock_back(self):
        b = Bench(wall=T0)
        boot_answered_after(b, 0)
        b.settle()
        b.at(300000)  # HeartbeatInterval
        self.assertEqual(b.last_call()[2], "Heartbeat")
        b.now += 4000
        b.answer({"currentTime": "2026-11-25T06:31:40.000Z"})  # T0 + 300 s: when the CALL arrived
        self.assertEqual(b.cp.wall(b.now), T0 + 304000)
