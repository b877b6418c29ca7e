# A small OCPP 1.6 CSMS written directly on the `ocpp` package (its
# ChargePoint class over a `websockets` server), independent of our bench
# CSMS: it accepts the boot, knows one idTag, numbers transactions, and keeps
# every CALL the charger sent, as received, for assertions.
import asyncio
import itertools
import json
import threading
import time
from datetime import datetime, timezone

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import serve


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Csms:
    """Run it in a ThreadLoop: csms = loop.run(Csms(tags).start())."""

    def __init__(self, known_tags, refused_at_start=()):
        self.known = set(known_tags)
        # accepted by Authorize, then Invalid in StartTransaction.conf (the
        # CSMS changed its mind: C16 §4.8 StopTransactionOnInvalidId)
        self.refused_at_start = set(refused_at_start)
        self.calls = []  # (charger id, action, payload) in arrival order
        self.points = {}
        self.started = []  # transactionIds given, in order
        self._cond = threading.Condition()
        self._tx = itertools.count(1)
        self.server = None
        self.port = None

    async def start(self):
        self.server = await serve(self._connect, "127.0.0.1", 0, subprotocols=["ocpp1.6"])
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ocpp" % self.port

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _connect(self, ws):
        cid = ws.request.path.rstrip("/").split("/")[-1]
        cp = _Point(cid, ws, self)
        self.points[cid] = cp
        try:
            await cp.start()
        except Exception:
            pass  # the charger went away

    def record(self, cid, action, payload):
        with self._cond:
            self.calls.append((cid, action, payload))
            self._cond.notify_all()

    def received(self, action, cid=None):
        with self._cond:
            return [p for c, a, p in self.calls if a == action and (cid is None or c == cid)]

    def after(self, mark, action):
        """Payloads of the CALLs `action` received after position `mark`."""
        with self._cond:
            return [p for c, a, p in self.calls[mark:] if a == action]

    def mark(self):
        """Where the list of calls ends now: wait_for(..., after=mark)."""
        with self._cond:
            return len(self.calls)

    def wait_for(self, action, timeout=15, after=0, **fields):
        """The first CALL `action` after position `after` whose payload has
        these fields, waiting up to timeout seconds."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for c, a, p in self.calls[after:]:
                    if a == action and all(p.get(k) == v for k, v in fields.items()):
                        return p
                left = end - time.monotonic()
                if left <= 0:
                    seen = [(a, p) for c, a, p in self.calls[after:]]
                    raise AssertionError("no %s %r; received: %s" % (action, fields, json.dumps(seen)[-3000:]))
                self._cond.wait(left)

    def statuses(self, after=0, connector=None):
        """(connectorId, status, errorCode) of StatusNotifications after `after`."""
        with self._cond:
            return [
                (p["connectorId"], p["status"], p["errorCode"])
                for c, a, p in self.calls[after:]
                if a == "StatusNotification" and (connector is None or p["connectorId"] == connector)
            ]

    async def remote_start(self, cid, id_tag, connector=1):
        res = await self.points[cid].call(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector))
        return res.status

    async def remote_stop(self, cid, transaction_id):
        res = await self.points[cid].call(call.RemoteStopTransaction(transaction_id=transaction_id))
        return res.status


class _Point(ChargePoint):
    def __init__(self, cid, ws, csms):
        ChargePoint.__init__(self, cid, ws, response_timeout=10)
        self.csms = csms

    async def route_message(self, raw_msg):
        msg = json.loads(raw_msg)
        if msg[0] == 2:
            self.csms.record(self.id, msg[2], msg[3])
        return await ChargePoint.route_message(self, raw_msg)

    def _info(self, id_tag):
        return {"status": "Accepted" if id_tag in self.csms.known else "Invalid"}

    @on(Action.boot_notification)
    def on_boot(self, **_):
        return call_result.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **_):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **_):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag, **_):
        return call_result.Authorize(id_tag_info=self._info(id_tag))

    @on(Action.start_transaction)
    def on_start(self, id_tag, **_):
        tx = next(self.csms._tx)
        self.csms.started.append(tx)
        info = {"status": "Invalid"} if id_tag in self.csms.refused_at_start else self._info(id_tag)
        return call_result.StartTransaction(transaction_id=tx, id_tag_info=info)

    @on(Action.stop_transaction)
    def on_stop(self, **_):
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, **_):
        return call_result.MeterValues()


async def wait_connected(csms, cid, timeout=15):
    end = asyncio.get_running_loop().time() + timeout
    while cid not in csms.points:
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(cid + " never connected")
        await asyncio.sleep(0.02)
