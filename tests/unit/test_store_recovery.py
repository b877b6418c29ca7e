import unittest

from firmware.store.recovery import RESUME, STOP, recover
from firmware.store.state import State
from firmware.store import records as R


def state_with(*opens, meters=()):
    st = State()
    for rec in opens:
        st.apply([R.K_TX_OPEN] + list(rec))
    for rec in meters:
        st.apply([R.K_METER] + list(rec))
    return st


class RecoverTest(unittest.TestCase):
    def test_a_cut_session_stops_at_the_last_checkpoint(self):
        st = state_with((1, 1, "TAG", 1000, 1700000000), meters=[(1, 1500, 1700000600), (1, 1620, 1700000660)])
        self.assertEqual(recover(st, lambda c: False), [(STOP, 1, 1, "PowerLoss", 1620, 1700000660, "TAG")])

    def test_without_a_checkpoint_the_start_reading_is_the_stop_reading(self):
        st = state_with((4, 2, "T2", 777, 1700000000))
        self.assertEqual(recover(st, lambda c: False), [(STOP, 4, 2, "PowerLoss", 777, 1700000000, "T2")])

    def test_a_session_the_hardware_still_runs_is_resumed(self):
        st = state_with((1, 1, "A", 0, 0), (2, 2, "B", 0, 0), meters=[(2, 50, 60)])
        actions = recover(st, lambda c: c == 2, reason="Reboot")
        self.assertEqual(actions, [(STOP, 1, 1, "Reboot", 0, 0, "A"), (RESUME, 2, 2)])

    def test_nothing_open_nothing_to_do(self):
        st = state_with((1, 1, "A", 0, 0))
        st.apply([R.K_TX_CLOSE, 1])
        self.assertEqual(recover(st, lambda c: False), [])

    def test_oldest_first(self):
        st = state_with((9, 1, "A", 0, 0), (3, 2, "B", 0, 0), (5, 3, "C", 0, 0))
        self.assertEqual([a[1] for a in recover(st, lambda c: False)], [3, 5, 9])
