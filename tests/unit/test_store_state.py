import unittest

from firmware.store import journal as J
from firmware.store import records as R
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
from tests.store_helpers import read_bytes, remove_tree, scratch_dir, write_bytes

START = {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": "2024-05-01T10:00:00Z"}


def meter_payload(wh):
    return {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:01:00Z",
                                               "sampledValue": [{"value": str(wh), "unit": "Wh"}]}]}


class StoreCase(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.path = self.dir + "/journal"
        self.stores = []

    def tearDown(self):
        for s in self.stores:
            s.close()
        remove_tree(self.dir)

    def store(self, **kw):
        s = Store(self.path, **kw)
        self.stores.append(s)
        self.problems = s.load()
        return s

    def reopen(self, s, **kw):
        s.close()
        return self.store(**kw)

    def busy_state(self, s):
        """A state with one of everything: open and closed transactions, an id
        learned, a Start given up, queued, parked, sent, config, availability."""
        q = TxQueue(s, attempts=1, retry_interval_s=10)
        a = s.open_tx(1, "A", 100, 1000)
        q.enqueue("StartTransaction", START, a, 0)
        d = q.next_due(0, True)
        q.sent(d[0], 0)
        q.on_result(d[0], {"transactionId": 41, "idTagInfo": {"status": "Accepted"}}, 0)
        s.meter(a, 150, 1060)
        b = s.open_tx(2, "B", 500, 1100)
        q.enqueue("StartTransaction", dict(START, connectorId=2), b, 0)
        d = q.next_due(0, True)
        q.sent(d[0], 0)
        q.on_error(d[0], 0)  # one attempt only: parked, b's id becomes -1
        q.enqueue("MeterValues", meter_payload(520), b, 0)
        q.enqueue("StopTransaction", {"meterStop": 530, "timestamp": "t", "reason": "Local"}, b, 0)
        s.close_tx(b)
        q.enqueue("MeterValues", meter_payload(170), a, 0)
        d = q.next_due(0, True)
        q.sent(d[0], 0)  # in flight when the power goes
        s.set_config("MeterValueSampleInterval", 30)
        s.set_config("HeartbeatInterval", 300)
        s.set_config("HeartbeatInterval", None)
        s.set_availability(2, False)
        s.set_availability(2, True)
        s.set_availability(1, False)
        return q


class StoreTest(StoreCase):
    def test_a_new_store_is_empty(self):
        s = self.store()
        self.assertEqual(self.problems, [])
        self.assertEqual(s.state.open, {})
        self.assertEqual(s.state.order, [])
        self.assertEqual(s.stats()["bytes"], 0)

    def test_everything_comes_back_after_a_restart(self):
        s = self.store()
        self.busy_state(s)
        before = s.state.snapshot()
        s = self.reopen(s)
        self.assertEqual(self.problems, [])
        self.assertEqual(s.state.snapshot(), before)
        st = s.state
        self.assertEqual(sorted(st.open), [1])
        self.assertEqual(st.open[1], [1, "A", 100, 1000, 150, 1060])
        self.assertEqual(st.tx_ids, {1: 41, 2: -1})
        self.assertEqual(st.config, {"MeterValueSampleInterval": 30})
        self.assertEqual(st.availability, {1: False, 2: True})
        self.assertEqual(st.parked_seqs(), [2])
        self.assertEqual(st.order, [3, 4, 5])
        self.assertEqual(sorted(st.sent), [3])
        self.assertEqual(st.local_for(41), 1)
        self.assertIsNone(st.local_for(-1))

    def test_compaction_keeps_exactly_the_live_state(self):
        s = self.store()
        self.busy_state(s)
        before = s.state.snapshot()
        size = s.journal.size()
        s.compact()
        self.assertLess(s.journal.size(), size)
        self.assertEqual(s.state.snapshot(), before)
        s = self.reopen(s)
        self.assertEqual(s.state.snapshot(), before)

    def test_compaction_forgets_what_is_finished(self):
        s = self.store()
        q = TxQueue(s)
        for i in range(5):
            local = s.open_tx(1, "T%d" % i, i, i)
            for action in ("StartTransaction", "StopTransaction"):
                seq = q.enqueue(action, START, local, 0)
                q.sent(seq, 0)
                q.on_result(seq, {"transactionId": 100 + i}, 0)
            s.close_tx(local)
        s.compact()
        recs = list(J.Journal(self.path).replay(self.fail))
        self.assertEqual(recs, [[R.K_COUNTERS, 11, 6]])
        s = self.reopen(s)
        self.assertEqual(s.state.tx_ids, {})
        self.assertEqual((s.state.next_seq, s.state.next_local), (11, 6))
        self.assertEqual(s.open_tx(1, "X", 0, 0), 6)  # ids are never reused

    def test_compaction_runs_by_itself_when_the_file_grows(self):
        s = self.store(compact_bytes=2000)
        local = s.open_tx(1, "A", 0, 0)
        for i in range(500):
            s.meter(local, i, i)
        self.assertGreaterEqual(s.journal.compactions, 3)
        self.assertLessEqual(s.journal.size(), 2000 + 40)
        s = self.reopen(s)
        self.assertEqual(s.state.open[local], [1, "A", 0, 0, 499, 499])

    def test_a_torn_tail_is_reported_then_repaired(self):
        s = self.store()
        local = s.open_tx(1, "A", 0, 0)
        s.meter(local, 10, 10)
        s.meter(local, 20, 20)
        s.close()
        data = read_bytes(self.path)
        write_bytes(self.path, data[:-3])
        s = self.store()
        self.assertEqual([p[0] for p in self.problems], [J.P_TORN])
        self.assertEqual(s.state.open[local][4:], [10, 10])
        s.meter(local, 30, 30)  # appended after the repair, not glued to garbage
        s = self.reopen(s)
        self.assertEqual(self.problems, [])
        self.assertEqual(s.state.open[local][4:], [30, 30])

    def test_unknown_and_malformed_records_are_reported_and_dropped(self):
        j = J.Journal(self.path)
        j.append([R.K_TX_OPEN, 1, 1, "A", 0, 0])
        j.append([99, "from a newer firmware"])
        j.append([R.K_METER])  # too short
        j.append([R.K_QUEUED, 1, 0, "not bytes", None, 0])
        j.append([R.K_METER, 1, 5, 5])
        j.close()
        s = self.store()
        self.assertEqual([p[0] for p in self.problems], [J.P_KIND] * 3)
        self.assertIn("99", J.problem_text(self.problems[0]))
        self.assertEqual(s.state.open, {1: [1, "A", 0, 0, 5, 5]})
        s = self.reopen(s)
        self.assertEqual(self.problems, [])

    def test_unsynced_store_says_so(self):
        s = self.store(sync=False)
        s.open_tx(1, "A", 0, 0)
        stats = s.stats()
        self.assertFalse(stats["synced"])
        self.assertEqual(stats["syncs"], 0)
        self.assertEqual(stats["open_tx"], 1)
