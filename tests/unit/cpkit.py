# A charge point core wired to in-memory parts and a scripted CSMS, for the
# state-machine tests on both runtimes. The clock is fake; frames are
# decoded so tests assert on what goes over the wire.
from firmware.compat import json_loads, json_dumps
from firmware.ocpp.v16 import chargepoint as cpm
from firmware.ocpp.v16.config import Config

V16_ACTIONS = (
    "Authorize BootNotification CancelReservation ChangeAvailability ChangeConfiguration ClearCache "
    "ClearChargingProfile DataTransfer DiagnosticsStatusNotification FirmwareStatusNotification "
    "GetCompositeSchedule GetConfiguration GetDiagnostics GetLocalListVersion Heartbeat MeterValues "
    "RemoteStartTransaction RemoteStopTransaction ReserveNow Reset SendLocalList SetChargingProfile "
    "StartTransaction StatusNotification StopTransaction TriggerMessage UnlockConnector UpdateFirmware"
).split()

BOOT_INFO = {"chargePointVendor": "Open", "chargePointModel": "Bench-1"}
T0 = 1795600000000  # 2026-11-25T...Z, an epoch ms for the CSMS clock
T0_ISO = "2026-11-25T06:26:40.000Z"


def _tables():
    try:
        from firmware.ocpp.schemas import load
        from firmware.ocpp.validate import check

        return load("ocpp1.6").ACTIONS, check
    except ImportError:
        return dict((a, (None, None)) for a in V16_ACTIONS), (lambda node, value: None)


class MemStore:
    def __init__(self):
        self.records = []

    def tx_opened(self, local_id, cid, id_tag, wh, stamp):
        self.records.append(("open", local_id, cid, id_tag, wh, stamp))

    def tx_meter(self, local_id, wh, stamp):
        self.records.append(("meter", local_id, wh, stamp))

    def tx_closed(self, local_id):
        self.records.append(("closed", local_id))

    def availability(self, cid, operative):
        self.records.append(("availability", cid, operative))

    def config(self, key, value):
        self.records.append(("config", key, value))

    def auth_cache(self, id_tag, entry):
        self.records.append(("cache", id_tag))


class MemTxQueue:
    """Stand-in for firmware.store.txqueue with the same contract."""

    def __init__(self, attempts=3, interval_s=60):
        self.items = []  # [seq, action, payload, local_id, sends, next_ms]
        self.inflight = None
        self.ids = {}
        self.seq = 0
        self.attempts = attempts
        self.interval_ms = interval_s * 1000
        self.parked = []
        self.given_up = set()

    def enqueue(self, action, payload, local_id, now):
        self.seq += 1
        self.items.append([self.seq, action, payload, local_id, 0, now])
        return self.seq

    def next_due(self, now, online):
        if not self.items or self.inflight is not None or not online:
            return None
        it = self.items[0]
        if now < it[5]:
            return None
        p = dict(it[2])
        if "transactionId" in p:
            p["transactionId"] = self.ids.get(it[3], -1)
        return it[0], it[1], p, it[4] + 1, it[3]

    def sent(self, seq, now):
        self.inflight = seq
        self.items[0][4] += 1

    def on_result(self, seq, payload, now):
        it = self.items.pop(0)
        self.inflight = None
        if it[1] == "StartTransaction":
            self.ids[it[3]] = payload["transactionId"]

    def on_error(self, seq, now):
        self.inflight = None
        it = self.items[0]
        if it[4] >= self.attempts:
            self.parked.append(self.items.pop(0))
        else:
            it[5] = now + self.interval_ms * it[4]

    def on_lost(self, seq, now):
        self.inflight = None
        self.items[0][4] -= 1

    def wake_at(self):
        if not self.items or self.inflight is not None:
            return None
        return self.items[0][5]

    def tx_id(self, local_id):
        return self.ids.get(local_id)


class Bench:
    """One charge point, its parts, and the frames it sent (decoded)."""

    def __init__(self, connectors=1, overrides=None, wall=T0, auto_hw=True):
        actions, check = _tables()
        self.now = 0
        self.store = MemStore()
        self.txq = MemTxQueue()
        ids = [0]

        def new_id():
            ids[0] += 1
            return "m%d" % ids[0]

        cfg = Config(overrides=overrides, connectors=connectors)
        self.cp = cpm.ChargePoint("CP1", connectors, self.store, self.txq, BOOT_INFO, config=cfg, new_id=new_id, check=check, actions_table=actions, wall_ms=wall)
        self.sent = []  # decoded frames the charger sent
        self.events = []
        self.relays = {}
        self.locks = {}
        self.resets = []
        self.settings = []
        self.auto_hw = auto_hw
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
                    if self.auto_hw:
                        self.cp.relay_result(a[1], a[2], self.now)
                elif kind == cpm.A_LOCK:
                    self.locks[a[1]] = a[2]
                    if self.auto_hw:
                        self.cp.lock_result(a[1], a[2], self.now)
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

    # -- the CSMS side --
    def connect(self):
        self.cp.connected(self.now)
        self.drain()

    def disconnect(self):
        self.cp.disconnected(self.now)
        self.drain()

    def answer(self, payload, frame=None):
        """Answer the charger's outstanding CALL with a CALLRESULT."""
        f = frame or self.last_call()
        self.cp.receive(json_dumps([3, f[1], payload]), self.now)
        self.drain()

    def answer_error(self, code="InternalError", frame=None):
        f = frame or self.last_call()
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

    def settle(self, start_tx_id=1000, auth="Accepted"):
        """Answer every CALL the charger makes until it is quiet."""
        answered = set()
        while True:
            f = self.last_call()
            if f is None or f[1] in answered or not self.cp.ep or not self.cp.ep.busy():
                return
            answered.add(f[1])
            self.answer(default_answer(f, start_tx_id, auth))

    # -- hardware side --
    def reading(self, cid=1, wh=10000, power=7000.0):
        self.cp.meter(cid, {"Energy.Active.Import.Register": float(wh), "Power.Active.Import": power}, self.now)

    def plug(self, cid=1, plugged=True):
        self.cp.plug(cid, plugged, self.now)
        self.drain()

    def drawing(self, cid=1, on=True):
        self.cp.ev_drawing(cid, on, self.now)
        self.drain()

    def card(self, id_tag, cid=None):
        self.cp.card(id_tag, self.now, cid)
        self.drain()

    def status_frames(self, frames=None):
        return [(f[3]["connectorId"], f[3]["status"], f[3]["errorCode"]) for f in (frames or self.sent) if f[0] == 2 and f[2] == "StatusNotification"]


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
