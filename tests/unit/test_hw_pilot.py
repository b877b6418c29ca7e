import unittest

from firmware.hw import EV_CLEARED, EV_FAULT, F_PILOT_DIODE, F_PILOT_SHORT, F_PILOT_STUCK, pilot, status
from firmware.hw.pilot import AdcSampler, Pilot
from firmware.hw.sim import SimEV, SimPilotHw, SimPWM
from tests.hwfakes import FakeADC


class Levels:
    """A sampler returning whatever the test sets."""

    def __init__(self, hi=12000, lo=12000):
        self.hi = hi
        self.lo = lo

    def measure(self):
        return (self.hi, self.lo)


class DutyTest(unittest.TestCase):
    def test_duty_cycle_formula(self):
        # 6-51 A: A / 0.6 %; 51-80 A: A / 2.5 + 64 %  (in 0.1 %)
        cases = {6: 100, 10: 167, 13: 217, 16: 267, 20: 333, 32: 533, 40: 667, 51: 850, 52: 848, 63: 892, 80: 960}
        for amps, permille in cases.items():
            self.assertEqual(pilot.duty_permille(amps), permille, amps)
        self.assertEqual(pilot.duty_permille(16.5), 275)
        self.assertEqual(pilot.duty_permille(100), 960)  # capped at 80 A
        self.assertIsNone(pilot.duty_permille(5.9))
        self.assertIsNone(pilot.duty_permille(0))

    def test_ev_side_reading_inverts_it(self):
        for amps in (6, 10, 16, 25, 32, 48, 51, 55, 63, 70, 80):
            self.assertAlmostEqual(pilot.current_for_duty(pilot.duty_permille(amps)), amps, delta=0.3)
        self.assertEqual(pilot.current_for_duty(50), 0)  # 5 %: digital communication
        self.assertEqual(pilot.current_for_duty(75), 0)  # 7.5 %: not allowed
        self.assertEqual(pilot.current_for_duty(90), 6.0)
        self.assertEqual(pilot.current_for_duty(970), 80.0)
        self.assertEqual(pilot.current_for_duty(1000), 0)

    def test_pwm_output(self):
        pwm = SimPWM()
        p = Pilot(pwm, Levels())
        self.assertEqual(pwm.hz, 1000)
        self.assertEqual(pwm.duty, 65535)  # +12 V, nothing offered
        self.assertEqual(p.set_current(32), 32)
        self.assertEqual(pwm.duty, (533 * 65535 + 500) // 1000)
        self.assertTrue(p.offering())
        self.assertEqual(p.set_current(90), 80)
        self.assertEqual(p.permille, 960)
        self.assertEqual(p.set_current(4), 0)
        self.assertEqual(pwm.duty, 65535)
        self.assertFalse(p.offering())
        p.set_unavailable()
        self.assertEqual(pwm.duty, 0)


class ClassifyTest(unittest.TestCase):
    def test_nominal_levels(self):
        for mv, state in ((12000, "A"), (9000, "B"), (6000, "C"), (3000, "D"), (0, "E"), (-12000, "F")):
            self.assertEqual(pilot.STATES[pilot.classify(mv)], state)

    def test_band_edges(self):
        # the +-1 V tolerance of each level lands in its state
        for mv, state in ((11000, "A"), (10000, "B"), (8000, "B"), (7000, "C"), (5000, "C"), (4000, "D"), (2000, "D")):
            self.assertEqual(pilot.STATES[pilot.classify(mv)], state, mv)

    def test_hysteresis(self):
        b = pilot.STATES.index("B")
        self.assertEqual(pilot.classify(10700, b, 400), b)  # not far enough above 10.5 V
        self.assertEqual(pilot.classify(11000, b, 400), 0)
        self.assertEqual(pilot.classify(7200, b, 400), b)
        self.assertEqual(pilot.classify(7000, b, 400), 2)
        self.assertEqual(pilot.classify(3000, b, 400), 3)  # a jump past a neighbour


class PilotStateTest(unittest.TestCase):
    def setUp(self):
        self.ev = SimEV()
        self.hw = SimPilotHw(self.ev)
        self.p = Pilot(self.hw.pwm, self.hw, confirm=2)

    def events(self, n=3):
        out = []
        for _ in range(n):
            e = self.p.poll()
            if e is not None:
                out.append(e)
        return out

    def test_a_charging_session(self):
        self.assertEqual(self.events(), [])
        self.ev.plugged = True
        self.assertIsNone(self.p.poll())  # seen once: not yet confirmed
        self.assertEqual(self.p.poll(), "B")
        self.p.set_current(16)
        self.ev.requesting = True
        self.assertEqual(self.events(), ["C"])
        self.ev.ventilation = True
        self.assertEqual(self.events(), ["D"])
        self.ev.requesting = False
        self.assertEqual(self.events(), ["B"])
        self.ev.plugged = False
        self.assertEqual(self.events(), ["A"])
        self.assertIsNone(self.p.fault)

    def test_single_glitch_is_not_a_state(self):
        lv = Levels(12000, 12000)
        p = Pilot(SimPWM(), lv, confirm=2)
        p.poll()
        lv.hi = 6000
        self.assertIsNone(p.poll())
        lv.hi = 12000
        self.assertIsNone(p.poll())
        lv.hi = 6000
        self.assertIsNone(p.poll())
        self.assertEqual(p.state, "A")

    def test_state_e_is_a_short(self):
        self.ev.plugged = True
        self.events()
        self.ev.short = True
        self.assertEqual(self.events(), ["E"])
        self.assertEqual(self.p.fault, F_PILOT_SHORT)
        self.ev.short = False
        self.assertEqual(self.events(), ["B"])
        self.assertIsNone(self.p.fault)

    def test_state_f(self):
        self.p.set_unavailable()
        self.assertEqual(self.events(), ["F"])
        self.assertIsNone(self.p.fault)  # we asked for it
        lv = Levels(-12000, -12000)
        p = Pilot(SimPWM(), lv, confirm=1)
        self.assertEqual(p.poll(), "F")
        self.assertEqual(p.fault, F_PILOT_STUCK)

    def test_missing_diode_under_pwm(self):
        self.ev.plugged = True
        self.ev.diode = False
        self.assertEqual(self.events(), ["B"])
        self.assertIsNone(self.p.fault)  # no PWM yet: nothing to check
        self.p.set_current(16)
        self.assertEqual(self.p.poll(), EV_FAULT)
        self.assertEqual(self.p.fault, F_PILOT_DIODE)
        self.p.set_current(0)
        self.assertEqual(self.p.poll(), EV_CLEARED)

    def test_adc_sampler(self):
        # 12-bit-in-16 ADC behind a divider: 0 V pilot at raw 30000,
        # 0.5 mV per count; a PWM wave seen as a mix of both plateaus
        adc = FakeADC([48000, 48000, 6000, 6000, 6000])
        s = AdcSampler(adc, zero_raw=30000, mv_per_kcount=500, samples=10)
        self.assertEqual(s.measure(), (9000, -12000))
        self.assertEqual(adc.i, 10)


class StatusTest(unittest.TestCase):
    def test_connector_status_table(self):
        cs = status.connector_status
        self.assertEqual(cs("A", 0, False), "Available")
        self.assertEqual(cs("B", 0, False), "Preparing")
        self.assertEqual(cs("C", 0, True), "Preparing")
        self.assertEqual(cs("B", 1, True), "SuspendedEV")
        self.assertEqual(cs("C", 1, True), "Charging")
        self.assertEqual(cs("D", 1, True), "Charging")
        self.assertEqual(cs("C", 1, False), "SuspendedEVSE")
        self.assertEqual(cs("B", 2, False), "Finishing")
        self.assertEqual(cs("A", 1, True), "SuspendedEV")
        self.assertEqual(cs("E", 1, True), "Faulted")
        self.assertEqual(cs("F", 0, False), "Faulted")

    def test_fault_table(self):
        from firmware import hw

        faults = [getattr(hw, n) for n in dir(hw) if n.startswith("F_")]
        self.assertEqual(sorted(faults), sorted(status.FAULTS.keys()))
        codes = (
            "ConnectorLockFailure EVCommunicationError GroundFailure HighTemperature InternalError "
            "LocalListConflict NoError OtherError OverCurrentFailure OverVoltage PowerMeterFailure "
            "PowerSwitchFailure ReaderFailure ResetFailure UnderVoltage WeakSignal"
        ).split()
        for f in faults:
            self.assertIn(status.error_code(f), codes)
        self.assertEqual(status.error_code(None), "NoError")
        self.assertEqual(status.error_code(hw.F_WELD), "PowerSwitchFailure")
        self.assertTrue(status.is_faulted(hw.F_WELD))
        self.assertFalse(status.is_faulted(hw.F_CLOSE_FAILED))
        self.assertEqual(status.error_code(hw.F_METER_LOST), "PowerMeterFailure")
        self.assertEqual(status.error_code(hw.F_LOCK_FAILED), "ConnectorLockFailure")
        self.assertEqual(status.error_code(hw.F_READER_FAILED), "ReaderFailure")
        self.assertFalse(status.is_faulted(None))
        self.assertEqual(status.STATUS_201["SuspendedEVSE"], "Occupied")
