"""Reading a soak's records back and reconciling them (host_tools/soak.py).

The trace file the soak writes holds what every agent did (see soak.Trace);
the bench CSMS's SQLite database holds what it received (the ledger) and
the sessions it billed. `audit()` sets one against the other per charger:

- lost: a queued transaction message of which the CSMS processed no try,
  while the agent no longer holds it (neither queued nor given up);
- order: the first processed try of each message follows the queue order,
  and no try went out before the message ahead of it was answered;
- transactionIds: each StartTransaction opened exactly one CSMS session, the
  agent learned that id, and every StopTransaction and MeterValues of the
  session carried it;
- duplicates: every processed try but the answered one is a duplicate; each
  must be a try the agent got no CALLRESULT for (no answer in time, or the
  connection went first), and the CSMS must have recognised it as one;
- billing: the CSMS session's meterStart/meterStop are the agent's, and
  their difference is the energy the simulated meter delivered between the
  contactor closing and opening.
"""
import json

CSMS_KINDS = ("call_error", "delay", "no_answer", "drop", "malformed", "refused")

# Ledger outcomes of a transaction message the CSMS processed (storage.OUTCOMES).
PROCESSED = frozenset(("started", "duplicate_start", "stopped", "duplicate_stop", "conflicting_stop",
                       "stop_unknown", "stop_minus_one", "meter_values", "duplicate"))
DUPLICATE_OUTCOMES = frozenset(("duplicate_start", "duplicate_stop", "duplicate"))
# meterStart and meterStop are whole Wh of a register the meter shows to 0.1 Wh:
# each end may be off by 0.55 Wh from the simulated meter's exact energy.
METER_TOLERANCE_WH = 1.1

# -- reconciliation ---------------------------------------------------------------------------------------


class Msg:
    __slots__ = ("seq", "action", "local", "payload", "ids", "results", "answered", "tid", "rows", "parked")

    def __init__(self, seq, action, local, payload):
        self.seq = seq
        self.action = action
        self.local = local
        self.payload = payload
        self.ids = []
        self.results = []
        self.answered = None
        self.tid = None
        self.rows = []
        self.parked = False


class Charger:
    def __init__(self, ident):
        self.ident = ident
        self.msgs = {}
        self.by_id = {}
        self.calls = set()  # messageIds of every ledger-action CALL
        self.sending = None  # seq of the last try on the wire
        self.sent_out_of_order = 0
        self.start_of = {}  # local_tx -> seq of its StartTransaction
        self.stop_of = {}
        self.energy = {}  # local_tx -> [register at relay close, register at relay open]
        self.last_on = None
        self.stopping = None
        self.events = []  # (t, name)
        self.transitions = {}  # "from>to" -> count: status changes C16 §4.9 does not list
        self.final = None
        self.crash = None


def read_trace(path):
    chargers = {}
    marks = []

    def ch(ident):
        c = chargers.get(ident)
        if c is None:
            c = chargers[ident] = Charger(ident)
        return c

    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            kind = r[0]
            if kind == "k":
                marks.append(r)
                continue
            c = ch(r[1])
            if kind == "q":
                m = c.msgs[r[3]] = Msg(r[3], r[4], r[5], r[6])
                if m.action == "StartTransaction":
                    c.start_of[m.local] = m.seq
                    c.energy[m.local] = [c.last_on, None]
                elif m.action == "StopTransaction":
                    c.stop_of[m.local] = m.seq
                    c.stopping = m.local
            elif kind == "c":
                c.calls.add(r[3])
            elif kind == "s":
                m = c.msgs[r[3]]
                prev = c.msgs.get(c.sending)
                if prev is not None and prev is not m and (m.seq < prev.seq or (prev.answered is None
                                                                                 and not prev.parked)):
                    # One in flight, in order: a message goes out only once
                    # the one before it was answered (C16 §3.7).
                    c.sent_out_of_order += 1
                c.sending = m.seq
                m.ids.append(r[4])
                c.by_id[r[4]] = m
            elif kind == "r":
                m = c.msgs[r[3]]
                m.results.append(r[4])
                if r[4] == "ok":
                    m.answered = m.ids[-1]
                    m.tid = r[5]
            elif kind == "p":
                c.msgs[r[3]].parked = True
            elif kind == "h":
                if r[3]:
                    c.last_on = r[4]
                elif c.stopping is not None:
                    c.energy[c.stopping][1] = r[4]
                    c.stopping = None
            elif kind == "e":
                if r[3] == "status_transition_unexpected":
                    key = "%s>%s" % (r[4].get("from"), r[4].get("to"))
                    c.transitions[key] = c.transitions.get(key, 0) + 1
                else:
                    c.events.append((r[2], r[3]))
            elif kind == "f":
                c.final = r[3]
            elif kind == "x":
                c.crash = r[3]
    return chargers, marks


def csms_faults(paths):
    counts = dict((k, 0) for k in CSMS_KINDS)
    try:
        with open(paths["csms_messages"], encoding="utf-8") as f:
            for line in f:
                if '"fault"' not in line and '"DROP"' not in line:
                    continue
                r = json.loads(line)
                t, fault = r.get("type"), r.get("fault")
                if t == "DROP":
                    counts["drop"] += 1
                elif t == "MALFORMED" and r.get("dir") == "out":
                    counts["malformed"] += 1
                elif fault == "call_error" and t == "CALLERROR":
                    counts["call_error"] += 1
                elif fault == "delay" and r.get("dir") == "out":
                    counts["delay"] += 1
                elif fault == "no_answer":
                    counts["no_answer"] += 1
    except FileNotFoundError:
        pass
    with open(paths["csms_log"], "rb") as f:
        counts["refused"] = f.read().count(b"handshake refused with")
    return counts


def _percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]


def reconnects(chargers, marks, end):
    """For every CSMS restart: when each charger connected again (s after the kill)."""
    downs = [(m[1], m[3]) for m in marks if m[2] == "down"]
    ups = dict((m[3], m[1]) for m in marks if m[2] == "up")
    out = []
    for i, (down, n) in enumerate(downs):
        horizon = downs[i + 1][0] if i + 1 < len(downs) else end
        delays, attempts, was_connected = [], [], 0
        for c in chargers.values():
            online = False
            for t, name in c.events:
                if t > down:
                    break
                if name == "connected":
                    online = True
                elif name == "disconnected":
                    online = False
            was_connected += online
            for t, name in c.events:
                if down < t < horizon and name in ("connected", "connect_failed"):
                    attempts.append(t - down)
                    if name == "connected":
                        delays.append(t - down)
                        break
        bins = {}
        for d in delays:
            bins[int(d)] = bins.get(int(d), 0) + 1
        tries = {}
        for d in attempts:
            tries[int(d)] = tries.get(int(d), 0) + 1
        largest = max(bins.values()) if bins else 0
        out.append({
            "restart": n, "down_at": down, "up_at": ups.get(n), "connected_before": was_connected,
            "reconnected": len(delays), "first_s": _r(min(delays) if delays else None),
            "median_s": _r(_percentile(delays, 0.5)), "p90_s": _r(_percentile(delays, 0.9)),
            "last_s": _r(max(delays) if delays else None),
            "largest_bin": largest, "largest_bin_share": round(largest / len(delays), 3) if delays else 1.0,
            "histogram": [[s, tries.get(s, 0), bins.get(s, 0)] for s in range(0, max(list(bins) + list(tries) + [0]) + 1)],
        })
    return out


def _r(x):
    return None if x is None else round(x, 2)


def memory(rss, warmup):
    """Samples (t, RSS KiB, Python allocated blocks, C heap in use KiB, C heap
    free KiB) after warm-up: where RSS started, its peak, its end, its growth
    over the last half, and the live memory beside it."""
    post = [x for x in rss if x[0] >= warmup]
    if len(post) < 2:
        return {"samples": rss, "warmup_s": warmup}
    mb = _mb
    half = post[len(post) // 2]
    return {
        "samples": rss, "warmup_s": warmup, "first_mb": mb(rss[0][1]), "at_warmup_mb": mb(post[0][1]),
        "peak_mb": mb(max(x[1] for x in post)), "end_mb": mb(post[-1][1]),
        "growth_mb": mb(post[-1][1] - post[0][1]), "last_half_growth_mb": mb(post[-1][1] - half[1]),
        "blocks_at_warmup": post[0][2], "blocks_peak": max(x[2] for x in post), "blocks_end": post[-1][2],
        "heap_at_warmup_mb": _mb(post[0][3]), "heap_end_mb": _mb(post[-1][3]),
        "heap_free_at_warmup_mb": _mb(post[0][4]), "heap_free_end_mb": _mb(post[-1][4]),
    }


def _mb(kb):
    return None if kb is None else round(kb / 1024.0, 1)


class Audit:
    """The ledger rows and CSMS sessions set against the agents' traces.

        a = Audit(rows, transactions)     # storage.ledger(), storage.list_transactions()
        for c in chargers.values(): a.charger(c)
        a.n                               # the counts; a.problems: the first few, readable
    """

    def __init__(self, rows, transactions):
        self.txs = dict((t["id"], t) for t in transactions)
        self.n = n = {
            "messages": 0, "by_action": {}, "tries": 0, "ledger_rows": len(rows), "ledger_outcomes": {},
            "lost": 0, "queued_at_end": 0, "parked": 0, "dropped_by_bound": 0, "out_of_order": 0,
            "wrong_transaction_ids": 0, "duplicates": 0, "duplicate_causes": {}, "unexplained_duplicates": 0,
            "resent_after_answer": 0, "unrecognised_duplicates": 0, "phantom_rows": 0, "outside_queue_rows": 0,
            "invalid_rows": 0, "fault_rows": 0, "sessions_started": 0, "sessions_stopped": 0,
            "billing_mismatches": 0, "meter_mismatches": 0, "max_meter_diff_wh": 0.0, "billed_wh": 0,
            "metered_wh": 0.0, "outside_sessions_wh": 0.0, "orphan_sessions": 0, "open_at_end": 0,
            "not_drained": [], "crashed_agents": [],
        }
        self.problems = []
        self.ledger = {}
        for r in rows:
            n["ledger_outcomes"][r["outcome"]] = n["ledger_outcomes"].get(r["outcome"], 0) + 1
            self.ledger.setdefault(r["charger_id"], []).append(r)
        self.orphans = {}
        for t in self.txs.values():
            if t["orphan"]:
                self.orphans[t["charger_id"]] = self.orphans.get(t["charger_id"], 0) + 1
            if t["status"] != "stopped":
                n["open_at_end"] += 1

    def problem(self, text):
        if len(self.problems) < 20:
            self.problems.append(text)

    def count(self, key, by=1):
        self.n[key] += by

    def charger(self, c):
        n = self.n
        if c.crash is not None:
            n["crashed_agents"].append(c.ident)
            self.problem("%s: agent ended: %s" % (c.ident, c.crash.strip().splitlines()[-1]))
        final = c.final or {"queued": [], "parked": [], "drained": False, "counters": {}, "energy": 0.0}
        if not final["drained"]:
            n["not_drained"].append(c.ident)
        if c.sent_out_of_order:
            self.count("out_of_order", c.sent_out_of_order)
            self.problem("%s: %d tries went out before the message ahead of them was answered" % (
                c.ident, c.sent_out_of_order))
        self.count("dropped_by_bound", final["counters"].get("dropped", 0))
        self.count("orphan_sessions", self.orphans.get(c.ident, 0))
        self._match(c)
        tids = {}
        queued, parked = set(final["queued"]), set(final["parked"])
        for seq in sorted(c.msgs):
            self._message(c, c.msgs[seq], tids, queued, parked)
        self._billing(c, tids, final["energy"])

    def finish(self):
        n = self.n
        n["metered_wh"] = round(n["metered_wh"], 1)
        n["outside_sessions_wh"] = round(n["outside_sessions_wh"], 3)
        n["problems"] = self.problems
        return n

    def _match(self, c):
        """Ledger rows to the tries that carried them, in the CSMS's order."""
        top = -1
        for r in self.ledger.get(c.ident, ()):
            m = c.by_id.get(r["message_id"])
            if m is None and r["message_id"] in c.calls:
                # Sent outside the queue: clock-aligned readings of an idle
                # connector (C16 §4.7), not transaction messages.
                self.count("outside_queue_rows")
                continue
            if m is None:
                self.count("phantom_rows")
                self.problem("%s: ledger row %d (%s) was never sent by the agent" % (c.ident, r["seq"], r["action"]))
                continue
            if r["outcome"] not in PROCESSED:
                self.count("invalid_rows" if r["outcome"] == "invalid" else "fault_rows")
                continue
            if not m.rows:
                if m.seq < top:
                    self.count("out_of_order")
                    self.problem("%s: message %d reached the CSMS after message %d" % (c.ident, m.seq, top))
                top = max(top, m.seq)
            m.rows.append(r)

    def _message(self, c, m, tids, queued, parked):
        n = self.n
        n["messages"] += 1
        n["by_action"][m.action] = n["by_action"].get(m.action, 0) + 1
        n["tries"] += len(m.ids)
        if "ok" in m.results and m.results.index("ok") != len(m.results) - 1:
            self.count("resent_after_answer")
        if not m.rows:
            if m.seq in queued:
                self.count("queued_at_end")
            elif m.seq in parked:
                self.count("parked")
            else:
                self.count("lost")
                self.problem("%s: %s %d lost (tries: %s)" % (c.ident, m.action, m.seq, ", ".join(m.results) or "none"))
            return
        self._duplicates(c, m)
        first = m.rows[0]
        if m.action == "StartTransaction":
            tid = tids[m.local] = first["transaction_id"]
            if first["outcome"] != "started" or (m.tid is not None and m.tid != tid) or \
                    any(r["transaction_id"] != tid for r in m.rows):
                self.count("wrong_transaction_ids")
                self.problem("%s: StartTransaction %d: CSMS id %s, agent learned %s" % (c.ident, m.seq, tid, m.tid))
            return
        if m.local is None:
            return
        # -1 only for a session whose StartTransaction was given up (C16E §3.18).
        want = tids.get(m.local, -1 if c.start_of.get(m.local) in parked else None)
        for r in m.rows:
            if r["payload"].get("transactionId") != want:
                self.count("wrong_transaction_ids")
                self.problem("%s: %s %d carried transactionId %s, its session is %s" % (
                    c.ident, m.action, m.seq, r["payload"].get("transactionId"), want))
        if m.action == "StopTransaction" and (first["outcome"] != "stopped" or first["transaction_id"] != want):
            self.count("wrong_transaction_ids")
            self.problem("%s: StopTransaction %d closed %s (%s)" % (c.ident, m.seq, first["transaction_id"],
                                                                      first["outcome"]))

    def _duplicates(self, c, m):
        """Every processed try but the answered one (all but one when none
        was) is a duplicate; each must be a try whose answer the agent never
        got, and the CSMS must have stored it as a duplicate."""
        n = self.n
        ids = [r["message_id"] for r in m.rows]
        n["duplicates"] += len(ids) - 1
        if len(set(ids)) != len(ids):
            self.count("unexplained_duplicates", len(ids) - len(set(ids)))
            self.problem("%s: one frame of message %d was processed twice" % (c.ident, m.seq))
        if m.answered is not None and m.answered not in ids:
            self.count("unexplained_duplicates")
            self.problem("%s: message %d answered but its answered try is not in the ledger" % (c.ident, m.seq))
        others = [r for r in m.rows if r["message_id"] != m.answered]
        if m.answered is None:
            others = others[:-1]
        for r in others:
            i = m.ids.index(r["message_id"])
            cause = m.results[i] if i < len(m.results) else "none"
            n["duplicate_causes"][cause] = n["duplicate_causes"].get(cause, 0) + 1
            if cause in ("error", "refused", "ok"):
                self.count("unexplained_duplicates")
                self.problem("%s: message %d processed although its try ended %s" % (c.ident, m.seq, cause))
        for r in m.rows[1:]:
            if r["outcome"] not in DUPLICATE_OUTCOMES:
                self.count("unrecognised_duplicates")
                self.problem("%s: repeat of message %d stored as %s" % (c.ident, m.seq, r["outcome"]))

    def _billing(self, c, tids, final_energy):
        """Each session as the CSMS billed it, against the agent's messages
        and the energy the simulated meter delivered."""
        n = self.n
        delivered = 0.0
        for local, sseq in c.start_of.items():
            n["sessions_started"] += 1
            stop_seq = c.stop_of.get(local)
            if stop_seq is None:
                self.count("billing_mismatches")
                self.problem("%s: session %d was never stopped" % (c.ident, local))
                continue
            n["sessions_stopped"] += 1
            start_p, stop_p = c.msgs[sseq].payload, c.msgs[stop_seq].payload
            tx = self.txs.get(tids.get(local))
            if tx is None or tx["meter_start"] != start_p["meterStart"] or tx["meter_stop"] != stop_p["meterStop"] \
                    or tx["status"] != "stopped":
                self.count("billing_mismatches")
                self.problem("%s: session %d: CSMS %s, agent %s..%s" % (
                    c.ident, local, None if tx is None else (tx["meter_start"], tx["meter_stop"], tx["status"]),
                    start_p["meterStart"], stop_p["meterStop"]))
                continue
            billed = tx["meter_stop"] - tx["meter_start"]
            n["billed_wh"] += billed
            e_close, e_open = c.energy.get(local, (None, None))
            if e_close is None or e_open is None:
                self.count("meter_mismatches")
                self.problem("%s: session %d has no contactor record" % (c.ident, local))
                continue
            metered = e_open - e_close
            delivered += metered
            n["metered_wh"] += metered
            diff = abs(billed - metered)
            n["max_meter_diff_wh"] = max(n["max_meter_diff_wh"], round(diff, 3))
            if diff > METER_TOLERANCE_WH:
                self.count("meter_mismatches")
                self.problem("%s: session %d billed %d Wh, meter delivered %.1f Wh" % (c.ident, local, billed, metered))
        n["outside_sessions_wh"] += final_energy - delivered


def reconcile(o, paths, meta):
    """Reads the trace, the CSMS database and logs; returns meta with
    "result" (Audit counts), "csms_faults", "reconnects" and "memory"."""
    from host_tools.csms.storage import SqliteStorage

    chargers, marks = read_trace(paths["trace"])
    st = SqliteStorage(paths["db"])
    try:
        audit = Audit(st.ledger(limit=1 << 40), st.list_transactions(limit=1 << 40))
    finally:
        st.close()
    for ident in sorted(chargers):
        audit.charger(chargers[ident])
    meta["result"] = audit.finish()
    unlisted = {}
    for c in chargers.values():
        for key, count in c.transitions.items():
            unlisted[key] = unlisted.get(key, 0) + count
    meta["unlisted_transitions"] = unlisted
    meta["csms_faults"] = csms_faults(paths)
    meta["reconnects"] = reconnects(chargers, marks, meta["stopped_at"])
    meta["memory"] = memory(meta.pop("rss"), o.warmup)
    meta["paths"] = paths
    return meta
