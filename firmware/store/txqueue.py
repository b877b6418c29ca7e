# The transaction-message queue (OCPP 1.6 §3.7, §4.8, §4.10 and the 1.6
# errata), as a sans-I/O state machine over a Store. No clock, no socket: the
# agent passes the time in and does the sending.
#
# - A message is persisted (journal synced) before enqueue() returns, so it
#   exists on disk before it can go on the wire.
# - Messages go out in enqueue order, one CALL in flight; a new message waits
#   behind older ones.
# - Only a CALLRESULT removes a message (K_DELIVERED).
# - A CALLERROR, or no answer within the agent's timeout on a live connection,
#   is a failed try. After n failed tries the next waits
#   TransactionMessageRetryInterval * n (3 tries / 60 s: 60 s, 120 s, then
#   given up). A timeout counts like a CALLERROR (C16 §4.8, §4.10 name a
#   missing .conf as a reason to retry; J16E §3.3 only defines CallError as
#   "failure to process").
# - While offline (or before BootNotification is accepted, C16 §4.2.1)
#   next_due() returns nothing and no try is spent; a connection lost with a
#   CALL in flight gives that try back (it may have reached the CSMS: the
#   resend is counted as a possible duplicate).
# - Every message next_due() returns is a new CALL: give it a new messageId
#   (attempt_no > 1 says it is a retry).
# - A StopTransaction or MeterValues of a transaction gets the CSMS's
#   transactionId at send time; -1 once that transaction's StartTransaction
#   was given up (C16E §3.18), and -1 if no StartTransaction was ever queued.
# - After the last try a message leaves the send queue (§3.7) but is kept in
#   the journal as parked: parked() lists them for export, release() drops them.
# - Size bound: when queued and parked payloads pass max_bytes, MeterValues
#   are dropped: parked ones first, then intermediate readings of a
#   transaction, thinned evenly (first and last kept), then the rest.
#   StartTransaction, StopTransaction and other actions never are.
from firmware import compat
from firmware.compat import const
from firmware.store import records as R
from firmware.store.state import ENTRY_OVERHEAD

QUEUE_BYTES = const(32768)

RETRY = const(1)  # on_error/on_timeout: (RETRY, seq, due_ms)
PARKED = const(2)  # on_error/on_timeout: (PARKED, seq, action, local_tx)

_SUBSTITUTE = (R.STOP, R.METER_VALUES)


class TxQueue:
    def __init__(self, store, attempts=3, retry_interval_s=60, max_bytes=QUEUE_BYTES):
        self.store = store
        self.state = store.state
        self.configure(attempts, retry_interval_s)
        self.max_bytes = max_bytes
        self.in_flight = None
        self.due_ms = None  # earliest time for the head's next try; None: now
        # The payload of the newest message as enqueue() got it, until its
        # first try: spares decoding what was just encoded (seq, payload).
        self._fresh = None
        self.counters = {
            "enqueued": 0,
            "sent": 0,
            "retried": 0,
            "delivered": 0,
            "errors": 0,
            "timeouts": 0,
            "disconnects": 0,
            "parked": 0,
            "dropped": 0,
            "over_bound": 0,
            "duplicates_possible": 0,
        }

    def configure(self, attempts, retry_interval_s):
        """TransactionMessageAttempts (below 1 counts as 1) and
        TransactionMessageRetryInterval (seconds); may change at run time."""
        self.attempts = attempts if attempts > 1 else 1
        self.retry_interval_ms = retry_interval_s * 1000 if retry_interval_s > 0 else 0

    def __len__(self):
        return len(self.state.order)

    # -- agent -> queue -------------------------------------------------------

    def enqueue(self, action, payload, local_tx, now_ms, pre=None, post=None):
        """Persists a message (synced) and returns its seq. local_tx ties it to
        a transaction for the transactionId (None: not tied). pre/post: records
        written in the same atomic frame before/after it (the transaction it
        opens, the close it means), so a power cut never splits them."""
        st = self.state
        seq = st.next_seq
        data = R.pack_payload(payload)
        recs = list(pre) if pre else []
        recs.append([R.K_QUEUED, seq, R.action_code(action), data, local_tx, 0])
        if post:
            recs.extend(post)
        victims = self._victims(len(data) + ENTRY_OVERHEAD)
        for s in victims:
            recs.append([R.K_DROPPED, s])
        self.store.write_many(recs)
        self._fresh = (seq, payload)
        self.counters["enqueued"] += 1
        self.counters["dropped"] += len(victims)
        return seq

    def next_due(self, now_ms, online):
        """(seq, action, payload, attempt_no) of the message to send now, or
        None. online: connected and BootNotification accepted."""
        st = self.state
        if not online or self.in_flight is not None or not st.order:
            return None
        if self.due_ms is not None and now_ms < self.due_ms:
            return None
        seq = st.order[0]
        m = st.msgs[seq]
        return (seq, m[0], self._payload(m, seq), m[3] + 1)

    def sent(self, seq, now_ms):
        """The agent put the CALL for seq on the wire."""
        st = self.state
        if self.in_flight is not None or not st.order or st.order[0] != seq:
            raise ValueError("seq %r is not the message due" % (seq,))
        c = self.counters
        if seq in st.sent:
            c["duplicates_possible"] += 1
        if st.msgs[seq][3]:
            c["retried"] += 1
        # Not synced: it only tells a later boot that the CSMS may have it.
        self.store.write([R.K_SENT, seq], False)
        if self._fresh is not None and self._fresh[0] == seq:
            self._fresh = None
        self.in_flight = seq
        self.due_ms = None
        c["sent"] += 1

    def on_result(self, seq, payload, now_ms):
        """A CALLRESULT for seq. Returns (action, local_tx, payload), or None
        if seq is not in flight. A StartTransaction's transactionId is learned."""
        if seq != self.in_flight:
            return None
        st = self.state
        m = st.msgs[seq]
        recs = []
        if m[0] == R.START and m[2] is not None:
            tid = payload.get("transactionId") if type(payload) is dict else None
            if not compat.is_int(tid):
                # The RPC layer should have refused it; a try that failed.
                self._failed(seq, now_ms, True)
                return None
            recs.append([R.K_TX_ID, m[2], tid])
        recs.append([R.K_DELIVERED, seq])
        self.store.write_many(recs)
        self.in_flight = None
        self.due_ms = None
        self.counters["delivered"] += 1
        return (m[0], m[2], payload)

    def on_error(self, seq, now_ms):
        """A CALLERROR for seq. Returns (RETRY, seq, due_ms) or
        (PARKED, seq, action, local_tx); None if seq is not in flight."""
        if seq != self.in_flight:
            return None
        self.counters["errors"] += 1
        return self._failed(seq, now_ms, False)

    def on_timeout(self, seq, now_ms):
        """No answer for seq within the agent's timeout on a live connection.
        Same returns as on_error; the CSMS may have the message."""
        if seq != self.in_flight:
            return None
        self.counters["timeouts"] += 1
        return self._failed(seq, now_ms, True)

    def on_disconnect(self, now_ms):
        """The connection dropped: a CALL in flight is given back its try."""
        if self.in_flight is not None:
            self.in_flight = None
            self.counters["disconnects"] += 1

    def wake_at(self):
        """When next_due() will have something (ms, possibly already past),
        or None: nothing queued or a CALL in flight."""
        if self.in_flight is not None or not self.state.order:
            return None
        return self.due_ms if self.due_ms is not None else 0

    # -- parked messages ------------------------------------------------------

    def parked(self):
        """[(seq, action, payload, local_tx, attempts)] for every parked message,
        oldest first, the payload with its transactionId as it would be sent."""
        st = self.state
        out = []
        for seq in st.parked_seqs():
            m = st.msgs[seq]
            out.append((seq, m[0], self._payload(m, seq), m[2], m[3]))
        return out

    def release(self, seqs):
        """Forgets parked messages (after they were exported)."""
        st = self.state
        recs = [[R.K_RELEASED, s] for s in seqs if s in st.msgs and st.msgs[s][4]]
        if recs:
            self.store.write_many(recs)

    # -- internals ------------------------------------------------------------

    def _payload(self, m, seq):
        # A copy the caller may change: the journal's bytes decoded, or the
        # dict enqueue() got (its nested values are shared, never changed).
        fresh = self._fresh
        payload = dict(fresh[1]) if fresh is not None and fresh[0] == seq else R.unpack_payload(m[1])
        if m[2] is not None and m[0] in _SUBSTITUTE:
            tid = self.state.tx_ids.get(m[2])
            payload["transactionId"] = -1 if tid is None else tid
        return payload

    def _failed(self, seq, now_ms, maybe_delivered):
        self.in_flight = None
        n = self.state.msgs[seq][3] + 1
        rec = [R.K_ATTEMPT, seq, n, maybe_delivered]
        if n >= self.attempts:
            m = self.state.msgs[seq]
            self.store.write_many([rec, [R.K_PARKED, seq]])
            self.due_ms = None
            self.counters["parked"] += 1
            return (PARKED, seq, m[0], m[2])
        self.store.write(rec)
        self.due_ms = now_ms + self.retry_interval_ms * n
        return (RETRY, seq, self.due_ms)

    def _victims(self, extra):
        # The MeterValues to drop so that `extra` more bytes fit under max_bytes.
        st = self.state
        over = st.queue_bytes + extra - self.max_bytes
        if over <= 0:
            return []
        msgs = st.msgs
        out = []
        for seq in st.parked_seqs():
            if over <= 0:
                break
            if msgs[seq][0] == R.METER_VALUES:
                out.append(seq)
                over -= len(msgs[seq][1]) + ENTRY_OVERHEAD
        # Per transaction, the queued readings that may go (not the one in flight).
        groups = {}
        for s in st.order:
            m = msgs[s]
            if s != self.in_flight and m[0] == R.METER_VALUES:
                g = groups.get(m[2])
                if g is None:
                    groups[m[2]] = g = []
                g.append(s)
        # Thin evenly: drop the intermediate reading whose neighbours are
        # closest (oldest first on ties), so the kept ones stay spread over
        # the session; first and last readings go only when nothing else can.
        while over > 0:
            best = None
            for g in groups.values():
                for i in range(1, len(g) - 1):
                    span = g[i + 1] - g[i - 1]
                    if best is None or span < best[0] or (span == best[0] and g[i] < best[2][best[1]]):
                        best = (span, i, g)
            if best is None:
                break
            seq = best[2].pop(best[1])
            out.append(seq)
            over -= len(msgs[seq][1]) + ENTRY_OVERHEAD
        if over > 0:
            rest = []
            for g in groups.values():
                rest.extend(g)
            rest.sort()
            for seq in rest:
                if over <= 0:
                    break
                out.append(seq)
                over -= len(msgs[seq][1]) + ENTRY_OVERHEAD
        if over > 0:
            self.counters["over_bound"] += 1
        return out
