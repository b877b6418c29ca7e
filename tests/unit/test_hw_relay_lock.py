import unittest

from firmware.hw import (
    EV_CLOSED,
    EV_FAULT,
    EV_LOCKED,
    EV_OPENED,
    EV_UNLOCKED,
    F_CLOSE_FAILED,
    F_DROPOUT,
    F_LOCK_FAILED,
    F_UNLOCK_FAILED,
    F_WELD,
)
from firmware.hw.lock import ConnectorLock
from firmware.hw.relay import Contactor
from firmware.hw.sim import SimContactorHw, SimLockHw, SimPin
from tests.support import FakeClock


def poll_until_event(driver, clock, step=10, limit=1000):
    """(event, ms it took) of the first event, advancing the fake clock."""
    start = clock.ms
    for _ in range(limit):
        ev = driver.poll()
        if ev is not None:
            return ev, clock.ms - start
        clock.advance(step)
    return None, clock.ms - start


class ContactorTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.hw = SimContactorHw(self.clock, operate_ms=30)
        self.relay = Contactor(self.hw.coil, self.hw.aux, verify_ms=200, ticks=self.clock)

    def test_close_and_open_are_confirmed_by_the_feedback(self):
        self.assertEqual(self.hw.coil.level, 0)
        self.assertTrue(self.relay.close())
        self.assertEqual(self.hw.coil.level, 1)
        self.assertFalse(self.relay.is_closed())  # not yet confirmed
        self.assertEqual(poll_until_event(self.relay, self.clock), (EV_CLOSED, 30))
        self.assertTrue(self.relay.is_closed())
        self.relay.open()
        self.assertEqual(self.hw.coil.level, 0)
        self.assertEqual(poll_until_event(self.relay, self.clock), (EV_OPENED, 30))
        self.assertIsNone(self.relay.fault)

    def test_failing_to_close_releases_the_coil(self):
        self.hw.stuck_open = True
        self.relay.close()
        self.assertEqual(poll_until_event(self.relay, self.clock), (EV_FAULT, 200))
        self.assertEqual(self.relay.fault, F_CLOSE_FAILED)
        self.assertEqual(self.hw.coil.level, 0)
        self.assertFalse(self.relay.is_closed())
        # the next attempt may try again, and succeeds once the fault is gone
        self.hw.stuck_open = False
        self.assertTrue(self.relay.close())
        self.assertIsNone(self.relay.fault)
        self.assertEqual(poll_until_event(self.relay, self.clock)[0], EV_CLOSED)

    def test_weld_on_opening_is_latched(self):
        self.relay.close()
        poll_until_event(self.relay, self.clock)
        self.hw.welded = True
        self.relay.open()
        self.assertEqual(poll_until_event(self.relay, self.clock), (EV_FAULT, 200))
        self.assertEqual(self.relay.fault, F_WELD)
        self.assertFalse(self.relay.close())  # refused while welded
        self.assertEqual(self.hw.coil.level, 0)
        self.assertIsNone(poll_until_event(self.relay, self.clock, limit=50)[0])  # reported once
        self.assertFalse(self.relay.clear_fault())  # still closed
        self.hw.welded = False
        self.assertTrue(self.relay.clear_fault())
        self.assertTrue(self.relay.close())

    def test_weld_seen_while_idle_after_debounce(self):
        self.hw.welded = True  # contacts snap shut while nothing is commanded
        self.assertIsNone(self.relay.poll())
        self.clock.advance(190)
        self.assertIsNone(self.relay.poll())
        self.clock.advance(10)
        self.assertEqual(self.relay.poll(), EV_FAULT)
        self.assertEqual(self.relay.fault, F_WELD)

    def test_contact_bounce_shorter_than_verify_is_ignored(self):
        self.hw.welded = True
        self.relay.poll()
        self.clock.advance(50)
        self.hw.welded = False
        self.assertIsNone(self.relay.poll())
        self.clock.advance(500)
        self.assertIsNone(self.relay.poll())
        self.assertIsNone(self.relay.fault)

    def test_dropout_while_closed(self):
        self.relay.close()
        poll_until_event(self.relay, self.clock)
        self.hw.stuck_open = True  # coil supply lost: contacts fall open
        self.assertEqual(poll_until_event(self.relay, self.clock)[0], EV_FAULT)
        self.assertEqual(self.relay.fault, F_DROPOUT)
        self.assertEqual(self.hw.coil.level, 0)
        self.assertEqual(self.relay.commanded, 0)

    def test_inverted_levels(self):
        coil = SimPin(1)
        fb = SimPin(1)  # closed_level 0: open contact reads 1 (pull-up)
        r = Contactor(coil, fb, closed_level=0, coil_on=0, ticks=self.clock)
        self.assertEqual(coil.level, 1)  # released
        r.close()
        self.assertEqual(coil.level, 0)
        fb.level = 0
        self.assertEqual(r.poll(), EV_CLOSED)

    def test_without_feedback_commands_are_trusted(self):
        coil = SimPin(0)
        r = Contactor(coil, None, ticks=self.clock)
        r.close()
        self.assertEqual(r.poll(), EV_CLOSED)
        r.open()
        self.assertEqual(r.poll(), EV_OPENED)


class LockTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.hw = SimLockHw(self.clock, travel_ms=150)
        self.lock = ConnectorLock(
            self.hw.lock_pin, self.hw.unlock_pin, self.hw.feedback, pulse_ms=300, verify_ms=1000, ticks=self.clock
        )

    def test_lock_and_unlock_with_a_motor_pulse(self):
        self.lock.lock()
        self.assertEqual((self.hw.lock_pin.level, self.hw.unlock_pin.level), (1, 0))
        self.clock.advance(290)
        self.assertIsNone(self.lock.poll())  # the pulse runs in full
        self.assertEqual(self.hw.lock_pin.level, 1)
        self.clock.advance(10)
        self.assertEqual(self.lock.poll(), EV_LOCKED)
        self.assertEqual(self.hw.lock_pin.level, 0)
        self.assertEqual(self.lock.is_locked(), 1)
        self.lock.unlock()
        self.assertEqual((self.hw.lock_pin.level, self.hw.unlock_pin.level), (0, 1))
        self.assertEqual(poll_until_event(self.lock, self.clock), (EV_UNLOCKED, 300))
        self.assertEqual(self.hw.unlock_pin.level, 0)

    def test_jammed_lock_is_retried_then_faulted(self):
        self.hw.jammed = True
        self.lock.lock()
        ev, ms = poll_until_event(self.lock, self.clock)
        self.assertEqual(ev, EV_FAULT)
        self.assertEqual(ms, 2000)  # two tries of verify_ms
        self.assertEqual(self.lock.fault, F_LOCK_FAILED)
        self.assertEqual(self.hw.lock_pin.level, 0)

    def test_retry_can_succeed(self):
        self.hw.jammed = True
        self.lock.lock()
        for _ in range(110):
            self.lock.poll()
            self.clock.advance(10)
        self.hw.jammed = False  # freed during the second try
        self.assertEqual(poll_until_event(self.lock, self.clock)[0], EV_LOCKED)
        self.assertIsNone(self.lock.fault)

    def test_unlock_failure(self):
        self.lock.lock()
        poll_until_event(self.lock, self.clock)
        self.hw.jammed = True
        self.lock.unlock()
        self.assertEqual(poll_until_event(self.lock, self.clock)[0], EV_FAULT)
        self.assertEqual(self.lock.fault, F_UNLOCK_FAILED)
        self.hw.jammed = False
        self.lock.unlock()  # trying again clears the fault
        self.assertIsNone(self.lock.fault)
        self.assertEqual(poll_until_event(self.lock, self.clock)[0], EV_UNLOCKED)

    def test_forced_open_while_locked(self):
        self.lock.lock()
        poll_until_event(self.lock, self.clock)
        self.hw.position = 0  # someone pulled the plug out of the lock
        self.assertIsNone(self.lock.poll())
        self.clock.advance(1000)
        self.assertEqual(self.lock.poll(), EV_FAULT)
        self.assertEqual(self.lock.fault, F_LOCK_FAILED)

    def test_hold_type_actuator(self):
        hw = SimLockHw(self.clock, travel_ms=100, hold=True)
        lock = ConnectorLock(hw.lock_pin, None, hw.feedback, verify_ms=500, ticks=self.clock)
        lock.lock()
        self.assertEqual(hw.lock_pin.level, 1)
        self.assertEqual(poll_until_event(lock, self.clock), (EV_LOCKED, 100))
        self.assertEqual(hw.lock_pin.level, 1)  # held
        lock.unlock()
        self.assertEqual(hw.lock_pin.level, 0)
        self.assertEqual(poll_until_event(lock, self.clock), (EV_UNLOCKED, 100))
