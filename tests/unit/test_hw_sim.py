# The simulated charger parts and the real drivers on top of them, as the
# emulator uses them: every fault the bench console can inject must come out
# of the matching driver as its fault.
import unittest

from firmware.hw import (
    EV_CLOSED,
    EV_FAULT,
    F_CLOSE_FAILED,
    F_DROPOUT,
    F_LOCK_FAILED,
    F_METER_LOST,
    F_PILOT_DIODE,
    F_PILOT_SHORT,
    F_READER_FAILED,
    F_WELD,
    meters,
    sim,
    status,
)
from firmware.hw.modbus import ModbusMaster
from tests.hwfakes import fake_sleep
from tests.support import FakeClock

try:
    import asyncio
except ImportError:  # pragma: no cover
    asyncio = None


class BenchTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.bench = sim.SimBench(ticks=self.clock)
        master = ModbusMaster(self.bench.meter_line, ticks=self.clock, sleep_ms=fake_sleep(self.clock))
        self.d = sim.drivers(self.bench, master=master)

    def settle(self, name, ms=3000, step=10):
        """Poll one driver for a while; returns its events."""
        out = []
        for _ in range(ms // step):
            e = self.d[name].poll()
            if e is not None:
                out.append(e)
            self.clock.advance(step)
        return out

    def test_unknown_injection(self):
        self.assertFalse(self.bench.inject("gremlins"))
        for name in sim.INJECTIONS:
            self.assertTrue(self.bench.inject(name, False))

    def test_weld(self):
        self.d["relay"].close()
        self.assertEqual(self.settle("relay"), [EV_CLOSED])
        self.bench.inject("weld")
        self.d["relay"].open()
        self.assertEqual(self.settle("relay"), [EV_FAULT])
        self.assertEqual(self.d["relay"].fault, F_WELD)
        self.assertEqual(status.error_code(F_WELD), "PowerSwitchFailure")
        self.assertTrue(self.bench.snapshot()["contacts_closed"])

    def test_weld_while_idle(self):
        self.bench.inject("weld")
        self.assertEqual(self.settle("relay"), [EV_FAULT])
        self.assertEqual(self.d["relay"].fault, F_WELD)

    def test_close_failure_and_dropout(self):
        self.bench.inject("close_failure")
        self.d["relay"].close()
        self.assertEqual(self.settle("relay"), [EV_FAULT])
        self.assertEqual(self.d["relay"].fault, F_CLOSE_FAILED)
        self.bench.inject("close_failure", False)
        self.d["relay"].close()
        self.assertEqual(self.settle("relay"), [EV_CLOSED])
        self.bench.inject("close_failure")
        self.assertEqual(self.settle("relay"), [EV_FAULT])
        self.assertEqual(self.d["relay"].fault, F_DROPOUT)

    def test_lock_failure(self):
        self.bench.inject("lock_failure")
        self.d["lock"].lock()
        self.assertEqual(self.settle("lock"), [EV_FAULT])
        self.assertEqual(self.d["lock"].fault, F_LOCK_FAILED)

    def test_reader_failure_and_cards(self):
        self.bench.present_card("04a1b2c3")
        self.assertEqual(self.settle("rfid", 500), ["04A1B2C3"])
        self.bench.remove_card()
        self.bench.inject("reader_failure")
        self.assertEqual(self.settle("rfid"), [EV_FAULT])
        self.assertEqual(self.d["rfid"].fault, F_READER_FAILED)

    def test_pilot_faults(self):
        self.bench.plug()
        self.assertEqual(self.settle("pilot", 100), ["B"])
        self.bench.inject("pilot_short")
        self.assertEqual(self.settle("pilot", 100), ["E"])
        self.assertEqual(self.d["pilot"].fault, F_PILOT_SHORT)
        self.bench.inject("pilot_short", False)
        self.settle("pilot", 100)
        self.bench.inject("diode_missing")
        self.d["pilot"].set_current(16)
        self.assertEqual(self.settle("pilot", 100), [EV_FAULT])
        self.assertEqual(self.d["pilot"].fault, F_PILOT_DIODE)

    @unittest.skipIf(asyncio is None, "no asyncio")
    def test_meter_follows_relay_and_ev_and_can_be_lost(self):
        meter = self.d["meter"]
        asyncio.run(meter.update())
        self.assertEqual(meter.value(meters.POWER_IMPORT), 0.0)
        self.bench.plug()
        self.bench.ev_request(True)
        self.bench.set_demand(32)
        self.d["pilot"].set_current(16)  # the EV takes what is offered
        self.d["relay"].close()
        self.settle("relay", 100)
        asyncio.run(meter.update())
        self.assertEqual(meter.value(meters.CURRENT_IMPORT, 1), 16.0)
        self.assertAlmostEqual(meter.value(meters.POWER_IMPORT), 3 * 230 * 16 * 0.99, delta=40)
        self.clock.advance(60000)
        asyncio.run(meter.update())
        self.assertAlmostEqual(meter.energy_wh(), 3 * 230 * 16 * 0.99 / 60, delta=2)
        self.assertEqual(self.bench.snapshot()["offered_a"], 16.0)
        self.bench.inject("meter_loss")
        events = [asyncio.run(meter.update()) for _ in range(3)]
        self.assertEqual(events, [None, None, EV_FAULT])
        self.assertEqual(meter.fault, F_METER_LOST)
        self.assertEqual(status.error_code(meter.fault), "PowerMeterFailure")

    def test_snapshot_is_plain_data(self):
        self.bench.inject("weld")
        snap = self.bench.snapshot()
        self.assertEqual(snap["injected"], ["weld"])
        for v in snap.values():
            self.assertIn(type(v), (bool, int, float, str, list, type(None)))

    def test_slave_answers_exceptions(self):
        slave = self.bench.slave
        m = ModbusMaster(slave, ticks=self.clock, retries=0)
        from firmware.hw.modbus import ModbusException

        for fc, addr, code in ((3, 0, 2), (4, 0x200, 2)):
            m.start(1, fc, addr, 2)
            with self.assertRaises(ModbusException) as ctx:
                for _ in range(100):
                    m.poll()
                    self.clock.advance(5)
            self.assertEqual(ctx.exception.args[0], code)
