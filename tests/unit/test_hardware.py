# BoardHardware (firmware/hardware.py) and the simulated charger on top of it
# (firmware/simhw.py): the agent events that the drivers' facts become, on
# the simulated parts with a fake clock. Both runtimes.
import asyncio
import unittest

from firmware.hardware import BoardHardware
from firmware.hw import sim
from firmware.hw.modbus import ModbusMaster
from firmware.simhw import CARD_HOLD_MS, SimHardware, is_uid
from tests.hwfakes import fake_sleep
from tests.support import FakeClock


def _parts(clock):
    bench = sim.SimBench(ticks=clock)
    master = ModbusMaster(bench.meter_line, ticks=clock, sleep_ms=fake_sleep(clock))
    d = sim.drivers(bench, master=master)
    d["sim"] = bench
    return bench, d


class HardwareTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.bench, self.d = _parts(self.clock)
        self.events = []
        self.hw = self.make()
        self.hw.listener = self.events.append

    def make(self):
        return BoardHardware([self.d], rfid=self.d["rfid"])

    def run_for(self, ms, step=10):
        for _ in range(ms // step):
            self.hw.poll_once()
            self.clock.advance(step)

    def kinds(self, kind):
        return [e for e in self.events if e[0] == kind]


class WeldTest(HardwareTest):
    def test_weld_faults_refuses_a_close_and_clears_when_the_contacts_open(self):
        self.bench.inject("weld")
        self.run_for(1000)
        self.assertEqual(self.kinds("fault"), [("fault", 1, "weld", None)])
        del self.events[:]
        self.hw.relay(1, True)  # a welded contactor is never energised
        self.assertEqual(self.events, [("relay", 1, False)])
        self.run_for(500)
        self.assertEqual(self.kinds("fault_cleared"), [])  # latched while welded
        self.bench.inject("weld", False)
        self.run_for(100)
        self.assertEqual(self.kinds("fault_cleared"), [("fault_cleared", 1)])
        self.assertIsNone(self.d["relay"].fault)
        del self.events[:]
        self.hw.relay(1, True)
        self.run_for(500)
        self.assertEqual(self.kinds("relay"), [("relay", 1, True)])

    def test_a_close_failure_is_not_cleared_by_the_weld_rule(self):
        self.bench.inject("close_failure")
        self.hw.relay(1, True)
        self.run_for(1000)
        self.assertEqual(self.kinds("warning"), [("warning", 1, "close_failed", None)])
        self.assertEqual(self.kinds("fault_cleared"), [])


class MeterTest(HardwareTest):
    def read(self):
        asyncio.run(self.hw.read_meter(1, self.d["meter"]))
        return self.events.pop()

    def test_only_a_reading_taken_now_reaches_the_agent(self):
        ev = self.read()
        self.assertEqual(ev[:2], ("meter", 1))
        self.assertIn("Energy.Active.Import.Register", ev[2])
        self.bench.inject("meter_loss")
        # The last reading is still younger than stale_ms, but this update
        # failed: the agent is told there is no current reading.
        self.assertEqual(self.read(), ("meter", 1, None))
        self.assertEqual(self.read(), ("meter", 1, None))
        self.assertEqual(self.read(), ("meter", 1, None))
        self.assertEqual(self.kinds("fault"), [("fault", 1, "meter_lost", None)])
        self.bench.inject("meter_loss", False)
        ev = self.read()
        self.assertEqual(ev[:2], ("meter", 1))
        self.assertIsNotNone(ev[2])
        self.assertEqual(self.kinds("fault_cleared"), [("fault_cleared", 1)])


class SimHardwareTest(HardwareTest):
    def make(self):
        return SimHardware(self.d, ticks=self.clock)

    def test_console_commands_move_the_simulated_ev(self):
        self.assertTrue(self.hw.console_plug({})["sim"]["plugged"])
        self.assertTrue(self.hw.console_charge({})["sim"]["ev_requesting"])
        self.assertFalse(self.hw.console_pause({})["sim"]["ev_requesting"])
        self.assertFalse(self.hw.console_unplug({})["sim"]["plugged"])
        self.assertRaises(ValueError, self.hw.console_charge, {})  # not plugged
        self.assertRaises(ValueError, self.hw.console_plug, {"connector": 2})
        self.assertEqual(self.hw.console_fault({"fault": "meter"})["sim"]["injected"], ["meter_loss"])
        self.assertEqual(self.hw.console_clear({"fault": "meter"})["sim"]["injected"], [])
        self.assertRaises(ValueError, self.hw.console_fault, {"fault": "gremlins"})

    def test_a_card_is_read_once_by_the_real_driver_and_taken_away(self):
        self.assertFalse(self.hw.present("TAG-1"))  # not a UID: the agent takes it directly
        self.assertTrue(self.hw.present("04A2B3C4"))
        self.run_for(CARD_HOLD_MS + 500)
        self.assertEqual(self.kinds("card"), [("card", "04A2B3C4", None)])
        self.assertIsNone(self.bench.reader.card)

    def test_a_second_tap_waits_for_the_reader_to_see_an_empty_field(self):
        self.hw.present("04A2B3C4")
        self.run_for(500)
        self.hw.present("04A2B3C4")  # the same card again, at once
        self.run_for(3000)
        self.assertEqual(self.kinds("card"), [("card", "04A2B3C4", None), ("card", "04A2B3C4", None)])

    def test_a_dead_reader_reads_nothing_and_is_a_warning_on_connector_0(self):
        self.hw.console_fault({"fault": "reader"})
        self.run_for(5000)
        self.assertEqual(self.kinds("warning"), [("warning", 0, "reader_failed", None)])
        self.hw.present("04A2B3C4")
        self.run_for(CARD_HOLD_MS + 500)
        self.assertEqual(self.kinds("card"), [])
        self.hw.console_clear({"fault": "reader"})
        self.run_for(5000)
        self.assertEqual(self.kinds("warning")[-1], ("warning", 0, None, None))

    def test_is_uid(self):
        self.assertTrue(is_uid("04A2B3C4D5E6F7"))
        self.assertFalse(is_uid("04A2B3"))
        self.assertFalse(is_uid("04A2B3C4D5E6F7G8"))
