import unittest

from firmware.hw import EV_CLEARED, EV_FAULT, F_METER_LOST, meters
from firmware.hw.meters import Meter
from firmware.hw.modbus import ModbusMaster
from firmware.hw.sim import CutPort, MeterModel, SimEV, SimModbusPort
from tests.hwfakes import fake_sleep
from tests.support import FakeClock

try:
    import asyncio
except ImportError:  # pragma: no cover
    asyncio = None


def update(meter):
    return asyncio.run(meter.update())


class FixedModel:
    """A MeterModel stand-in with chosen values (meter units)."""

    def __init__(self, values):
        self.values = values  # {(measurand, phase): value}

    def register_values(self, model):
        out = {}
        for m, phase, reg, scale, _ in model["rows"]:
            out[reg] = self.values.get((m, phase), 0.0)
        return out


class PlanTest(unittest.TestCase):
    def test_sdm630_three_phase_in_two_reads(self):
        rows = meters.select_rows(meters.SDM630, 3)
        # V/I/P per phase (0x00-0x11); total power 0x34 with frequency and
        # energies 0x46-0x4B (a hole of 16 registers is merged)
        self.assertEqual([b[:2] for b in meters.plan_blocks(rows)], [(0x00, 18), (0x34, 24)])

    def test_sdm630_wired_single_phase(self):
        rows = meters.select_rows(meters.SDM630, 1)
        self.assertEqual([r[1] for r in rows], [1, 1, 1, 0, 0, 0, 0])
        self.assertEqual([b[:2] for b in meters.plan_blocks(rows)], [(0x00, 14), (0x34, 24)])

    def test_sdm120(self):
        rows = meters.select_rows(meters.SDM120, 1)
        self.assertEqual([b[:2] for b in meters.plan_blocks(rows)], [(0x00, 14), (0x46, 6)])

    def test_every_row_is_in_exactly_one_block(self):
        rows = meters.select_rows(meters.SDM630, 3)
        for gap in (0, 4, 16, 100):
            blocks = meters.plan_blocks(rows, max_gap=gap, max_regs=40)
            covered = []
            for start, count, i0, i1 in blocks:
                self.assertLessEqual(count, 40)
                for r in rows[i0:i1]:
                    self.assertTrue(start <= r[2] and r[2] + 2 <= start + count)
                covered.extend(range(i0, i1))
            self.assertEqual(covered, list(range(len(rows))))

    def test_phase_labels(self):
        self.assertEqual(meters.phase_label(meters.VOLTAGE, 2), "L2-N")
        self.assertEqual(meters.phase_label(meters.CURRENT_IMPORT, 3), "L3")
        self.assertIsNone(meters.phase_label(meters.POWER_IMPORT, 0))
        self.assertIsNone(meters.UNITS[meters.FREQUENCY])


@unittest.skipIf(asyncio is None, "no asyncio")
class MeterTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(1000)

    def meter(self, model_values, model=meters.SDM630, phases=None, **kw):
        self.slave = SimModbusPort(model, FixedModel(model_values))
        self.line = CutPort(self.slave)
        master = ModbusMaster(self.line, ticks=self.clock, sleep_ms=fake_sleep(self.clock), timeout_ms=50, retries=1)
        return Meter(master, model, 1, phases, ticks=self.clock, **kw)

    def test_values_units_and_rounding(self):
        m = self.meter(
            {
                (meters.VOLTAGE, 1): 231.04,
                (meters.CURRENT_IMPORT, 2): 15.996,
                (meters.POWER_IMPORT, 0): 11040.26,
                (meters.FREQUENCY, 0): 49.98,
                (meters.ENERGY_IMPORT, 0): 1234.567,  # kWh
            }
        )
        self.assertIsNone(update(m))
        self.assertEqual(self.slave.requests, 2)
        self.assertAlmostEqual(m.value(meters.VOLTAGE, 1), 231.0, places=3)
        self.assertAlmostEqual(m.value(meters.CURRENT_IMPORT, 2), 16.0, places=3)
        self.assertAlmostEqual(m.value(meters.POWER_IMPORT), 11040.3, places=2)
        self.assertEqual(m.energy_wh(), 1234567)
        self.assertIsInstance(m.energy_wh(), int)
        self.assertIsNone(m.value("Temperature"))
        got = {(s[0], s[1]): (s[2], s[3]) for s in m.sampled()}
        self.assertEqual(len(got), 13)
        self.assertEqual(got[(meters.ENERGY_IMPORT, None)], ("Wh", 1234567))
        self.assertEqual(got[(meters.VOLTAGE, "L1-N")][0], "V")
        self.assertEqual(got[(meters.FREQUENCY, None)][0], None)
        only = list(m.sampled((meters.ENERGY_IMPORT, meters.POWER_IMPORT)))
        self.assertEqual(sorted(s[0] for s in only), [meters.ENERGY_IMPORT] + [meters.POWER_IMPORT] * 4)

    def test_sdm120_single_phase(self):
        m = self.meter({(meters.VOLTAGE, 1): 229.5, (meters.ENERGY_IMPORT, 0): 0.5}, model=meters.SDM120)
        update(m)
        self.assertEqual(m.energy_wh(), 500)
        self.assertEqual(len(list(m.sampled())), 6)
        self.assertEqual(m.value(meters.VOLTAGE, 1), 229.5)

    def test_stale_reading_is_never_handed_out(self):
        m = self.meter({(meters.ENERGY_IMPORT, 0): 1.0}, stale_ms=5000)
        self.assertIsNone(m.age_ms())
        self.assertFalse(m.fresh())
        self.assertIsNone(m.energy_wh())  # never read
        update(m)
        self.assertTrue(m.fresh())
        self.clock.advance(4990)
        self.assertEqual(m.energy_wh(), 1000)
        self.clock.advance(20)
        self.assertGreater(m.age_ms(), 5000)
        self.assertIsNone(m.energy_wh())
        self.assertEqual(list(m.sampled()), [])

    def test_meter_loss_is_a_fault_after_fail_limit_and_clears(self):
        m = self.meter({(meters.ENERGY_IMPORT, 0): 2.0}, fail_limit=3)
        update(m)
        self.line.cut = True
        self.assertIsNone(update(m))
        self.assertIsNone(update(m))
        self.assertEqual(update(m), EV_FAULT)
        self.assertEqual(m.fault, F_METER_LOST)
        self.assertEqual(type(m.last_error).__name__, "ModbusTimeout")
        self.assertIsNone(update(m))  # reported once
        self.line.cut = False
        self.assertEqual(update(m), EV_CLEARED)
        self.assertIsNone(m.fault)
        self.assertEqual(m.energy_wh(), 2000)

    def test_failed_update_keeps_the_previous_reading_whole(self):
        m = self.meter({(meters.VOLTAGE, 1): 230.0, (meters.ENERGY_IMPORT, 0): 3.0})
        update(m)
        taken = m.taken
        self.slave.mm.values[(meters.VOLTAGE, 1)] = 240.0
        self.slave.mm.values[(meters.ENERGY_IMPORT, 0)] = 4.0
        self.slave.exception = None
        # first block answers, second is refused: nothing of the new reading
        # may leak into the values
        orig = self.slave._answer

        def refuse_second(req):
            if req[3] == 0x34:
                self.slave.exception = 4
            orig(req)
            self.slave.exception = None

        self.slave._answer = refuse_second
        update(m)
        self.assertEqual(m.taken, taken)
        self.assertEqual(m.value(meters.VOLTAGE, 1), 230.0)
        self.assertEqual(m.energy_wh(), 3000)
        self.assertEqual(m.last_error.args[0], 4)

    def test_not_a_number_is_a_failed_read(self):
        m = self.meter({(meters.ENERGY_IMPORT, 0): float("nan")}, fail_limit=1)
        self.assertEqual(update(m), EV_FAULT)
        self.assertIsNone(m.energy_wh())

    def test_simulated_electricity(self):
        clock = FakeClock(1000)
        ev = SimEV(demand_a=10.0, phases=1)
        ev.plugged = True
        ev.requesting = True
        mm = MeterModel(clock, ev=ev, phases=3)
        master = ModbusMaster(SimModbusPort(meters.SDM630, mm), ticks=clock, sleep_ms=fake_sleep(clock))
        m = Meter(master, meters.SDM630, ticks=clock)
        asyncio.run(m.update())
        self.assertEqual(m.value(meters.CURRENT_IMPORT, 1), 10.0)
        self.assertEqual(m.value(meters.CURRENT_IMPORT, 2), 0.0)
        self.assertAlmostEqual(m.value(meters.POWER_IMPORT), 2277.0, delta=0.1)
        clock.advance(3600000)  # an hour at 2277 W
        asyncio.run(m.update())
        self.assertAlmostEqual(m.energy_wh(), 2277, delta=1)


class BrokenPort:
    def write(self, buf):
        raise OSError(5)

    def readinto(self, buf):
        raise OSError(5)


@unittest.skipIf(asyncio is None, "no asyncio")
class PortFailureTest(unittest.TestCase):
    def test_a_failing_port_is_a_failed_update(self):
        clock = FakeClock(0)
        master = ModbusMaster(BrokenPort(), ticks=clock, sleep_ms=fake_sleep(clock))
        m = Meter(master, meters.SDM120, fail_limit=1, ticks=clock)
        self.assertEqual(update(m), EV_FAULT)
        self.assertEqual(m.fault, F_METER_LOST)
        self.assertIsInstance(m.last_error, OSError)
