# BoardHardware (firmware/hardware.py): the board's drivers turned into the
# agent's events, on the simulated parts with a fake clock. Both runtimes.
import unittest

from firmware.hardware import BoardHardware
from firmware.hw import F_PILOT_DIODE, F_PILOT_SHORT, sim
from tests.support import FakeClock


class PilotFaultEvents(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.bench = sim.SimBench(ticks=self.clock)
        d = sim.drivers(self.bench)
        d["meter"] = None  # not polled here
        self.hw = BoardHardware([d])
        self.events = []
        self.hw.listener = self.events.append

    def run_for(self, ms, step=10):
        for _ in range(ms // step):
            self.hw.poll_once()
            self.clock.advance(step)
        out, self.events[:] = list(self.events), []
        return out

    def charging(self):
        self.bench.plug()
        self.bench.ev_request(True)
        self.hw.lock(1, True)
        self.hw.relay(1, True)
        got = self.run_for(500)
        self.assertIn(("drawing", 1, True), got)
        self.assertIn(("relay", 1, True), got)

    def test_a_shorted_pilot_while_charging_is_a_fault(self):
        """IEC 61851-1 state E: the driver returns "E" with F_PILOT_SHORT set;
        the agent must hear of the fault (it opens the contactor), not only
        of the state."""
        self.charging()
        self.bench.inject("pilot_short")
        got = self.run_for(300)
        self.assertIn(("fault", 1, F_PILOT_SHORT, None), got)
        # A diode warning seen on the way to E is withdrawn, not left behind.
        if ("warning", 1, F_PILOT_DIODE, None) in got:
            self.assertIn(("warning", 1, None, None), got)
        self.bench.inject("pilot_short", False)
        got = self.run_for(300)
        self.assertIn(("fault_cleared", 1), got)
        self.assertNotIn(("fault", 1, F_PILOT_SHORT, None), got)

    def test_a_pilot_clearing_leaves_other_faults_alone(self):
        """A pilot fault clearing clears only the pilot's own fault."""
        self.charging()
        self.bench.inject("diode_missing")
        got = self.run_for(100)
        self.assertEqual([e for e in got if e[0] in ("fault", "warning")], [("warning", 1, F_PILOT_DIODE, None)])
        self.hw._fault(1, "weld")  # a contactor fault arrives meanwhile
        self.run_for(10)
        self.bench.inject("diode_missing", False)
        got = self.run_for(100)
        self.assertNotIn(("fault_cleared", 1), got)
        self.assertNotIn(("warning", 1, None, None), got)
