import unittest

from firmware.store.state import Store
from firmware.store.txqueue import PARKED, RETRY, TxQueue
from tests.store_helpers import ALL, HALF, NONE, CrashFiles, PowerCut, remove_tree, scratch_dir
from tests.support import FakeClock

S = 1000  # ms per second

START = {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": "2024-05-01T10:00:00Z"}


def meter(wh):
    return {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:%02d:00Z" % (wh % 60),
                                               "sampledValue": [{"value": str(wh), "unit": "Wh",
                                                                 "measurand": "Energy.Active.Import.Register"}]}]}


def stop(wh):
    return {"idTag": "TAG", "meterStop": wh, "timestamp": "2024-05-01T11:00:00Z", "reason": "Local"}


class QueueCase(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.path = self.dir + "/journal"
        self.clock = FakeClock(0)
        self.stores = []
        self.boot()

    def tearDown(self):
        for s in self.stores:
            s.close()
        remove_tree(self.dir)

    def boot(self, attempts=3, interval=60, **kw):
        """A fresh agent over the same journal (a restart)."""
        for s in self.stores:
            s.close()
        s = self.store = Store(self.path)
        self.stores.append(s)
        s.load()
        self.q = TxQueue(s, attempts, interval, **kw)
        return self.q

    def send(self, online=True):
        """Takes the due message and marks it sent; returns next_due's tuple."""
        d = self.q.next_due(self.clock(), online)
        if d is not None:
            self.q.sent(d[0], self.clock())
        return d

    def deliver(self, result=None):
        d = self.send()
        self.assertIsNotNone(d)
        self.q.on_result(d[0], result or {}, self.clock())
        return d


class OrderTest(QueueCase):
    def test_enqueued_message_is_on_disk_before_enqueue_returns(self):
        local = self.store.open_tx(1, "TAG", 100, 0)
        seq = self.q.enqueue("StartTransaction", START, local, 0)
        self.boot()
        self.assertEqual(self.q.next_due(0, True), (seq, "StartTransaction", START, 1))

    def test_messages_go_out_in_order_one_at_a_time(self):
        seqs = [self.q.enqueue("MeterValues", meter(i), None, 0) for i in range(4)]
        got = []
        while True:
            d = self.send()
            if d is None:
                break
            self.assertIsNone(self.q.next_due(0, True))  # one CALL in flight
            self.assertIsNone(self.q.wake_at())
            got.append(d[0])
            self.q.on_result(d[0], {}, 0)
        self.assertEqual(got, seqs)
        self.assertEqual(len(self.q), 0)

    def test_only_a_callresult_removes_a_message(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        self.assertIsNone(self.q.on_result(seq + 1, {}, 0))  # not the one in flight
        self.q.on_error(seq, 0)
        self.assertEqual(len(self.q), 1)
        self.clock.advance(60 * S)
        self.deliver()
        self.assertEqual(len(self.q), 0)
        self.boot()
        self.assertEqual(len(self.q), 0)

    def test_sending_other_than_the_head_is_refused(self):
        a = self.q.enqueue("MeterValues", meter(1), None, 0)
        with self.assertRaises(ValueError):
            self.q.sent(a + 1, 0)
        self.q.sent(a, 0)
        with self.assertRaises(ValueError):
            self.q.sent(a, 0)


class RetryTest(QueueCase):
    def test_attempts_and_growing_gaps(self):
        # TransactionMessageAttempts 3, RetryInterval 60 s: tries at 0, 60, 180 s, then given up.
        seq = self.q.enqueue("StopTransaction", stop(500), None, 0)
        tries = []
        for _ in range(3):
            while self.q.next_due(self.clock(), True) is None:
                self.clock.advance(S)
            d = self.send()
            tries.append((self.clock() // S, d[3]))
            outcome = self.q.on_error(seq, self.clock())
        self.assertEqual(tries, [(0, 1), (60, 2), (180, 3)])
        self.assertEqual(outcome, (PARKED, seq, "StopTransaction", None))
        self.assertEqual(len(self.q), 0)
        self.assertEqual(self.q.counters["retried"], 2)
        self.assertEqual(self.q.counters["parked"], 1)

    def test_retry_reports_when_it_is_due(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.clock.advance(5 * S)
        self.send()
        self.assertEqual(self.q.on_error(seq, self.clock()), (RETRY, seq, 65 * S))
        self.assertEqual(self.q.wake_at(), 65 * S)
        self.assertIsNone(self.q.next_due(65 * S - 1, True))
        self.assertEqual(self.q.next_due(65 * S, True)[3], 2)

    def test_each_try_is_a_new_call(self):
        # next_due returns a fresh tuple each try with its attempt number; the
        # agent gives each a new messageId.
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        first = self.send()
        self.q.on_timeout(seq, 0)
        self.clock.advance(60 * S)
        second = self.send()
        self.assertEqual((first[0], first[3]), (seq, 1))
        self.assertEqual((second[0], second[3]), (seq, 2))
        self.assertEqual(first[2], second[2])

    def test_a_timeout_counts_like_a_callerror(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        for i in range(3):
            self.send()
            out = self.q.on_timeout(seq, self.clock())
            self.clock.advance(600 * S)
        self.assertEqual(out[0], PARKED)
        self.assertEqual(self.q.counters["timeouts"], 3)
        # The CSMS may have had it each time: resends after a timeout are possible duplicates.
        self.assertEqual(self.q.counters["duplicates_possible"], 2)

    def test_later_messages_wait_behind_a_retrying_one(self):
        a = self.q.enqueue("MeterValues", meter(1), None, 0)
        b = self.q.enqueue("MeterValues", meter(2), None, 0)
        self.send()
        self.q.on_error(a, 0)
        self.assertIsNone(self.q.next_due(30 * S, True))
        self.clock.advance(60 * S)
        self.assertEqual(self.deliver()[0], a)
        self.assertEqual(self.deliver()[0], b)

    def test_failed_tries_survive_a_restart(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        for _ in range(2):
            self.send()
            self.q.on_error(seq, self.clock())
            self.clock.advance(600 * S)
        self.boot()
        d = self.send()
        self.assertEqual(d[3], 3)
        self.assertEqual(self.q.on_error(seq, self.clock())[0], PARKED)

    def test_configuration_changes_apply_to_the_next_failure(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.q.configure(5, 10)
        self.send()
        self.assertEqual(self.q.on_error(seq, 0), (RETRY, seq, 10 * S))
        self.q.configure(0, -1)  # nonsense values: one try, no wait
        self.clock.advance(10 * S)
        self.send()
        self.assertEqual(self.q.on_error(seq, self.clock())[0], PARKED)


class OfflineTest(QueueCase):
    def test_nothing_is_sent_and_no_try_spent_while_offline(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        for t in range(0, 3600, 60):
            self.assertIsNone(self.q.next_due(t * S, False))
        self.assertEqual(self.q.next_due(3600 * S, True), (seq, "MeterValues", meter(1), 1))
        self.assertEqual(self.q.counters["sent"], 0)

    def test_connection_lost_in_flight_gives_the_try_back(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        self.q.on_disconnect(5 * S)
        self.assertIsNone(self.q.next_due(6 * S, False))
        d = self.q.next_due(7 * S, True)
        self.assertEqual((d[0], d[3]), (seq, 1))
        self.q.sent(seq, 7 * S)
        self.assertEqual(self.q.counters["duplicates_possible"], 1)
        self.assertEqual(self.q.counters["disconnects"], 1)
        # The old try's late answer is for a CALL that is gone: the new one is in flight.
        self.q.on_result(seq, {}, 8 * S)
        self.assertEqual(len(self.q), 0)

    def test_a_power_cut_in_flight_makes_the_resend_a_possible_duplicate(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        self.boot()
        d = self.send()
        self.assertEqual((d[0], d[3]), (seq, 1))
        self.assertEqual(self.q.counters["duplicates_possible"], 1)

    def test_a_callerror_means_the_resend_is_no_duplicate(self):
        seq = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        self.q.on_error(seq, 0)
        self.boot()
        self.send()
        self.assertEqual(self.q.counters["duplicates_possible"], 0)
        self.assertEqual(self.q.counters["retried"], 1)


class TransactionIdTest(QueueCase):
    def offline_session(self):
        # Start, two meter values and Stop, all queued before the Start was answered.
        local = self.store.open_tx(1, "TAG", 100, 0)
        self.q.enqueue("StartTransaction", START, local, 0)
        self.q.enqueue("MeterValues", meter(150), local, 0)
        self.q.enqueue("MeterValues", meter(190), local, 0)
        self.q.enqueue("StopTransaction", stop(200), local, 0)
        self.store.close_tx(local)
        return local

    def test_the_real_transaction_id_is_put_in_at_send_time(self):
        local = self.offline_session()
        d = self.send()
        self.assertEqual(d[1], "StartTransaction")
        self.assertNotIn("transactionId", d[2])
        answer = {"transactionId": 777, "idTagInfo": {"status": "Accepted"}}
        self.assertEqual(self.q.on_result(d[0], answer, 0), ("StartTransaction", local, answer))
        self.assertEqual(self.store.state.transaction_id(local), 777)
        sent = [self.deliver() for _ in range(3)]
        self.assertEqual([d[1] for d in sent], ["MeterValues", "MeterValues", "StopTransaction"])
        self.assertEqual([d[2]["transactionId"] for d in sent], [777, 777, 777])
        self.assertEqual(sent[2][2]["meterStop"], 200)

    def test_the_learned_id_survives_a_restart(self):
        local = self.offline_session()
        self.deliver({"transactionId": 778})
        self.boot()
        self.assertEqual(self.send()[2]["transactionId"], 778)
        self.assertEqual(self.store.state.tx_ids, {local: 778})

    def test_minus_one_once_the_start_was_given_up(self):
        local = self.offline_session()
        for _ in range(3):
            d = self.send()
            self.assertEqual(d[1], "StartTransaction")
            self.q.on_error(d[0], self.clock())
            self.clock.advance(600 * S)
        self.assertEqual(self.store.state.transaction_id(local), -1)
        sent = [self.deliver() for _ in range(3)]
        self.assertEqual([d[2]["transactionId"] for d in sent], [-1, -1, -1])
        self.boot()
        self.assertEqual(self.store.state.tx_ids, {local: -1})

    def test_a_start_answer_without_an_integer_id_is_a_failed_try(self):
        local = self.offline_session()
        d = self.send()
        self.assertIsNone(self.q.on_result(d[0], {"idTagInfo": {"status": "Accepted"}}, 0))
        self.assertIsNone(self.store.state.transaction_id(local))
        self.assertEqual(self.q.wake_at(), 60 * S)

    def test_untied_messages_keep_their_payload(self):
        p = dict(meter(5), transactionId=12)
        self.q.enqueue("MeterValues", p, None, 0)
        self.assertEqual(self.send()[2], p)


class ParkedTest(QueueCase):
    def test_given_up_messages_are_kept_exportable_and_releasable(self):
        local = self.store.open_tx(1, "TAG", 100, 0)
        self.q.enqueue("StartTransaction", START, local, 0)
        self.deliver({"transactionId": 9})
        seq = self.q.enqueue("StopTransaction", stop(300), local, 0)
        for _ in range(3):
            self.send()
            self.q.on_error(seq, self.clock())
            self.clock.advance(600 * S)
        self.assertEqual(len(self.q), 0)
        exported = self.q.parked()
        self.assertEqual(exported, [(seq, "StopTransaction", dict(stop(300), transactionId=9), local, 3)])
        self.boot()
        self.assertEqual(self.q.parked(), exported)
        self.assertIsNone(self.q.next_due(self.clock(), True))
        self.q.release([seq, 12345])
        self.assertEqual(self.q.parked(), [])
        self.boot()
        self.assertEqual(self.q.parked(), [])


class BoundTest(QueueCase):
    def session(self, n):
        local = self.store.open_tx(1, "TAG", 100, 0)
        start = self.q.enqueue("StartTransaction", START, local, 0)
        mvs = [self.q.enqueue("MeterValues", meter(100 + i), local, 0) for i in range(n)]
        stop_seq = self.q.enqueue("StopTransaction", stop(100 + n), local, 0)
        return start, mvs, stop_seq

    def test_intermediate_meter_values_go_first_never_start_or_stop(self):
        self.boot(max_bytes=1200)
        start, mvs, stop_seq = self.session(40)
        st = self.store.state
        self.assertLessEqual(st.queue_bytes, 1200)
        order = st.order
        self.assertEqual((order[0], order[-1]), (start, stop_seq))
        self.assertIn(mvs[0], order)  # first and last readings stay
        self.assertIn(mvs[-1], order)
        kept = [s for s in mvs if s in order]
        self.assertEqual(self.q.counters["dropped"], 40 - len(kept))
        self.assertGreater(self.q.counters["dropped"], 10)
        # Thinning keeps the readings spread over the session.
        gaps = [b - a for a, b in zip(kept, kept[1:])]
        self.assertLessEqual(max(gaps), 2 * min(gaps))
        before = st.snapshot()
        self.boot(max_bytes=1200)
        self.assertEqual(self.store.state.snapshot(), before)

    def test_start_and_stop_are_kept_over_the_bound(self):
        self.boot(max_bytes=100)
        for i in range(5):
            local = self.store.open_tx(1, "T", i, i)
            self.q.enqueue("StartTransaction", START, local, 0)
            self.q.enqueue("StopTransaction", stop(i), local, 0)
        self.assertEqual(len(self.q), 10)
        self.assertGreater(self.q.counters["over_bound"], 0)
        self.assertEqual(self.q.counters["dropped"], 0)

    def test_the_message_in_flight_is_never_dropped(self):
        self.boot(max_bytes=400)
        first = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        for i in range(30):
            self.q.enqueue("MeterValues", meter(i), None, 0)
        self.assertIn(first, self.store.state.order)
        self.assertEqual(self.q.on_result(first, {}, 0)[0], "MeterValues")

    def test_parked_meter_values_go_before_queued_ones(self):
        self.boot(attempts=1, max_bytes=600)
        parked = self.q.enqueue("MeterValues", meter(1), None, 0)
        self.send()
        self.q.on_error(parked, 0)
        queued = [self.q.enqueue("MeterValues", meter(i), None, 0) for i in range(12)]
        self.assertNotIn(parked, self.store.state.msgs)
        self.assertEqual(self.store.state.order[0], queued[0])


class PowerCutTest(QueueCase):
    """A power cut between any two writes of a realistic run: after the
    restart the queue and the open transactions are exactly as they were
    after the last write that completed (or the one being written)."""

    prealloc = 0

    def scenario(self, store, q):
        clock = FakeClock(0)
        local = store.open_tx(1, "TAG", 100, 1000)
        q.enqueue("StartTransaction", START, local, clock())
        store.meter(local, 120, 1060)
        q.enqueue("MeterValues", meter(120), local, clock())
        d = q.next_due(clock(), True)
        q.sent(d[0], clock())
        q.on_error(d[0], clock())  # retry later
        store.meter(local, 150, 1120)
        q.enqueue("MeterValues", meter(150), local, clock())
        clock.advance(60 * S)
        d = q.next_due(clock(), True)
        q.sent(d[0], clock())
        q.on_result(d[0], {"transactionId": 55}, clock())
        d = q.next_due(clock(), True)
        q.sent(d[0], clock())
        q.on_disconnect(clock())
        store.set_config("MeterValueSampleInterval", 60)
        other = store.open_tx(2, "TAG2", 9000, 1200)
        q.enqueue("StartTransaction", dict(START, connectorId=2), other, clock())
        q.enqueue("StopTransaction", stop(180), local, clock())
        store.close_tx(local)
        for _ in range(4):
            d = q.next_due(clock(), True)
            q.sent(d[0], clock())
            q.on_result(d[0], {"transactionId": 56}, clock())
        store.set_availability(1, False)
        store.meter(other, 9100, 1300)

    def run_scenario(self, fs, snaps):
        # Runs the scenario; snaps gets the state after each completed write.
        s = Store(self.path, fs=fs, compact_bytes=300, prealloc=self.prealloc)
        try:
            s.load()
            q = TxQueue(s, 3, 60)
            write, write_many = s.write, s.write_many

            def counted(rec, sync=True):
                write(rec, sync)
                snaps.append(s.state.snapshot())

            def counted_many(recs):
                write_many(recs)
                snaps.append(s.state.snapshot())

            s.write, s.write_many = counted, counted_many
            snaps.append(s.state.snapshot())
            self.scenario(s, q)
            return s.journal.compactions
        finally:
            s.close()

    def test_cut_at_every_step(self):
        import os

        def reset():
            for name in os.listdir(self.dir):
                os.remove(self.dir + "/" + name)

        self.store.close()
        reset()
        dry = CrashFiles()
        ref = []
        self.assertGreater(self.run_scenario(dry, ref), 0)  # the run crosses compactions too
        for at in range(1, dry.steps + 1):
            for torn in (NONE, HALF, ALL):
                reset()
                snaps = []
                try:
                    self.run_scenario(CrashFiles(at, torn), snaps)
                    self.fail("no cut")
                except PowerCut:
                    pass
                done = len(snaps) - 1  # writes that returned before the cut
                s = Store(self.path)
                self.stores.append(s)
                s.load()
                got = s.state.snapshot()
                s.close()
                self.assertEqual(snaps, ref[: done + 1])
                self.assertTrue(got in ref[done : done + 2], "step %d torn %d: %d writes done" % (at, torn, done))


class PreallocPowerCutTest(PowerCutTest):
    prealloc = 128
