# A charge point core wired to in-memory parts and a scripted CSMS, for the
# state-machine tests on both runtimes. The clock is fake; frames are
# decoded so tests assert on what goes over the wire.
from firmware.compat import json_loads, json_dumps
from firmware.ocpp.v16 import chargepoint as cpm
from firmware.ocpp.v16.config import Config
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
from tests.store_helpers import scratch_dir, remove_tree

V16_ACTIONS = (
    "Authorize BootNotification CancelReservation ChangeAvailability ChangeConfiguration ClearCache "
    "ClearChargingProfile DataTransfer DiagnosticsStatusNotification FirmwareStatusNotification "
    "GetCompositeSchedule GetConfiguration GetDiagnostics GetLocalListVersion Heartbeat MeterValues "
    "RemoteStartTransaction RemoteStopTransaction ReserveNow Reset SendLocalList SetChargingProfile "
    "StartTransaction StatusNotification StopTransaction TriggerMessage UnlockConnector UpdateFirmware"
).split()

BOOT_INFO = {"chargePointVendor": "Open", "chargePointModel": "Bench-1"}
T0 = 1795588000000  # the charger's own clock at power-up (epoch ms)
T0_ISO = "2026-11-25T06:26:40.000Z"  # the CSMS clock: the same instant


def _tables():
    try:
        from firmware.ocpp.schemas import load
        from firmware.ocpp.validate import check

        return load("ocpp1.6").ACTIONS, check
    except ImportError:
        return dict((a, (None, None)) for a in V16_ACTIONS), (lambda node, value: None)


_last_dir = [None]


def _fresh_store_dir():
    # One scratch journal per Bench; the previous one is removed (tests run
    # one after another), so build/ does not grow with the suite.
    if _last_dir[0] is not None:
        try:
            remove_tree(_last_dir[0])
        except OSError:
            pass
    _last_dir[0] = scratch_dir()
    return _last_dir[0]


def open_store(path):
    """The journal-backed store and queue, as the agent opens them at boot.
    Unsynced: these tests are about behaviour; durability has its own tests."""
    store = Store(path + "/journal.bin", sync=False)
    store.load()
    return store, TxQueue(store)


class Bench:
    """One charge point, its parts, and the frames it sent (decoded)."""

    def __init__(self, connectors=1, overrides=None, wall=T0, auto_hw=True, fixed_cable=False):
        self.now = 0
        self.dir = _fresh_store_dir()
        self.store, self.txq = open_store(self.dir)
        self.connectors = connectors
        self.overrides = overrides
        self.fixed_cable = fixed_cable
        self.ids = [0]
        self.sent = []  # decoded frames the charger sent
        self.events = []
        self.relays = {}
        self.locks = {}
        self.resets = []
        self.settings = []
        self.auto_hw = auto_hw
        self.lock_fails = set()  # connectors whose lock does not move (auto_hw)
        self.hw = []  # ("lock" | "relay", connector, on) in the order commanded
        self.wh = {}
        self.cp = self._make_cp(wall)
        self.drain()

    def _make_cp(self, wall):
        actions, check = _tables()
        ids = self.ids

        def new_id():
            ids[0] += 1
            return "m%d" % ids[0]

        cfg = Config(overrides=self.overrides, connectors=self.connectors)
        cp = cpm.ChargePoint("CP1", self.connectors, self.store, self.txq, BOOT_INFO, config=cfg, new_id=new_id, check=check, actions_table=actions, wall_ms=wall)
        for c in cp.connectors[1:]:
            c.has_lock = not self.fixed_cable
        return cp

    def reboot(self):
        """Power cycle: a new core on the same store and transaction queue
        (what survives on flash), restored from the store; the wall clock
        kept running, the monotonic clock starts again at 0. Frames sent
        before the reboot are dropped from `sent`."""
        wall = self.cp.wall(self.now)
        self.sent = []
        self.store.close()
        self.store, self.txq = open_store(self.dir)
        self.now = 0
        self.relays = {}
        self.locks = {}
        self.cp = self._make_cp(wall)
        self.cp.restore(0)
        self.drain()

    # -- plumbing --
    def drain(self):
        while self.cp.actions:
            acts = self.cp.actions
            self.cp.actions = []
            for a in acts:
                kind = a[0]
                if kind == cpm.A_SEND:
                    self.sent.append(json_loads(a[1]))
                elif kind == cpm.A_RELAY:
                    self.relays[a[1]] = a[2]
                    self.hw.append(("relay", a[1], a[2]))
                    if self.auto_hw:
                        self.cp.relay_result(a[1], a[2], self.now)
                elif kind == cpm.A_LOCK:
                    self.locks[a[1]] = a[2]
                    self.hw.append(("lock", a[1], a[2]))
                    if self.auto_hw:
                        moved = a[1] not in self.lock_fails
                        self.cp.lock_result(a[1], a[2] if moved else not a[2], self.now)
                elif kind == cpm.A_EVENT:
                    self.events.append((a[1], a[2]))
                elif kind == cpm.A_RESET:
                    self.resets.append(a[1])
                elif kind == cpm.A_SETTING:
                    self.settings.append((a[1], a[2]))
                elif kind == cpm.A_RECONNECT:
                    self.settings.append(("reconnect", None))

    def at(self, ms):
        """Move the fake clock to ms and run the timers."""
        self.now = ms
        self.cp.tick(ms)
        self.drain()

    def advance(self, ms):
        self.at(self.now + ms)

    def take(self):
        out = self.sent
        self.sent = []
        return out

    def last_call(self):
        for f in reversed(self.sent):
            if f[0] == 2:
                return f
        return None

    def calls(self, action=None):
        return [f for f in self.sent if f[0] == 2 and (action is None or f[2] == action)]

    def actions(self):
        """The actions of the CALLs sent, in order."""
        return [f[2] for f in self.sent if f[0] == 2]

    def payloads(self, action):
        return [f[3] for f in self.sent if f[0] == 2 and f[2] == action]

    # -- the CSMS side --
    def connect(self):
        self.cp.connected(self.now)
        self.drain()

    def disconnect(self):
        self.cp.disconnected(self.now)
        self.drain()

    def outstanding(self):
        """[2, id, action] of the charger's outstanding CALL, or None."""
        ep = self.cp.ep
        if ep is None or ep.pending is None:
            return None
        return [2, ep.pending[0], ep.pending[1]]

    def answer(self, payload, frame=None):
        """Answer the charger's outstanding CALL with a CALLRESULT."""
        f = frame or self.outstanding() or self.last_call()
        self.cp.receive(json_dumps([3, f[1], payload]), self.now)
        self.drain()

    def answer_error(self, code="InternalError", frame=None):
        f = frame or self.outstanding() or self.last_call()
        self.cp.receive(json_dumps([4, f[1], code, "", {}]), self.now)
        self.drain()

    def call(self, action, payload, msg_id="c1"):
        """The CSMS calls the charger; returns the charger's answer frame."""
        before = len(self.sent)
        self.cp.receive(json_dumps([2, msg_id, action, payload]), self.now)
        self.drain()
        for f in self.sent[before:]:
            if f[0] in (3, 4) and f[1] == msg_id:
                return f
        return None

    def boot(self, status="Accepted", interval=300, current=T0_ISO):
        """Connect and answer BootNotification, then every StatusNotification."""
        self.connect()
        assert self.last_call()[2] == "BootNotification"
        self.answer({"status": status, "currentTime": current, "interval": interval})
        self.settle()

    def settle(self, start_tx_id=1000, auth="Accepted", answers=None):
        """Answer every CALL the charger makes until it is quiet; answers
        maps an action to the payload to answer it with instead."""
        answered = set()
        while True:
            f = self.outstanding()
            if f is None or f[1] in answered:
                return
            answered.add(f[1])
            if answers and f[2] in answers:
                self.answer(answers[f[2]])
            else:
                self.answer(default_answer(f, start_tx_id, auth))

    # -- reusable states of the OCTT test case document --
    def authorized(self, id_tag="TAG1", cid=1, auth="Accepted"):
        """Reusable State Authorized: an idTag presented and accepted, no cable yet."""
        self.card(id_tag, cid)
        self.settle(auth=auth)

    def charging(self, id_tag="TAG1", cid=1, tx_id=1000, wh=10000, answers=None):
        """Reusable State Charging: plugged, authorized, StartTransaction
        confirmed, the EV drawing energy; every CALL answered."""
        self.reading(cid, wh)
        self.plug(cid, drawing=True)
        self.settle()
        self.card(id_tag, cid)
        self.settle(start_tx_id=tx_id, answers=answers)

    def meter_run(self, ms, cid=1, step_ms=1000, wh_per_step=2, respond=True):
        """Let time pass with the meter reporting every step_ms (energy
        rising); respond: the Central System answers each CALL at once."""
        end = self.now + ms
        while self.now < end:
            self.reading(cid, self.wh.get(cid, 10000) + wh_per_step)
            self.advance(min(step_ms, end - self.now))
            if respond:
                self.settle()

    # -- hardware side --
    def reading(self, cid=1, wh=10000, power=7000.0):
        self.wh[cid] = wh
        self.cp.meter(cid, {"Energy.Active.Import.Register": float(wh), "Power.Active.Import": power}, self.now)

    def plug(self, cid=1, plugged=True, drawing=False):
        """Pilot state B (plugged) or A; drawing: the EV asks for energy at
        once (state C), as it does when the charger is ready for it."""
        self.cp.plug(cid, plugged, self.now)
        if drawing:
            self.cp.ev_drawing(cid, True, self.now)
        self.drain()

    def cable(self, cid=1, present=True):
        """Proximity sense: a cable in the socket (or removed)."""
        self.cp.cable(cid, present, self.now)
        self.drain()

    def drawing(self, cid=1, on=True):
        self.cp.ev_drawing(cid, on, self.now)
        self.drain()

    def card(self, id_tag, cid=None):
        self.cp.card(id_tag, self.now, cid)
        self.drain()

    def status_frames(self, frames=None):
        return [(f[3]["connectorId"], f[3]["status"], f[3]["errorCode"]) for f in (frames or self.sent) if f[0] == 2 and f[2] == "StatusNotification"]


def booted(**kw):
    """A Bench whose BootNotification was Accepted and whose statuses were
    answered, with nothing left in `sent`."""
    b = Bench(**kw)
    b.boot()
    b.take()
    return b


def plug_in_starts(tc, b, cid=1, wh=10000):
    """On an authorized connector, plugging in (the EV ready to draw) starts
    the transaction: the Central System sees StartTransaction and Charging,
    in either order. Returns the StartTransaction payload."""
    b.take()
    b.reading(cid, wh)
    b.plug(cid, drawing=True)
    b.settle()
    tc.assertEqual(sorted(b.actions()), ["StartTransaction", "StatusNotification"])
    tc.assertEqual(b.status_frames(), [(cid, "Charging", "NoError")])
    return b.payloads("StartTransaction")[0]


def default_answer(f, start_tx_id=1000, auth="Accepted"):
    action = f[2]
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": T0_ISO, "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": T0_ISO}
    if action == "Authorize":
        return {"idTagInfo": {"status": auth}}
    if action == "StartTransaction":
        return {"transactionId": start_tx_id, "idTagInfo": {"status": auth}}
    if action == "StopTransaction":
        return {"idTagInfo": {"status": "Accepted"}}
    if action == "DataTransfer":
        return {"status": "Accepted"}
    return {}
