# What the journal means: State is rebuilt by replaying records, and writes
# back exactly its live part when the journal is compacted. Store ties a
# Journal and a State together: every change is appended (and synced) first,
# then applied, so memory never runs ahead of the disk.
from firmware.compat import const
from firmware.store import journal as jmod
from firmware.store import records as R

COMPACT_BYTES = const(65536)  # compact once the file passes this (or 2x its live size)
ENTRY_OVERHEAD = const(16)  # bytes a queued message costs beyond its payload (bound accounting)


class State:
    """The live state. Plain dicts and lists, no I/O.

    open[local_tx]  = [connector, id_tag, meter_start, start_time, last_wh, last_time]
    tx_ids[local_tx] = CSMS transactionId (-1 once its StartTransaction was given up)
    msgs[seq]       = [action, payload_bytes, local_tx, attempts, parked]
    order           = seqs waiting to be sent, ascending (parked ones are not in it)
    sent[seq]       = True: the CSMS may have it (a try went out, unanswered or timed out)
    availability[connector] = True (Operative) / False (Inoperative)
    config[key]     = value
    cache[id_tag]   = authorization cache entry (see records.K_AUTH)
    """

    def __init__(self):
        self.open = {}
        self.tx_ids = {}
        self.msgs = {}
        self.order = []
        self.sent = {}
        self.availability = {}
        self.config = {}
        self.cache = {}
        self.next_seq = 1
        self.next_local = 1
        self.queue_bytes = 0  # payload bytes + overhead of every queued or parked message

    def apply(self, rec):
        """Applies one record; False if its kind is unknown. Raises on a malformed record."""
        fn = _APPLY.get(rec[0])
        if fn is None:
            return False
        fn(self, rec)
        return True

    # -- queries --------------------------------------------------------------

    def parked_seqs(self):
        return sorted(s for s in self.msgs if self.msgs[s][4])

    def transaction_id(self, local_tx):
        """The CSMS transactionId, -1 if its Start was given up, None if not known yet."""
        return self.tx_ids.get(local_tx)

    def local_for(self, transaction_id):
        """The local id of the open transaction the CSMS calls transaction_id, or None."""
        for local in self.open:
            if self.tx_ids.get(local) == transaction_id:
                return local
        return None

    def snapshot(self):
        """Everything the state holds, as plain comparable values (for tests);
        ids of finished transactions nothing refers to any more are left out."""
        needed = self._needed()
        return {
            "open": dict((k, list(v)) for k, v in self.open.items()),
            "tx_ids": dict((k, v) for k, v in self.tx_ids.items() if k in needed),
            "msgs": dict((k, list(v)) for k, v in self.msgs.items()),
            "order": list(self.order),
            "sent": sorted(self.sent),
            "availability": dict(self.availability),
            "config": dict(self.config),
            "cache": dict((k, list(v)) for k, v in self.cache.items()),
            "next_seq": self.next_seq,
            "next_local": self.next_local,
            "queue_bytes": self.queue_bytes,
        }

    def live_records(self):
        """The records that rebuild this state exactly, in replay order."""
        yield [R.K_COUNTERS, self.next_seq, self.next_local]
        for key in self.config:
            yield [R.K_CONFIG, key, self.config[key]]
        for c in self.availability:
            yield [R.K_AVAIL, c, self.availability[c]]
        for tag in self.cache:
            yield [R.K_AUTH, tag, self.cache[tag]]
        for local in self.open:
            o = self.open[local]
            yield [R.K_TX_OPEN, local, o[0], o[1], o[2], o[3]]
            if o[4] is not None:
                yield [R.K_METER, local, o[4], o[5]]
        needed = self._needed()
        for local in self.tx_ids:
            if local in needed:
                yield [R.K_TX_ID, local, self.tx_ids[local]]
        for seq in sorted(self.msgs):
            m = self.msgs[seq]
            yield [R.K_QUEUED, seq, R.action_code(m[0]), m[1], m[2], m[3]]
            if m[4]:
                yield [R.K_PARKED, seq]
            if seq in self.sent:
                yield [R.K_SENT, seq]

    def prune(self):
        """Forgets the ids of finished transactions nothing refers to any more."""
        needed = self._needed()
        for local in [k for k in self.tx_ids if k not in needed]:
            del self.tx_ids[local]

    def _needed(self):
        # Local ids still referred to: open transactions and queued or parked messages.
        needed = {}
        for local in self.open:
            needed[local] = True
        for seq in self.msgs:
            needed[self.msgs[seq][2]] = True
        return needed

    # -- helpers for the appliers --------------------------------------------

    def _unqueue(self, seq):
        if seq in self.order:
            self.order.remove(seq)
        self.sent.pop(seq, None)

    def _forget(self, seq):
        m = self.msgs.pop(seq, None)
        if m is not None:
            self.queue_bytes -= len(m[1]) + ENTRY_OVERHEAD
        self._unqueue(seq)


def _queued(st, rec):
    seq = rec[1]
    st._forget(seq)
    payload = rec[3]
    if type(payload) is not bytes:
        raise ValueError("payload must be bytes")
    st.msgs[seq] = [R.action_name(rec[2]), payload, rec[4], rec[5], False]
    st.queue_bytes += len(payload) + ENTRY_OVERHEAD
    order = st.order
    i = len(order)
    while i and order[i - 1] > seq:
        i -= 1
    order.insert(i, seq)
    if seq >= st.next_seq:
        st.next_seq = seq + 1


def _removed(st, rec):
    st._forget(rec[1])


def _tx_open(st, rec):
    local = rec[1]
    st.open[local] = [rec[2], rec[3], rec[4], rec[5], None, None]
    if local >= st.next_local:
        st.next_local = local + 1


def _tx_id(st, rec):
    st.tx_ids[rec[1]] = rec[2]


def _meter(st, rec):
    o = st.open.get(rec[1])
    if o is not None:
        o[4] = rec[2]
        o[5] = rec[3]


def _tx_close(st, rec):
    st.open.pop(rec[1], None)


def _avail(st, rec):
    st.availability[rec[1]] = rec[2]


def _config(st, rec):
    if rec[2] is None:
        st.config.pop(rec[1], None)
    else:
        st.config[rec[1]] = rec[2]


def _auth(st, rec):
    if rec[1] is None:
        st.cache = {}
    elif rec[2] is None:
        st.cache.pop(rec[1], None)
    else:
        st.cache[rec[1]] = rec[2]


def _parked(st, rec):
    m = st.msgs.get(rec[1])
    if m is None:
        return
    m[4] = True
    st._unqueue(rec[1])
    # C16E §3.18: later messages of a transaction whose Start was never
    # answered carry transactionId -1.
    if m[0] == R.START and m[2] is not None and m[2] not in st.tx_ids:
        st.tx_ids[m[2]] = -1


def _sent(st, rec):
    if rec[1] in st.msgs:
        st.sent[rec[1]] = True


def _attempt(st, rec):
    m = st.msgs.get(rec[1])
    if m is not None:
        m[3] = rec[2]
        if rec[3]:  # a timeout: the CSMS may have it
            st.sent[rec[1]] = True
        else:
            st.sent.pop(rec[1], None)


def _counters(st, rec):
    if rec[1] > st.next_seq:
        st.next_seq = rec[1]
    if rec[2] > st.next_local:
        st.next_local = rec[2]


_APPLY = {
    R.K_QUEUED: _queued,
    R.K_DELIVERED: _removed,
    R.K_TX_OPEN: _tx_open,
    R.K_TX_ID: _tx_id,
    R.K_METER: _meter,
    R.K_TX_CLOSE: _tx_close,
    R.K_AVAIL: _avail,
    R.K_CONFIG: _config,
    R.K_PARKED: _parked,
    R.K_SENT: _sent,
    R.K_ATTEMPT: _attempt,
    R.K_DROPPED: _removed,
    R.K_COUNTERS: _counters,
    R.K_RELEASED: _removed,
    R.K_AUTH: _auth,
}


class Store:
    """A journal and the state it holds. Boot: store = Store(path); problems = store.load()."""

    def __init__(self, path, sync=True, fs=None, compact_bytes=COMPACT_BYTES, prealloc=0, batched=False):
        self.journal = jmod.Journal(path, sync, fs, prealloc, batched)
        self.state = State()
        self.problems = []
        self.compact_bytes = compact_bytes
        self._compact_at = compact_bytes

    def load(self):
        """Replays the journal into a fresh State. Returns the problems found
        (tuples, see journal.problem_text); if there were any, the journal has
        already been rewritten without them."""
        st = self.state = State()
        problems = self.problems = []
        for rec in self.journal.replay(problems.append):
            try:
                known = st.apply(rec)
                why = "kind %r" % (rec[0],)
            except Exception as e:  # a record that checks out but makes no sense
                known = False
                why = "malformed %r: %r" % (rec[:1], e)
            if not known:
                problems.append((jmod.P_KIND, self.journal.last_offset, 0, why))
        if problems:
            self.compact()
        else:
            self._compact_at = max(self.compact_bytes, 2 * self.journal.size())
        return problems

    # -- writing --------------------------------------------------------------

    def write(self, rec, sync=True):
        """Appends rec (synced unless sync is False), then applies it."""
        self.journal.append(rec, sync)
        self.state.apply(rec)
        self._maybe_compact()

    def write_many(self, recs):
        """Appends recs in one frame with one sync, then applies them in order."""
        self.journal.append_many(recs)
        for rec in recs:
            self.state.apply(rec)
        self._maybe_compact()

    def open_tx(self, connector, id_tag, meter_start, start_time):
        """Records a new transaction; returns its local id."""
        local = self.state.next_local
        self.write([R.K_TX_OPEN, local, connector, id_tag, meter_start, start_time])
        return local

    def meter(self, local_tx, wh, time):
        """Records a meter checkpoint of an open transaction (the PowerLoss meterStop)."""
        self.write([R.K_METER, local_tx, wh, time])

    def close_tx(self, local_tx):
        self.write([R.K_TX_CLOSE, local_tx])

    def set_availability(self, connector, operative):
        self.write([R.K_AVAIL, connector, bool(operative)])

    def set_auth(self, id_tag, entry):
        """Remembers an authorization cache entry (None forgets it; id_tag None clears all)."""
        self.write([R.K_AUTH, id_tag, entry])

    def set_config(self, key, value):
        """Records a changed configuration value; None returns the key to its default."""
        self.write([R.K_CONFIG, key, value])

    def compact(self):
        self.state.prune()
        self.journal.compact(self.state.live_records())
        self._compact_at = max(self.compact_bytes, 2 * self.journal.size())

    def _maybe_compact(self):
        if self.journal.size() > self._compact_at:
            self.compact()

    def stats(self):
        s = self.journal.stats()
        s["queued"] = len(self.state.order)
        s["parked"] = len(self.state.msgs) - len(self.state.order)
        s["open_tx"] = len(self.state.open)
        s["queue_bytes"] = self.state.queue_bytes
        return s

    def flush(self):
        """Hands the records of a batched unsynced journal to the OS."""
        self.journal.flush()

    def close(self):
        self.journal.close()
