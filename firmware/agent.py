# The agent: the only owner of asyncio tasks. It wires the sans-I/O charge
# point (firmware/ocpp/v16), the journal (firmware/store), the transport
# (firmware/net) and the board's hardware, and performs what the core asks.
#
#   agent = Agent(settings, hardware)
#   await agent.run()          # until reboot() or stop()
#   main("config.json")        # a device's main.py: see firmware/main.py
#
# settings (dict, from config.json on a device or the emulator's options):
#   identity, csms_url              required
#   connectors                      default 1
#   state_dir                       where the journal lives (default ".")
#   sync                            fsync every journal record (default True;
#                                   an emulated fleet may turn it off and says so:
#                                   records are then handed to the OS once per
#                                   step, after the actions of an event)
#   vendor, model, serial, firmware_version, meter_type, meter_serial:
#                                   BootNotification fields
#   subprotocols, security_profile, authorization_key, authorization_key_format,
#   ca_file, ca_data, client_cert_file, client_key_file, backoff_*_s,
#   connect_timeout_s, pong_timeout_s: passed to the transport (firmware/net)
#   ocpp                            {configuration key: value} board defaults
#   log_frames                      print the message log (default True)
#   message_log                     also append it to this file (JSON lines)
#
# The hardware object (built by boards/<board>.py) is duck-typed:
#   hw.connectors, hw.fixed_cable (tuple of bools, index 0 unused)
#   hw.listener = fn(event)   set by the agent; the hardware calls it with
#       ("plug", cid, bool) ("drawing", cid, bool) ("cable", cid, bool)
#       ("relay", cid, closed) ("lock", cid, locked) ("card", idTag, cid|None)
#       ("meter", cid, reading|None) ("fault", cid, code, info) ("fault_cleared", cid)
#       ("warning", cid, code|None, info)
#   hw.relay(cid, on), hw.lock(cid, locked): commands; feedback comes as events
#       (relay/lock events are mandatory answers, within the driver's timeout)
#   hw.start(): list of coroutines to run as tasks (pollers); may be empty
#   hw.session_alive(cid) -> bool: at boot, does that session still run?
#   hw.reset(hard): reboot the controller (host: ends run())
#   hw.console_*(req): optional bench commands (plug, charge, fault...)
#   hw.snapshot(): optional; the parts' own state for the console's status
import asyncio

from firmware import compat
from firmware.clock import iso8601
from firmware.compat import Monotonic, json_dumps, print_exception
from firmware.console import Console, event_line
from firmware.ocpp import msglog
from firmware.ocpp.v16 import chargepoint as cpm
from firmware.ocpp.v16.config import Config
from firmware.store.journal import problem_text
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
from firmware.hw.status import error_code

_SOON_MS = 20  # never sleep less: coalesces bursts of events
_MAX_SLEEP_MS = 60000
_EPOCH_2024 = 1704067200000

_BOOT_FIELDS = (
    ("vendor", "chargePointVendor"),
    ("model", "chargePointModel"),
    ("serial", "chargePointSerialNumber"),
    ("firmware_version", "firmwareVersion"),
    ("meter_type", "meterType"),
    ("meter_serial", "meterSerialNumber"),
)



def boot_info(settings):
    out = {}
    for key, field in _BOOT_FIELDS:
        v = settings.get(key)
        if v:
            out[field] = v
    out.setdefault("chargePointVendor", "OpenChargeAgent")
    out.setdefault("chargePointModel", "Generic")
    return out


class Agent:
    def __init__(self, settings, hw, transport_factory=None, tables=None, mono=None, wall_ms=None, out=None):
        self.settings = settings
        self.hw = hw
        self.mono = mono or Monotonic()
        # out(line) receives event lines (and frames while log_frames);
        # out=False discards them (fleets: no line is even built).
        self.out = _print if out is None else out
        self.running = False
        self._stop_asked = False  # stop() before run(): run() returns at once
        self.reboot_requested = None
        self.console_writers = []
        self.frames_to_console = False
        self.mem_peak = 0
        self.log_frames = settings.get("log_frames", True)
        path = settings.get("message_log")
        self.log_file = open(path, "a") if path else None
        n = settings.get("connectors", hw.connectors)
        path = settings.get("state_dir", ".") + "/journal.bin"
        sync = settings.get("sync", True)
        self.store = Store(path, sync=sync, batched=not sync)
        problems = self.store.load()
        self.txq = TxQueue(self.store)
        if tables is None:
            from firmware.ocpp.schemas import load
            from firmware.ocpp.validate import check

            tables = (load("ocpp1.6").ACTIONS, check)
        if wall_ms is None:
            # The core wants the wall clock at monotonic 0, which was before
            # the journal replay above (long on a big journal).
            w = int((compat.wall_time() + compat.wall_offset_s()) * 1000) - self.mono.now()
            wall_ms = w if w >= _EPOCH_2024 else None  # a clock at 1970/2000 is no clock
        cfg = Config(overrides=settings.get("ocpp"), connectors=n)
        self.cp = cpm.ChargePoint(
            settings["identity"], n, self.store, self.txq, boot_info(settings), config=cfg, check=tables[1], actions_table=tables[0], wall_ms=wall_ms
        )
        self._set_frame_log()
        fixed = getattr(hw, "fixed_cable", None)
        for c in self.cp.connectors[1:]:
            c.has_lock = not (fixed and fixed[c.id])
        for p in problems:
            # A torn or corrupt record was skipped; everything before it was kept.
            self._emit("journal_problem", {"problem": problem_text(p)})
        now = self.mono.now()
        self.cp.restore(now, hw.session_alive)
        hw.listener = self.hw_event
        self.transport = (transport_factory or _default_transport)(self._transport_config(), self)
        # A transport that can write without awaiting takes frames at once;
        # the sender task serves the others (and waits out a full buffer).
        self._send_now = getattr(self.transport, "send_nowait", None)
        self.console = Console(self)
        self._wake = asyncio.Event()
        self._sleep_until = 0
        self._outbox = []
        self._out_ready = asyncio.Event()
        self._performing = False
        self._held = []  # hardware events that arrived while performing
        self._perform()

    # ---- settings for the transport ------------------------------------------------

    def _transport_config(self):
        s = self.settings
        cfg = {"url": s["csms_url"], "identity": s["identity"], "subprotocols": s.get("subprotocols", ("ocpp1.6",))}
        for key in (
            "security_profile",
            "authorization_key",
            "authorization_key_format",
            "ca_file",
            "ca_data",
            "client_cert_file",
            "client_key_file",
            "connect_timeout_s",
            "pong_timeout_s",
            "backoff_min_s",
            "backoff_base_s",
            "backoff_max_s",
            "backoff_reset_s",
        ):
            if key in s:
                cfg[key] = s[key]
        # Values the CSMS set through ChangeConfiguration win over the file.
        conf = self.cp.config
        cfg["ping_interval_s"] = conf.get("WebSocketPingInterval")
        if conf.get("AuthorizationKey"):
            cfg["authorization_key"] = conf.get("AuthorizationKey")
        if conf.get("SecurityProfile") > cfg.get("security_profile", 0):
            cfg["security_profile"] = conf.get("SecurityProfile")
        return cfg

    # ---- transport callbacks -----------------------------------------------------------

    def on_open(self, subprotocol):
        self._emit("connected", {"subprotocol": subprotocol})
        self.cp.connected(self.mono.now())
        self._perform()

    def on_message(self, text):
        self.cp.receive(text, self.mono.now())
        self._perform()

    def on_close(self, code, reason):
        self._emit("disconnected", {"code": code, "reason": reason})
        self.cp.disconnected(self.mono.now())
        self._perform()

    def on_fail(self, kind, detail):
        self._emit("connect_failed", {"kind": kind, "detail": detail})

    # ---- hardware events ---------------------------------------------------------------

    def hw_event(self, ev):
        if self._performing:
            # Feedback to a command we are still performing (a simulated
            # relay answers at once): handled right after, in order.
            self._held.append(ev)
            return
        if self._hw_apply(ev):
            self._perform()

    def _hw_apply(self, ev):
        # Hands one hardware event to the core; False if it cannot have
        # asked for anything.
        now = self.mono.now()
        kind = ev[0]
        cp = self.cp
        if kind == "meter":
            cp.meter(ev[1], ev[2], now)
            return False  # a reading changes nothing by itself
        fn = _HW_EVENTS.get(kind)
        if fn is None:
            self._emit("hw_unknown_event", {"kind": kind})
            return False
        fn(self, cp, ev, now)
        return True

    # ---- performing what the core asks -------------------------------------------------

    def _perform(self):
        cp = self.cp
        held = self._held
        while True:
            self._performing = True
            try:
                while cp.actions:
                    acts = cp.actions
                    cp.actions = []
                    for a in acts:
                        _ACTIONS[a[0]](self, a)
            finally:
                self._performing = False
            if not held:
                break
            # The feedback held meanwhile, in order, and what it asks for:
            # one journal flush and one look at the timers for all of it.
            self._hw_apply(held.pop(0))
        self._flush_journal()
        w = cp.next_wake()
        if w is not None and w < self._sleep_until:
            self._rearm(w)

    def _flush_journal(self):
        # An unsynced journal hands what this step wrote to the OS now.
        self.store.flush()

    def _rearm(self, w):
        # The timer loop sleeps past a new deadline w: wake it to sleep less.
        self._wake.set()

    def _send(self, a):
        if self._send_now is not None and not self._outbox:
            ok = self._send_now(a[1])
            if ok:
                return
            if ok is not None:
                self._emit("send_dropped", {"bytes": len(a[1])})
                return
        self._outbox.append(a[1])
        self._out_ready.set()

    def _relay(self, a):
        self.hw.relay(a[1], a[2])

    def _lock(self, a):
        self.hw.lock(a[1], a[2])

    def _reset(self, a):
        self.reboot_requested = "hard" if a[1] else "soft"
        self._emit("reboot", {"type": self.reboot_requested})
        self.running = False
        self._wake.set()

    def _event(self, a):
        self._emit(a[1], a[2])

    def _setting(self, a):
        name, value = a[1], a[2]
        if name == "ping_interval":
            if self.transport is not None:
                self.transport.set_ping_interval(value)
        else:
            self._emit("setting_changed", {"name": name})

    def _reconnect(self, a):
        # A new AuthorizationKey or SecurityProfile: reconnect with it once
        # the answer is out (SEC16 A01); the send loop does it in order.
        self._outbox.append(None)
        self._out_ready.set()

    # ---- output ---------------------------------------------------------------------------

    def _emit(self, name, data):
        if self.out is False and not self.console_writers:
            return
        line = event_line(name, data)
        if self.out is not False and (self.log_frames or name != "frame"):
            self.out(line)
        for w in self.console_writers:
            w(line)

    def _set_frame_log(self):
        # The core's frame log callback, only while something takes its lines
        # (a fleet that prints nothing builds no record per frame).
        wanted = (self.log_frames and self.out is not False) or self.frames_to_console or self.log_file is not None
        fn = self._log_frame if wanted else None
        self.cp.log_frame = fn
        if self.cp.ep is not None:
            self.cp.ep.log = fn

    def _log_frame(self, direction, mtype, msg_id, action, body, rtt_ms):
        wall = self.cp.wall(self.mono.now())
        rec = msglog.record(wall if wall is not None else 0, direction, mtype, msg_id, action, body, rtt_ms)
        rec["event"] = "frame"
        line = json_dumps(rec)
        if self.log_frames and self.out is not False:
            self.out(line)
        if self.log_file is not None:
            self.log_file.write(line + "\n")
            self.log_file.flush()
        if self.frames_to_console:
            for w in self.console_writers:
                w(line)

    # ---- tasks ----------------------------------------------------------------------------

    async def run(self):
        """Run until a reboot is asked for (returns "hard"/"soft") or stop()."""
        self.running = not self._stop_asked
        tasks = [asyncio.create_task(self.transport.run()), asyncio.create_task(self._sender())]
        for coro in self.hw.start():
            tasks.append(asyncio.create_task(coro))
        try:
            await self._timers()
        finally:
            try:
                await self.transport.stop()
            except Exception as e:
                print_exception(e)
            for t in tasks:
                t.cancel()
            self.store.close()
            if self.log_file is not None:
                self.log_file.close()
        return self.reboot_requested

    def stop(self):
        self._stop_asked = True
        self.running = False
        self._wake.set()

    def step(self):
        """One pass of the timers: read the clock, run what is due, perform
        the actions; returns the clock's `now`. run() calls it in a loop;
        with an injected clock (mono=) a caller that moved the clock calls
        it to have the agent act at that moment."""
        now = self.mono.now()
        refresh = getattr(self.hw, "refresh", None)
        if refresh is not None:
            refresh()  # hardware that reads its meter on demand
        self.cp.tick(now)
        self._perform()
        return now

    async def _timers(self):
        while self.running:
            delay = self.timer_pass()
            if delay is None:
                break
            self._wake.clear()
            await compat.wait_event(self._wake, delay)

    def timer_pass(self):
        """step(), then how long (ms) until the next one is due; None once
        the agent stops. Until then, self._wake.set() asks for an earlier
        pass (a fleet's shared timer replaces _timers() with these)."""
        if not self.running:
            return None
        now = self.step()
        if not self.running:
            return None
        w = self.cp.next_wake()
        delay = _MAX_SLEEP_MS if w is None else w - now
        if delay < _SOON_MS:
            delay = _SOON_MS
        elif delay > _MAX_SLEEP_MS:
            delay = _MAX_SLEEP_MS
        self._sleep_until = now + delay
        return delay

    async def _sender(self):
        out = self._outbox
        while True:
            if not out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            text = out.pop(0)
            if text is None:
                await self.transport.reconfigure(self._transport_config())
                continue
            if not await self.transport.send(text):
                # The connection went between the core's decision and the
                # socket: the core hears of it from on_close and resends what
                # must be resent (the queue gives the try back).
                self._emit("send_dropped", {"bytes": len(text)})

    # ---- bench console ------------------------------------------------------------------

    def console_status(self, req):
        cp = self.cp
        now = self.mono.now()
        conns = []
        for c in cp.connectors[1:]:
            s, problem = cp._status_of(c.id)
            entry = {"connector": c.id, "status": s, "errorCode": problem[0] if problem else "NoError", "plugged": c.plugged, "relay": c.relay_on}
            if c.tx is not None:
                entry["transaction"] = {
                    "localId": c.tx.local_id,
                    "transactionId": self.store.state.transaction_id(c.tx.local_id),
                    "idTag": c.tx.id_tag,
                    "meterStart": c.tx.meter_start,
                    "energyWh": c.tx.last_wh - c.tx.meter_start,
                }
            conns.append(entry)
        wall = cp.wall(now)
        out = {
            "identity": cp.identity,
            "online": cp.online,
            "boot": ("none", "pending", "accepted", "rejected")[cp.boot],
            "clock": iso8601(wall) if wall is not None else None,
            "connectors": conns,
            "queued": len(self.txq),
        }
        snapshot = getattr(self.hw, "snapshot", None)
        if snapshot is not None:
            out["hw"] = snapshot()  # what the parts themselves say (contacts, lock)
        return out

    def console_card(self, req):
        tag = req.get("idTag")
        if not tag:
            raise ValueError("card needs an idTag")
        present = getattr(self.hw, "present", None)
        if present is not None and present(tag):
            return {"via": "reader"}  # the board's card reader driver reads it
        self.hw_event(("card", tag, req.get("connector")))
        return {"via": "direct"}

    def console_stop(self, req):
        c = self._connector(req)
        if not self.cp.local_stop(c.id, self.mono.now()):
            raise ValueError("no transaction on connector %d" % c.id)
        self._perform()
        return None

    def console_get(self, req):
        key = req.get("key")
        conf = self.cp.config
        if key not in conf.keys:
            raise ValueError("unknown key " + str(key))
        known, _ = conf.listing([key])
        return {"key": key, "value": known[0].get("value"), "readonly": known[0]["readonly"]}

    def console_set(self, req):
        # The same path as a ChangeConfiguration from the CSMS (validated,
        # persisted, applied), so the bench cannot set what the CSMS could not.
        from firmware.ocpp.v16.handlers import on_change_configuration

        key, value = req.get("key"), req.get("value")
        if not key or value is None:
            raise ValueError("set needs KEY VALUE")
        self.cp.now = self.mono.now()
        status = on_change_configuration(self.cp, {"key": key, "value": str(value)})["status"]
        self.actions_after_console()
        if status not in ("Accepted", "RebootRequired"):
            raise ValueError("%s: %s" % (key, status))
        return {"status": status}

    def actions_after_console(self):
        self.cp.actions.extend(self.cp.later)
        self.cp.later = []
        self._perform()

    def console_frames(self, req):
        self.frames_to_console = req.get("state", "on") != "off"
        self._set_frame_log()
        return {"frames": self.frames_to_console}

    def console_queue(self, req):
        st = self.store.state
        return {"queued": len(st.order), "parked": len(st.parked_seqs()), "open": len(st.open), "counters": self.txq.counters}

    def console_reboot(self, req):
        self.cp.actions.append((cpm.A_RESET, req.get("type") == "hard"))
        self._perform()
        return None

    def console_mem(self, req):
        # The live heap after a collection and the largest such figure
        # since boot (MicroPython; CPython reports zeros).
        compat.collect()
        used = compat.mem_alloc()
        if used > self.mem_peak:
            self.mem_peak = used
        return {"alloc": used, "free": compat.mem_free(), "peak": self.mem_peak}

    def console_help(self, req):
        from firmware.console import HELP

        return {"help": HELP}

    def _connector(self, req):
        cid = req.get("connector") or 1
        if type(cid) is not int or cid < 1 or cid >= len(self.cp.connectors):
            raise ValueError("no connector %r" % (cid,))
        return self.cp.connectors[cid]

    def __getattr__(self, name):
        # Bench commands the hardware offers (plug, charge, fault...).
        if name.startswith("console_"):
            fn = getattr(self.hw, name, None)
            if fn is not None:
                return fn
        raise AttributeError(name)


def _print(line):
    print(line)


def main(config_path="config.json"):
    """The device entry point (main.py written by host_tools/flash.py):
    firmware/main.py reads config_path, builds the board, runs the agent
    and resets the controller when a reboot is asked for."""
    from firmware.main import main as run_config

    return run_config(config_path)


def _default_transport(config, agent, opener=None):
    from firmware.net.manager import Transport

    return Transport(config, on_open=agent.on_open, on_message=agent.on_message, on_close=agent.on_close, on_fail=agent.on_fail, opener=opener)


def _ev_plug(agent, cp, ev, now):
    cp.plug(ev[1], ev[2], now)


def _ev_drawing(agent, cp, ev, now):
    cp.ev_drawing(ev[1], ev[2], now)


def _ev_cable(agent, cp, ev, now):
    cp.cable(ev[1], ev[2], now)


def _ev_relay(agent, cp, ev, now):
    cp.relay_result(ev[1], ev[2], now)


def _ev_lock(agent, cp, ev, now):
    cp.lock_result(ev[1], ev[2], now)


def _ev_card(agent, cp, ev, now):
    cp.card(ev[1], now, ev[2])


def _ev_fault(agent, cp, ev, now):
    cp.fault(ev[1], error_code(ev[2]), ev[3], now)


def _ev_fault_cleared(agent, cp, ev, now):
    cp.fault_cleared(ev[1], now)


def _ev_warning(agent, cp, ev, now):
    cp.warning(ev[1], error_code(ev[2]) if ev[2] else None, ev[3], now)


_HW_EVENTS = {
    "plug": _ev_plug,
    "drawing": _ev_drawing,
    "cable": _ev_cable,
    "relay": _ev_relay,
    "lock": _ev_lock,
    "card": _ev_card,
    "fault": _ev_fault,
    "fault_cleared": _ev_fault_cleared,
    "warning": _ev_warning,
}

_ACTIONS = {
    cpm.A_SEND: Agent._send,
    cpm.A_RELAY: Agent._relay,
    cpm.A_LOCK: Agent._lock,
    cpm.A_RESET: Agent._reset,
    cpm.A_EVENT: Agent._event,
    cpm.A_SETTING: Agent._setting,
    cpm.A_RECONNECT: Agent._reconnect,
}
