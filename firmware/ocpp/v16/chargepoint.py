# The OCPP 1.6J charge point (Core and RemoteTrigger profiles), sans-I/O.
#
# Events in: connected/disconnected, receive(text), tick(now), and hardware
# events (plug, ev_drawing, card, meter, relay/lock feedback, faults). Actions
# out: self.actions, a list of tuples the agent performs in order:
#   (A_SEND, text)              a frame for the WebSocket
#   (A_RELAY, connector, on)    close/open the contactor; answer relay_result()
#   (A_LOCK, connector, locked) lock/unlock the cable; answer lock_result()
#   (A_RESET, hard)             reboot (after the stops are persisted)
#   (A_EVENT, name, data)       for the console and the log
#   (A_SETTING, name, value)    a transport setting changed (ping interval,
#                               authorization key, security profile)
#   (A_RECONNECT,)              drop and re-open the connection
# Time comes in as `now` (monotonic ms). No sockets, files or clocks here;
# durability goes through the injected store and transaction queue, which
# sync before they return (a record is durable before the agent acts on it).
#
# C16 = OCPP 1.6 edition 2, C16E = its errata 2025-04, J16 = OCPP-J 1.6.
from firmware.clock import iso8601, parse_iso8601
from firmware.compat import const
from firmware.ocpp import rpc
from firmware.ocpp.errors import V16, OcppError, E_OCCURRENCE
from firmware.ocpp.v16 import status as st
from firmware.ocpp.v16.auth import AuthCache, ACCEPTED
from firmware.ocpp.v16.config import Config
from firmware.ocpp.v16.meter import sampled_values, energy_wh
from firmware.store import records as R
from firmware.store.recovery import recover, RESUME
from firmware.store.txqueue import PARKED

A_SEND = const(0)
A_RELAY = const(1)
A_LOCK = const(2)
A_RESET = const(3)
A_EVENT = const(4)
A_SETTING = const(5)
A_RECONNECT = const(6)

BOOT_NONE = const(0)
BOOT_PENDING = const(1)
BOOT_ACCEPTED = const(2)
BOOT_REJECTED = const(3)

_BOOT_RETRY_MS = const(30000)  # after a CALLERROR/timeout, or interval 0 ("CP chooses")
_MAX_CHANGES = const(8)  # status changes of a connector waiting to be sent
_EPOCH_MIN = 1000000000000  # stamps below this are monotonic ms of this boot
# Read by handlers.py: no leading underscore, since MicroPython keeps
# underscore const() names out of the module (they would be missing there).
UNLOCK_WAIT_MS = const(5000)  # lock feedback wait, both ways
SOFT_RESET_DRAIN_MS = const(30000)
_READING_FRESH_MS = const(15000)  # an older meter reading is never sent as fresh

REASON_LOCAL = "Local"
NOT_OFFLINE = "NotAuthorizedOffline"  # never on the wire: the refusal's name in events
LOCK_FAILURE = "ConnectorLockFailure"
# An empty MeterValuesSampledData / MeterValuesAlignedData (C16 §9.1) means
# the measurand a sampledValue defaults to, Energy.Active.Import.Register
# (SampledValue.measurand, C16 §7); OCTT TC_070_CS/TC_071_CS assume the same.
_DEFAULT_MEASURANDS = ("Energy.Active.Import.Register",)


class Connector:
    def __init__(self, cid):
        self.id = cid
        self.plugged = False
        self.ev_drawing = False
        self.relay_on = False
        self.operative = True
        self.scheduled = None  # availability waiting for the transaction to end
        self.fault = None  # (errorCode, info): Faulted
        self.warning = None  # (errorCode, info) reported with a working status
        self.auth = None  # [idTag, parentIdTag, deadline_ms, remote]
        self.auth_pending = False  # Authorize.req in flight for auth
        self.starting = False  # lock/relay commanded for a start, waiting for feedback
        self.locking = None  # deadline (ms) while a start waits for the lock to report locked
        self.tx = None
        self.finishing = False
        self.reported = None  # (status, errorCode) last queued for the CSMS
        self.changes = []  # [(status, errorCode, info, stamp)] not yet sent, oldest first
        self.reading = None
        self.reading_ms = None
        self.next_sample = None
        self.has_lock = True
        self.cable = None  # socket proximity sense: True/False, None = not sensed (fixed cable)
        self.held_by = None  # idTag whose deauthorized session keeps the cable locked


class Transaction:
    def __init__(self, local_id, cid, id_tag, parent, meter_start, stamp):
        self.local_id = local_id
        self.connector = cid
        self.id_tag = id_tag
        self.parent = parent
        self.meter_start = meter_start
        self.start = stamp
        self.last_wh = meter_start
        self.stop_data = []  # meterValue entries for StopTransaction.transactionData
        self.deauthorized = False


class ChargePoint:
    def __init__(self, identity, connectors, store, txq, boot_info, config=None, new_id=None, check=None, actions_table=None, wall_ms=None):
        """identity: chargePointId; connectors: how many; store/txq: see
        firmware/store (durable records and the transaction-message queue);
        boot_info: the BootNotification.req payload; config: a Config; wall_ms:
        the epoch ms the platform believes at boot, or None if it has no clock.
        """
        self.identity = identity
        self.store = store
        self.txq = txq
        self.boot_info = boot_info
        self.config = config or Config(connectors=connectors)
        self.connectors = [None] + [Connector(i) for i in range(1, connectors + 1)]
        self.cp_operative = True
        self.cp_warning = None
        self.cp_reported = None  # (status, errorCode) last sent for connector 0
        self.cache = AuthCache()
        self.actions = []
        self.later = []
        self.now = 0
        self.offset = None  # wall epoch ms - monotonic ms, once the clock is known
        self.rtt = 0  # round trip of the answer being handled (ms)
        if wall_ms is not None and wall_ms >= _EPOCH_MIN:
            self.offset = wall_ms
        self.boot = BOOT_NONE
        self.next_boot = 0
        self.online = False
        self.ep = None
        self.new_id = new_id
        self.check = check
        self.actions_table = actions_table
        self.last_sent = 0
        self.next_aligned = None
        # (action, connectorId, MeterValues context, stamp) asked for by
        # TriggerMessage (stamp None: now), or an idle connector's
        # clock-aligned reading (stamp: its boundary).
        self.triggered = []
        self.auth_queue = []  # [idTag, connectorId or None, purpose]
        self.status_dirty = {}  # connectorId -> True: send its status
        self.unlocks = {}  # connectorId -> (msg_id, deadline_ms)
        self.reset = None  # [hard, deadline_ms]
        self.vendors = {}  # DataTransfer: vendorId -> {messageId: fn(data) -> (status, data)}
        self.handlers = _handlers(self)
        self.stats = {"started": 0, "stopped": 0}

    # ---- time ----------------------------------------------------------------

    def stamp(self, now):
        """A timestamp to store: epoch ms if the clock is known, else monotonic ms."""
        return now + self.offset if self.offset is not None else now

    def iso(self, stamp):
        """RFC 3339 text of a stamp; None while the clock is unknown (never 1970)."""
        if stamp < _EPOCH_MIN:
            if self.offset is None:
                return None
            stamp += self.offset
        return iso8601(stamp)

    def wall(self, now):
        return None if self.offset is None else now + self.offset

    def _set_clock(self, text, now, rtt=0):
        """currentTime of a BootNotification/Heartbeat answer that took rtt
        ms: the CSMS read its clock between our CALL and its answer, so its
        time now lies in [ms, ms + rtt]. A clock already in that window is
        kept (a slow answer must not set it back); else the middle is taken,
        off by at most rtt / 2."""
        ms = parse_iso8601(text) if type(text) is str else None
        if ms is None or ms < _EPOCH_MIN:
            return
        first = self.offset is None
        if first or not ms <= now + self.offset <= ms + rtt:
            self.offset = ms + rtt // 2 - now
        if first:
            self._event("clock_set", {"utc": iso8601(ms)})
        self._schedule_aligned(now)

    # ---- restoring state from the journal --------------------------------------

    def restore(self, now, session_alive=None, reason="PowerLoss"):
        """Boot: apply what the journal kept (configuration, availability, the
        authorization cache) and settle the transactions that were open.

        session_alive(connector) -> bool says whether the hardware still runs
        that session (controller restart with the contactor closed); those
        resume. The others end with `reason` (PowerLoss; "Reboot" after a
        restart without power loss), meterStop = the last persisted reading
        and its time (firmware/store/recovery.py), queued like any Stop and
        sent once BootNotification is accepted (C16 §4.2, C16E §3.36)."""
        self.now = now
        state = self.store.state
        for key in state.config:
            self.config.load(key, state.config[key])
        for cid in state.availability:
            if cid == 0:
                self.cp_operative = state.availability[cid]
            elif cid < len(self.connectors):
                self.connectors[cid].operative = state.availability[cid]
        for tag in state.cache:
            self.cache.load(tag, state.cache[tag])
        self.txq.configure(self.config.get("TransactionMessageAttempts"), self.config.get("TransactionMessageRetryInterval"))
        alive = session_alive or _no_session
        for act in recover(state, alive, reason):
            local, cid = act[1], act[2]
            o = state.open[local]
            if act[0] == RESUME:
                tx = Transaction(local, cid, o[1], None, o[2], o[3])
                if o[4] is not None:
                    tx.last_wh = o[4]
                c = self.connectors[cid]
                c.tx = tx
                c.plugged = True
                interval = self.config.get("MeterValueSampleInterval")
                c.next_sample = now + interval * 1000 if interval > 0 else None
                self._event("transaction_resumed", {"connector": cid, "localId": local})
                continue
            stop_time = act[5]
            if stop_time < _EPOCH_MIN:
                # Taken before the clock was known, in an earlier boot: that
                # monotonic time means nothing now. The reboot time is the
                # closest true bound we have.
                stop_time = self.stamp(now)
            payload = {"transactionId": 0, "meterStop": act[4], "timestamp": stop_time, "reason": act[3]}
            self.txq.enqueue("StopTransaction", payload, local, now, post=[[R.K_TX_CLOSE, local]])
            # Finishing while the EV that had the session is still plugged in;
            # the first cable report at boot clears it if it is gone.
            self.connectors[cid].finishing = True
            self.stats["stopped"] += 1
            self._event("transaction_stopped", {"connector": cid, "localId": local, "meterStop": act[4], "reason": act[3]})
        self._apply_settings()

    def _apply_settings(self):
        self.actions.append((A_SETTING, "ping_interval", self.config.get("WebSocketPingInterval")))

    # ---- connection ------------------------------------------------------------

    def connected(self, now, version=V16):
        self.now = now
        self.online = True
        self.ep = rpc.Endpoint(
            version,
            self.actions_table,
            self.handlers,
            self,
            check=self.check,
            new_id=self.new_id,
            timeout_ms=self.config.get("MessageTimeout") * 1000,
            log=self.log_frame,
        )
        if self.boot == BOOT_ACCEPTED:
            # A reconnect without a reboot sends no new BootNotification
            # (J16 §5.4); statuses that changed while offline are reported.
            for c in self.connectors[1:]:
                self._collapse_changes(c)
                self._mark_status(c.id)
            self._mark_status(0)
        else:
            # A reconnect does not shorten the wait a Rejected/Pending answer
            # asked for (C16 §4.2.1: nothing is sent before the interval).
            self.next_boot = max(self.next_boot, now)
        self._pump(now)

    def disconnected(self, now):
        self.now = now
        self.online = False
        if self.ep is not None:
            self.ep.lost()
            self.ep = None
        self.auth_queue_offline(now)

    def log_frame(self, direction, mtype, msg_id, action, body, rtt_ms):
        """Replaced by the agent to write the message log."""
        pass

    # ---- receiving ---------------------------------------------------------------

    def receive(self, text, now):
        self.now = now
        if self.ep is None:
            return
        if self.boot == BOOT_REJECTED and not self.ep.busy():
            # Rejected: send nothing and answer nothing until the interval
            # has passed (C16 §4.2.1).
            return
        reply = self.ep.receive(text, now)
        if reply is not None:
            self._send_raw(reply, now)
        if self.later:
            self.actions.extend(self.later)
            self.later = []
        self._pump(now)

    def _send_raw(self, text, now):
        self.actions.append((A_SEND, text))
        self.last_sent = now

    def _call(self, action, payload, ctx):
        text = self.ep.call(action, payload, self.now, ctx)
        self._send_raw(text, self.now)

    # ---- rpc listener -------------------------------------------------------------

    def rpc_result(self, action, payload, ctx, rtt_ms):
        self.rtt = rtt_ms  # for the clock (_set_clock)
        _RESULT[ctx[0]](self, payload, ctx)

    def rpc_error(self, action, key, code, description, details, ctx, rtt_ms):
        self._event("call_error", {"action": action, "code": code, "description": description})
        _FAILED[ctx[0]](self, ctx, "error")

    def rpc_timeout(self, action, ctx):
        self._event("call_timeout", {"action": action})
        _FAILED[ctx[0]](self, ctx, "timeout")

    def rpc_lost(self, action, ctx):
        _FAILED[ctx[0]](self, ctx, "lost")

    def rpc_send(self, action, payload):
        pass

    def rpc_result_error(self, key, code, description, details):
        pass

    # ---- results per kind of call -----------------------------------------------------

    def _boot_result(self, payload, ctx):
        status = payload["status"]
        interval = payload["interval"]
        self._set_clock(payload["currentTime"], self.now, self.rtt)
        self._event("boot", {"status": status, "interval": interval})
        if status == "Accepted":
            self.boot = BOOT_ACCEPTED
            if interval > 0:
                self.config.values["HeartbeatInterval"] = interval
            # After Accepted: report connector 0 and every connector (C16E §3.22).
            for cid in range(len(self.connectors)):
                if cid:
                    self.connectors[cid].changes = []  # the current status goes, not history
                self._mark_status(cid, True)
            return
        self.boot = BOOT_PENDING if status == "Pending" else BOOT_REJECTED
        # interval: the minimum wait before the next BootNotification; 0 = ours to choose (C16 §4.2).
        self.next_boot = self.now + (interval * 1000 if interval > 0 else _BOOT_RETRY_MS)

    def _boot_failed(self, ctx, why):
        self.next_boot = self.now + _BOOT_RETRY_MS

    def _heartbeat_result(self, payload, ctx):
        self._set_clock(payload["currentTime"], self.now, self.rtt)

    def _ignore_result(self, payload, ctx):
        pass

    def _ignore_failure(self, ctx, why):
        pass

    def _status_failed(self, ctx, why):
        # Not retried at once (a CSMS that refuses it would loop us), but the
        # status counts as unreported, so the next change or reconnect
        # carries it (C16E §3.19: changes SHALL be reported).
        if ctx[1]:
            self.connectors[ctx[1]].reported = None
        else:
            self.cp_reported = None

    def _authorize_result(self, payload, ctx):
        id_tag = ctx[1]
        info = payload["idTagInfo"]
        self._cache_put(id_tag, info)
        self._authorized(id_tag, ctx[2], ctx[3], info.get("status"), info.get("parentIdTag"))

    def _authorize_failed(self, ctx, why):
        # No answer: decide as if offline (C16 §3.5: LocalAuthorizeOffline,
        # AllowOfflineTxForUnknownId).
        status, parent = self._offline_decision(ctx[1])
        self._authorized(ctx[1], ctx[2], ctx[3], status, parent)

    def _txq_result(self, payload, ctx):
        if self.txq.on_result(ctx[1], payload, self.now) is None:
            return  # refused by the queue (no usable transactionId): a failed try
        if ctx[2] == "StartTransaction":
            self._start_confirmed(ctx[3], payload)
        elif ctx[2] == "StopTransaction":
            id_info = payload.get("idTagInfo")
            if id_info is not None and ctx[4]:
                self._cache_put(ctx[4], id_info)

    def _txq_failed(self, ctx, why):
        if why == "lost":
            self.txq.on_disconnect(self.now)
            return
        out = self.txq.on_timeout(ctx[1], self.now) if why == "timeout" else self.txq.on_error(ctx[1], self.now)
        if out is not None and out[0] == PARKED:
            # Given up after TransactionMessageAttempts (C16 §3.7): out of the
            # send queue, kept in the journal for export, never silently lost.
            self._event("message_parked", {"action": out[2], "localId": out[3], "seq": out[1]})

    def _cache_put(self, id_tag, info):
        if self.config.get("AuthorizationCacheEnabled"):
            entry = self.cache.put(id_tag, info)
            if entry is not None:
                self.store.set_auth(id_tag, entry)

    # ---- the send pump ----------------------------------------------------------------

    def _pump(self, now):
        """Send the next message if the connection is free: one CALL at a time
        (J16 §4.1.1). Before BootNotification is accepted nothing else goes out,
        except what a TriggerMessage asked for while Pending (C16 §4.2.1)."""
        ep = self.ep
        if ep is None or ep.busy():
            return
        if self.reset is not None and self._reset_due(now):
            return
        if self.boot != BOOT_ACCEPTED:
            if self.boot == BOOT_PENDING and self.triggered:
                self._send_triggered(now)
            elif now >= self.next_boot:
                self._call("BootNotification", self.boot_info, ("boot",))
            return
        if self.triggered:
            self._send_triggered(now)
            return
        if self.auth_queue:
            id_tag, cid, purpose = self.auth_queue.pop(0)
            self._call("Authorize", {"idTag": id_tag}, ("auth", id_tag, cid, purpose))
            return
        while self.status_dirty:
            cid = min(self.status_dirty)
            force = self.status_dirty.pop(cid)
            if self._send_status(cid, now, force):
                return
        due = self.txq.next_due(now, True)
        if due is not None:
            seq, action, payload, attempt = due
            payload = self._materialize(payload)
            if payload is not None:
                local_id = self.store.state.msgs[seq][2]
                self._call(action, payload, ("txq", seq, action, local_id, payload.get("idTag")))
                self.txq.sent(seq, now)
                return
        hb = self.config.get("HeartbeatInterval")
        if hb > 0 and now - self.last_sent >= hb * 1000:
            self._call("Heartbeat", {}, ("hb",))

    def _materialize(self, payload):
        """Timestamps taken before the clock was known become real times now
        (never a 1970 timestamp on the wire); None if the clock is still unknown."""
        out = dict(payload)
        ts = out.get("timestamp")
        if type(ts) is int:
            t = self.iso(ts)
            if t is None:
                return None
            out["timestamp"] = t
        for key in ("meterValue", "transactionData"):
            mvs = out.get(key)
            if mvs:
                fixed = []
                for mv in mvs:
                    t = mv["timestamp"]
                    if type(t) is int:
                        t = self.iso(t)
                        if t is None:
                            return None
                        mv = {"timestamp": t, "sampledValue": mv["sampledValue"]}
                    fixed.append(mv)
                out[key] = fixed
        return out

    # ---- status ------------------------------------------------------------------------

    def _mark_status(self, cid, force=False):
        # force: send even if the CSMS already has this status (after boot,
        # on TriggerMessage); otherwise a change undone before it could be
        # sent is not sent at all.
        self.status_dirty[cid] = force or self.status_dirty.get(cid, False)

    def _status_of(self, cid):
        if cid == 0:
            if self.cp_warning is not None and self.cp_warning[0] == "Faulted":
                return st.FAULTED, self.cp_warning[1]
            s = st.AVAILABLE if self.cp_operative else st.UNAVAILABLE
            return s, self.cp_warning
        c = self.connectors[cid]
        s = st.derive(c)
        problem = c.fault if c.fault is not None else c.warning
        if problem is not None and problem[0] == "EVCommunicationError" and s == st.CHARGING:
            # C16 §7.6: "not a real error ... it should go to the SuspendedEVSE
            # state"; §4.9 allows the code only with Preparing, SuspendedEV,
            # SuspendedEVSE and Finishing.
            s = st.SUSPENDED_EVSE
        return s, problem

    def _status_changed(self, c, now):
        """Re-derive a connector's status; queue it for sending if it changed.

        Every change is reported, in order, each with the time it happened
        (C16E §3.19: changes SHALL be reported): sending only the latest
        status would make the CSMS see jumps the transition table forbids
        (Available -> Finishing after a quick session). While offline the
        changes collapse to the last one (non-transaction messages are not
        queued offline); at most _MAX_CHANGES wait, the oldest go first."""
        s, problem = self._status_of(c.id)
        code = problem[0] if problem else "NoError"
        last = c.changes[-1] if c.changes else c.reported
        if last is not None and last[0] == s and last[1] == code:
            return
        if last is not None and not st.allowed(last[0], s):
            self._event("status_transition_unexpected", {"connector": c.id, "from": last[0], "to": s})
        c.changes.append((s, code, problem[1] if problem else None, self.stamp(now)))
        if len(c.changes) > _MAX_CHANGES:
            del c.changes[0]
        if not self.online:
            self._collapse_changes(c)
        self._mark_status(c.id)
        self._event("status", {"connector": c.id, "status": s, "errorCode": code})

    def _collapse_changes(self, c):
        if c.changes:
            last = c.changes[-1]
            c.changes = [] if c.reported == (last[0], last[1]) else [last]

    def _send_status(self, cid, now, force):
        s, problem = self._status_of(cid)
        code = problem[0] if problem else "NoError"
        info = problem[1] if problem else None
        stamp = self.stamp(now)
        if cid:
            c = self.connectors[cid]
            if c.changes:
                s, code, info, stamp = c.changes.pop(0)
                if c.changes:
                    self.status_dirty[cid] = False  # more changes follow
            elif c.reported == (s, code) and not force:
                return False
            c.reported = (s, code)
        else:
            # Connector 0 too is only reported when it changed (or when
            # forced: after boot, on TriggerMessage), not on every reconnect.
            if self.cp_reported == (s, code) and not force:
                return False
            self.cp_reported = (s, code)
        payload = {"connectorId": cid, "errorCode": code, "status": s}
        t = self.iso(stamp)
        if t is not None:
            payload["timestamp"] = t
        if info:
            payload["info"] = info[:50]
        self._call("StatusNotification", payload, ("status", cid))
        return True

    # ---- timers -------------------------------------------------------------------------

    def tick(self, now):
        self.now = now
        if self.reset is not None:
            self._reset_due(now)
        if self.ep is not None:
            self.ep.poll(now)
        for c in self.connectors[1:]:
            if c.auth is not None and c.tx is None and not c.starting and now >= c.auth[2]:
                # ConnectionTimeOut: no cable in time, the authorization lapses.
                c.auth = None
                self._event("connection_timeout", {"connector": c.id})
                self._status_changed(c, now)
            if c.locking is not None and now >= c.locking:
                self.lock_result(c.id, False, now)  # no feedback in time: a failed lock
            if c.tx is not None and c.next_sample is not None and now >= c.next_sample:
                self._sample(c, now)
        if self.next_aligned is not None and self.offset is not None and now + self.offset >= self.next_aligned:
            self._aligned(now)
        for cid in list(self.unlocks):
            if now >= self.unlocks[cid][1]:
                self._unlock_done(cid, False)
        self._pump(now)

    def next_wake(self):
        """The monotonic ms at which tick() must next run (None: only on events)."""
        # Called after every event: a running minimum, no list.
        t = None
        ep = self.ep
        if ep is not None:
            p = ep.pending
            if p is not None:
                t = p[3]  # the outstanding CALL's deadline
            elif self.boot != BOOT_ACCEPTED:
                t = self.next_boot
            else:
                hb = self.config.values["HeartbeatInterval"]
                if hb > 0:
                    t = self.last_sent + hb * 1000
                w = self.txq.wake_at()
                if w is not None and (t is None or w < t):
                    t = w
        conns = self.connectors
        for i in range(1, len(conns)):
            c = conns[i]
            if c.tx is None:
                if c.auth is not None:
                    w = c.auth[2]
                    if t is None or w < t:
                        t = w
            elif c.next_sample is not None:
                w = c.next_sample
                if t is None or w < t:
                    t = w
            w = c.locking
            if w is not None and (t is None or w < t):
                t = w
        if self.next_aligned is not None and self.offset is not None:
            w = self.next_aligned - self.offset
            if t is None or w < t:
                t = w
        for cid in self.unlocks:
            w = self.unlocks[cid][1]
            if t is None or w < t:
                t = w
        if self.reset is not None:
            w = self.reset[1]
            if t is None or w < t:
                t = w
        return t

    # ---- metering -------------------------------------------------------------------------

    def meter(self, cid, reading, now):
        """A fresh meter reading for a connector (dict, see meter.py)."""
        c = self.connectors[cid]
        c.reading = reading
        c.reading_ms = now
        if c.tx is not None:
            wh = energy_wh(reading)
            if wh is not None:
                c.tx.last_wh = wh

    def _fresh(self, c, now):
        if c.reading is None or now - c.reading_ms > _READING_FRESH_MS:
            return None
        return c.reading

    def _sample(self, c, now):
        interval = self.config.get("MeterValueSampleInterval")
        if interval > 0:
            # From the previous deadline, so late wake-ups do not drift the
            # series (TC_036_CS/TC_070_CS check the spacing of timestamps).
            nxt = c.next_sample + interval * 1000
            c.next_sample = nxt if nxt > now else now + interval * 1000
        else:
            c.next_sample = None
        reading = self._fresh(c, now)
        if reading is None:
            return  # never send a stale reading as a fresh one
        tx = c.tx
        stamp = self.stamp(now)
        checkpoint = [R.K_METER, tx.local_id, tx.last_wh, stamp]
        values = sampled_values(reading, self._measurands("MeterValuesSampledData"), "Sample.Periodic")
        if values:
            # The reading and the PowerLoss checkpoint go to disk in one frame.
            payload = {"connectorId": c.id, "transactionId": 0, "meterValue": [{"timestamp": stamp, "sampledValue": values}]}
            self.txq.enqueue("MeterValues", payload, tx.local_id, now, post=[checkpoint])
        else:
            self.store.write(checkpoint)
        self._stop_data(tx, reading, "StopTxnSampledData", "Sample.Periodic", stamp)

    def _measurands(self, key):
        return self.config.get_list(key) or _DEFAULT_MEASURANDS

    def _stop_data(self, tx, reading, key, context, stamp):
        items = self.config.get_list(key)
        if not items:
            return
        values = sampled_values(reading, items, context)
        if not values:
            return
        tx.stop_data.append({"timestamp": stamp, "sampledValue": values})
        limit = self.config.get("StopTransactionMaxMeterValues")
        if len(tx.stop_data) > limit:
            # Keep Transaction.Begin, drop the oldest intermediate sample.
            del tx.stop_data[1]

    def _schedule_aligned(self, now):
        interval = self.config.get("ClockAlignedDataInterval")
        if interval <= 0 or self.offset is None:
            self.next_aligned = None
            return
        step = interval * 1000
        wall = now + self.offset
        self.next_aligned = (wall // step + 1) * step

    def _aligned(self, now):
        """Clock-aligned readings (C16 §4.7): at multiples of the interval from midnight UTC."""
        stamp = self.next_aligned
        self._schedule_aligned(now)
        items = self._measurands("MeterValuesAlignedData")
        for c in self.connectors[1:]:
            reading = self._fresh(c, now)
            if reading is None:
                continue
            values = sampled_values(reading, items, "Sample.Clock")
            tx = c.tx
            if tx is not None and tx.start >= _EPOCH_MIN and stamp < tx.start:
                # The boundary passed just before this transaction began (the
                # pass runs a little after it): the reading is stamped at the
                # boundary, so it is not the transaction's.
                tx = None
            if tx is not None:
                self._stop_data(tx, reading, "StopTxnAlignedData", "Sample.Clock", stamp)
                if values:
                    payload = {"connectorId": c.id, "transactionId": 0, "meterValue": [{"timestamp": stamp, "sampledValue": values}]}
                    self.txq.enqueue("MeterValues", payload, tx.local_id, now)
            elif values and self.online and self.boot == BOOT_ACCEPTED:
                # Outside a transaction aligned values are not queued offline.
                self.triggered.append(("MeterValues", c.id, "Sample.Clock", stamp))

    # ---- hardware events ---------------------------------------------------------------------

    def plug(self, cid, plugged, now):
        """Cable state from the pilot (state B/C/D = plugged, A = not)."""
        self.now = now
        c = self.connectors[cid]
        if c.plugged == plugged:
            if not plugged and c.finishing and c.tx is None and not c.cable:
                # Boot: a session closed by recovery, and no EV there any more.
                c.finishing = False
                self._status_changed(c, now)
                self._pump(now)
            return
        c.plugged = plugged
        if plugged:
            self._try_start(c, now)
        else:
            c.ev_drawing = False
            if not c.cable:
                c.finishing = False
            if c.fault is not None and c.fault[0] == LOCK_FAILURE:
                c.fault = None  # the failed insertion is over
            if c.tx is not None:
                self._ev_disconnected(c, now)
            elif c.has_lock and c.held_by is None and self.config.get("UnlockConnectorOnEVSideDisconnect"):
                self.actions.append((A_LOCK, cid, False))
        self._status_changed(c, now)
        self._pump(now)

    def cable(self, cid, present, now):
        """Cable in the socket (proximity sense), for sockets that have one.

        The pilot (plug) tells whether an EV is connected; a cable left in the
        socket after the EV side was unplugged keeps the connector Finishing
        until it is removed (C16 §4.9 Finishing: "the cable has not been
        removed"). Connectors that never report this behave as fixed cables.
        """
        self.now = now
        c = self.connectors[cid]
        c.cable = present
        if not present and not c.plugged:
            c.finishing = False
        self._status_changed(c, now)
        self._pump(now)

    def ev_drawing(self, cid, drawing, now):
        """Pilot state C/D (EV asks for energy) vs B (EV paused or full)."""
        self.now = now
        c = self.connectors[cid]
        c.ev_drawing = drawing
        self._status_changed(c, now)
        self._pump(now)

    def _ev_disconnected(self, c, now):
        # C16 §4.10: StopTransactionOnEVSideDisconnect true stops the
        # transaction; false keeps it (SuspendedEV) with the cable locked,
        # overriding UnlockConnectorOnEVSideDisconnect.
        if self.config.get("StopTransactionOnEVSideDisconnect"):
            self._stop(c, "EVDisconnected", now, None)
            if c.has_lock and self.config.get("UnlockConnectorOnEVSideDisconnect"):
                self.actions.append((A_LOCK, c.id, False))

    def card(self, id_tag, now, cid=None):
        """An RFID card (or any local idTag) presented."""
        self.now = now
        for c in self.connectors[1:]:
            if c.held_by == id_tag and c.tx is None:
                # The owner of a deauthorized session gets the cable back (C16 §4.8).
                c.held_by = None
                self.actions.append((A_LOCK, c.id, False))
                self._pump(now)
                return
        for c in self.connectors[1:]:
            tx = c.tx
            if tx is not None and (cid is None or cid == c.id) and tx.id_tag == id_tag:
                self._local_stop(c, now, id_tag)
                return
        # Another card on a busy charger may stop a session that has a
        # parentIdTag, if the card shares it (IdTagInfo.parentIdTag; OCTT TC_069_CS),
        # which needs the card's idTagInfo. A session without a parentIdTag
        # only stops for its own idTag: no Authorize.req then (TC_068_CS).
        running = [c for c in self.connectors[1:] if c.tx is not None and c.tx.parent is not None and (cid is None or cid == c.id)]
        target = self._pick_connector(cid)
        if target is None and running:
            self._authorize(id_tag, running[0].id, "stop", now)
        elif target is None:
            self._event("card_rejected", {"idTag": id_tag, "why": "no connector free"})
        else:
            self._authorize(id_tag, target.id, "start", now)
        self._pump(now)

    def _pick_connector(self, cid):
        cands = self.connectors[1:] if cid is None else [self.connectors[cid]]
        best = None
        for c in cands:
            if c.tx is None and c.fault is None and c.operative and self.cp_operative and not c.starting:
                if c.plugged and c.auth is None:
                    return c
                if best is None and c.auth is None:
                    best = c
        return best

    def _authorize(self, id_tag, cid, purpose, now):
        cached = self.cache.lookup(id_tag, self.wall(now)) if self.config.get("AuthorizationCacheEnabled") else None
        if cached is not None and cached[0] == ACCEPTED and self.config.get("LocalPreAuthorize"):
            self._authorized(id_tag, cid, purpose, ACCEPTED, cached[1])
            return
        if self.online and self.boot == BOOT_ACCEPTED:
            self.auth_queue.append([id_tag, cid, purpose])
            if purpose != "stop":
                c = self.connectors[cid]
                c.auth = [id_tag, None, now + self.config.get("ConnectionTimeOut") * 1000, False]
                c.auth_pending = True
                self._status_changed(c, now)
            return
        status, parent = self._offline_decision(id_tag)
        self._authorized(id_tag, cid, purpose, status, parent)

    def _offline_decision(self, id_tag):
        cached = self.cache.lookup(id_tag, self.wall(self.now)) if self.config.get("AuthorizationCacheEnabled") else None
        if cached is not None:
            if cached[0] == ACCEPTED and not self.config.get("LocalAuthorizeOffline"):
                # C16 §9.1 LocalAuthorizeOffline false: offline, a locally
                # authorized identifier starts nothing. The status only
                # names the refusal in the card_rejected event.
                return NOT_OFFLINE, cached[1]
            return cached[0], cached[1]
        if self.config.get("AllowOfflineTxForUnknownId"):
            return ACCEPTED, None
        return "Invalid", None

    def auth_queue_offline(self, now):
        pending = self.auth_queue
        self.auth_queue = []
        for id_tag, cid, purpose in pending:
            status, parent = self._offline_decision(id_tag)
            self._authorized(id_tag, cid, purpose, status, parent)

    def _authorized(self, id_tag, cid, purpose, status, parent):
        now = self.now
        c = self.connectors[cid]
        if purpose == "stop":
            for c in self.connectors[1:]:
                tx = c.tx
                if status == ACCEPTED and tx is not None and parent is not None and parent == tx.parent:
                    self._stop(c, REASON_LOCAL, now, id_tag)
                    self._unlock_after_stop(c)
                    self._status_changed(c, now)
                    return
            self._event("card_rejected", {"idTag": id_tag, "why": "cannot stop this session"})
            return
        if status != ACCEPTED:
            if c.auth is not None and c.auth[0] == id_tag and c.tx is None:
                c.auth = None
            self._event("card_rejected", {"idTag": id_tag, "status": status})
            self._status_changed(c, now)
            return
        if c.tx is not None or c.fault is not None or not c.operative:
            self._event("card_rejected", {"idTag": id_tag, "why": "connector not free"})
            return
        remote = purpose == "remote"
        c.auth = [id_tag, parent, now + self.config.get("ConnectionTimeOut") * 1000, remote]
        c.auth_pending = False
        self._event("authorized", {"connector": cid, "idTag": id_tag})
        self._try_start(c, now)
        self._status_changed(c, now)

    def _try_start(self, c, now):
        auth = c.auth
        if auth is None or c.auth_pending or not c.plugged or c.tx is not None or c.starting:
            return
        if c.fault is not None or not c.operative or not self.cp_operative:
            return
        if self._fresh(c, now) is None or energy_wh(c.reading) is None:
            self._event("start_refused", {"connector": c.id, "why": "no meter reading"})
            return
        c.starting = True
        if c.has_lock:
            # The contactor closes only once the lock reports locked
            # (IEC 61851-1; a failed lock is ConnectorLockFailure, C16 §7.6,
            # and no transaction starts: OCTT TC_024_CS).
            c.locking = now + UNLOCK_WAIT_MS
            self.actions.append((A_LOCK, c.id, True))
        else:
            self.actions.append((A_RELAY, c.id, True))

    def abort_start(self, c):
        """Call off a start under way: no transaction, the contactor open."""
        c.starting = False
        c.locking = None
        c.auth = None
        self.actions.append((A_RELAY, c.id, False))
        self._event("start_failed", {"connector": c.id, "why": "called off"})
        self._status_changed(c, self.now)

    def relay_result(self, cid, closed, now):
        """Contactor feedback after A_RELAY: closed is what the aux contact says."""
        self.now = now
        c = self.connectors[cid]
        if c.starting and c.locking is None:
            c.starting = False
            if closed and c.auth is not None:
                self._open_transaction(c, now)
            else:
                self._event("start_failed", {"connector": cid, "why": "contactor did not close"})
                c.auth = None
                self.actions.append((A_RELAY, cid, False))
        c.relay_on = closed
        self._status_changed(c, now)
        self._pump(now)

    def _open_transaction(self, c, now):
        id_tag, parent, _, remote = c.auth
        c.auth = None
        c.finishing = False
        wh = energy_wh(c.reading)
        stamp = self.stamp(now)
        local_id = self.store.state.next_local
        tx = Transaction(local_id, c.id, id_tag, parent, wh, stamp)
        payload = {"connectorId": c.id, "idTag": id_tag, "meterStart": wh, "timestamp": stamp}
        # The transaction and its StartTransaction reach the disk in one frame.
        opened = [R.K_TX_OPEN, local_id, c.id, id_tag, wh, stamp]
        self.txq.enqueue("StartTransaction", payload, local_id, now, pre=[opened])
        c.tx = tx
        self.stats["started"] += 1
        self._stop_data(tx, c.reading, "StopTxnSampledData", "Transaction.Begin", stamp)
        interval = self.config.get("MeterValueSampleInterval")
        c.next_sample = now + interval * 1000 if interval > 0 else None
        self._event("transaction_started", {"connector": c.id, "idTag": id_tag, "localId": local_id, "meterStart": wh})

    def _start_confirmed(self, local_id, payload):
        """StartTransaction.conf: the idTagInfo may refuse the session after the fact."""
        info = payload["idTagInfo"]
        c = None
        for x in self.connectors[1:]:
            if x.tx is not None and x.tx.local_id == local_id:
                c = x
        if c is None:
            return
        self._cache_put(c.tx.id_tag, info)
        if info.get("parentIdTag") is not None:
            c.tx.parent = info["parentIdTag"]
        if info.get("status") != ACCEPTED:
            # C16 §4.8 StopTransactionOnInvalidId: stop (DeAuthorized), or
            # only stop offering energy (SuspendedEVSE).
            c.tx.deauthorized = True
            if self.config.get("StopTransactionOnInvalidId"):
                # The cable stays locked until the owner presents the idTag (C16 §4.8).
                if c.has_lock:
                    c.held_by = c.tx.id_tag
                self._stop(c, "DeAuthorized", self.now, None)
            else:
                self.actions.append((A_RELAY, c.id, False))
                c.relay_on = False
            self._status_changed(c, self.now)

    def _stop(self, c, reason, now, id_tag):
        """End the connector's transaction: open the contactor, queue StopTransaction."""
        tx = c.tx
        if tx is None:
            return
        self.actions.append((A_RELAY, c.id, False))
        c.relay_on = False
        reading = self._fresh(c, now)
        wh = energy_wh(reading) if reading is not None else None
        if wh is None:
            wh = tx.last_wh  # the last good reading; never a guess
        stamp = self.stamp(now)
        if reading is not None:
            self._stop_data(tx, reading, "StopTxnSampledData", "Transaction.End", stamp)
        payload = {"transactionId": 0, "meterStop": wh, "timestamp": stamp, "reason": reason}
        if id_tag is not None:
            payload["idTag"] = id_tag
        if tx.stop_data:
            payload["transactionData"] = tx.stop_data
        # The Stop and the close reach the disk in one frame: a power cut
        # never leaves an open transaction whose Stop is already queued.
        self.txq.enqueue("StopTransaction", payload, tx.local_id, now, post=[[R.K_TX_CLOSE, tx.local_id]])
        c.tx = None
        c.next_sample = None
        c.finishing = c.plugged or bool(c.cable)
        self.stats["stopped"] += 1
        self._event("transaction_stopped", {"connector": c.id, "localId": tx.local_id, "meterStop": wh, "reason": reason})
        if c.scheduled is not None:
            self._set_available(c, c.scheduled)
            c.scheduled = None

    def _unlock_after_stop(self, c):
        if c.has_lock:
            self.actions.append((A_LOCK, c.id, False))

    def local_stop(self, cid, now):
        """A stop asked for at the charger itself (a stop button, the bench
        console): reason Local, no idTag in the StopTransaction (C16 §7.36;
        idTag is optional there), the cable released. False when connector
        `cid` has no transaction."""
        self.now = now
        c = self.connectors[cid]
        if c.tx is None:
            return False
        self._local_stop(c, now, None)
        return True

    def _local_stop(self, c, now, id_tag):
        self._stop(c, REASON_LOCAL, now, id_tag)
        self._unlock_after_stop(c)
        self._status_changed(c, now)
        self._pump(now)

    def stop_all(self, reason, now):
        """End every running transaction with `reason` (C16 §7.36), e.g.
        "PowerLoss" when the supply fails (with backup power, before going
        down) or after a reboot for transactions restore() brought back, or
        "EmergencyStop". The StopTransaction.req messages are queued like any
        other; the cable stays locked (the charger decides when to release it).
        """
        self.now = now
        for c in self.connectors[1:]:
            if c.tx is not None:
                self._stop(c, reason, now, None)
                self._status_changed(c, now)
        self._pump(now)

    def lock_result(self, cid, locked, now):
        """Lock feedback after A_LOCK."""
        self.now = now
        c = self.connectors[cid]
        if c.locking is not None:
            c.locking = None
            if locked and c.auth is not None and c.plugged and c.fault is None:
                self.actions.append((A_RELAY, cid, True))
            else:
                c.starting = False
                if not locked:
                    c.auth = None
                    c.fault = (LOCK_FAILURE, None)
                    self._event("start_failed", {"connector": cid, "why": "connector lock failed"})
                    self._status_changed(c, now)
                self.actions.append((A_LOCK, cid, False))
        elif cid in self.unlocks:
            self._unlock_done(cid, not locked)
        self._pump(now)

    def _unlock_done(self, cid, ok):
        msg_id = self.unlocks.pop(cid)[0]
        if self.ep is not None and msg_id in self.ep.deferred:
            text = self.ep.answer(msg_id, {"status": "Unlocked" if ok else "UnlockFailed"})
            self._send_raw(text, self.now)

    def fault(self, cid, code, info, now):
        """A hardware fault: the connector (or 0: the whole charger) is Faulted.

        A running transaction ends (reason Other): energy must not flow
        through a faulted contactor or unmetered."""
        self.now = now
        targets = self.connectors[1:] if cid == 0 else [self.connectors[cid]]
        for c in targets:
            c.fault = (code, info)
            if c.tx is not None:
                self._stop(c, "Other", now, None)
            c.auth = None
            self._status_changed(c, now)
        self._event("fault", {"connector": cid, "errorCode": code, "info": info})
        self._pump(now)

    def fault_cleared(self, cid, now):
        self.now = now
        targets = self.connectors[1:] if cid == 0 else [self.connectors[cid]]
        for c in targets:
            c.fault = None
            self._status_changed(c, now)
        self._pump(now)

    def warning(self, cid, code, info, now):
        """An error that leaves the status as it is (C16 §4.9: errorCode with a
        non-Faulted status), e.g. ReaderFailure on connector 0. code None clears."""
        self.now = now
        w = (code, info) if code else None
        if cid == 0:
            self.cp_warning = w
            self._mark_status(0)
        else:
            c = self.connectors[cid]
            c.warning = w
            self._status_changed(c, now)
        self._pump(now)

    # ---- availability -----------------------------------------------------------------------

    def _set_available(self, c, operative):
        c.operative = operative
        self.store.set_availability(c.id, operative)
        self._status_changed(c, self.now)

    # ---- reset --------------------------------------------------------------------------------

    def _reset_due(self, now):
        """Reset once the stops are delivered, or at the deadline: they are
        persisted either way and go out after the reboot (C16 §5.14, C16E §3.36)."""
        hard, deadline = self.reset
        drained = self.ep is not None and not self.ep.busy() and self.txq.next_due(now, True) is None
        if now >= deadline or drained:
            self.actions.append((A_RESET, hard))
            self.reset = None
            self.ep = None  # nothing more goes out before the reboot
            return True
        return False

    def _event(self, name, data):
        self.actions.append((A_EVENT, name, data))

    def _send_triggered(self, now):
        action, cid, context, stamp = self.triggered.pop(0)
        if action == "BootNotification":
            self._call("BootNotification", self.boot_info, ("boot",))
        elif action == "Heartbeat":
            self._call("Heartbeat", {}, ("hb",))
        elif action == "StatusNotification":
            # The CSMS asks for the status now: it supersedes what was queued.
            self.status_dirty.pop(cid, None)
            if cid:
                self.connectors[cid].changes = []
            self._send_status(cid, now, True)
        elif not self._send_meter_now(cid, now, context, stamp):
            self._pump(now)

    def meter_values_now(self, cid, now, context="Trigger"):
        """The sampledValue list a MeterValues.req sent now would carry
        (empty without a fresh reading: a stale one is never sent)."""
        reading = self._fresh(self.connectors[cid], now)
        key = "MeterValuesSampledData" if context == "Trigger" else "MeterValuesAlignedData"
        return sampled_values(reading, self._measurands(key), context) if reading else []

    def _send_meter_now(self, cid, now, context, stamp=None):
        """A MeterValues.req of the reading now: TriggerMessage's (stamp
        None: the time now, with the transaction under way), or an idle
        connector's clock-aligned one (stamp: its boundary, no transaction,
        even if one has begun since: C16 §4.7)."""
        c = self.connectors[cid]
        values = self.meter_values_now(cid, now, context)
        if not values:
            return False
        payload = {"connectorId": cid, "meterValue": [{"timestamp": self.iso(self.stamp(now) if stamp is None else stamp), "sampledValue": values}]}
        if c.tx is not None and stamp is None:
            tx_id = self.store.state.transaction_id(c.tx.local_id)
            if tx_id is not None:
                payload["transactionId"] = tx_id
        self._call("MeterValues", payload, ("mv",))
        return True


_RESULT = {
    "boot": ChargePoint._boot_result,
    "hb": ChargePoint._heartbeat_result,
    "status": ChargePoint._ignore_result,
    "auth": ChargePoint._authorize_result,
    "txq": ChargePoint._txq_result,
    "mv": ChargePoint._ignore_result,
}
_FAILED = {
    "boot": ChargePoint._boot_failed,
    "hb": ChargePoint._ignore_failure,
    "status": ChargePoint._status_failed,
    "auth": ChargePoint._authorize_failed,
    "txq": ChargePoint._txq_failed,
    "mv": ChargePoint._ignore_failure,
}


def _no_session(connector):
    return False


def _handlers(cp):
    from firmware.ocpp.v16 import handlers

    return handlers.bind(cp)
