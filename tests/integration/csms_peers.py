"""Charge points written with the `ocpp` package (not our agent), for the
bench CSMS tests: a 1.6 and a 2.0.1 one, each recording every raw frame."""
import asyncio
import contextlib
import datetime

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as Cp16Base
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as A16
from ocpp.v201 import ChargePoint as Cp201Base
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as A201
from websockets.asyncio.client import connect


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Recorder:
    """The websockets connection as the package sees it, keeping every frame."""

    def __init__(self, ws):
        self.ws = ws
        self.received = []
        self.sent = []
        self._arrived = asyncio.Condition()

    async def recv(self):
        frame = await self.ws.recv()
        self.received.append(frame)
        async with self._arrived:
            self._arrived.notify_all()
        return frame

    async def send(self, frame):
        self.sent.append(frame)
        await self.ws.send(frame)

    def last_call(self, action):
        """The last CALL of `action` received, parsed."""
        import json

        for frame in reversed(self.received):
            try:
                msg = json.loads(frame)
            except ValueError:
                continue
            if isinstance(msg, list) and len(msg) == 4 and msg[0] == 2 and msg[2] == action:
                return msg
        raise AssertionError("no %s received" % action)

    def last_answer(self):
        """The answer frame (parsed) to the last CALL this charge point sent."""
        import json

        msg_id = json.loads(self.sent[-1])[1]
        for frame in reversed(self.received):
            msg = json.loads(frame)
            if msg[0] in (3, 4) and msg[1] == msg_id:
                return msg
        raise AssertionError("no answer to %s" % msg_id)

    async def wait_received(self, predicate, timeout=5.0):
        """The first received frame matching predicate(text), waiting for it."""
        async def find():
            async with self._arrived:
                while True:
                    for f in self.received:
                        if predicate(f):
                            return f
                    await self._arrived.wait()
        return await asyncio.wait_for(find(), timeout)


class Cp16(Cp16Base):
    remote_start_status = "Accepted"
    remote_stop_status = "Accepted"
    availability_status = "Accepted"
    auto_transactions = True  # send Start/StopTransaction after an accepted remote start/stop
    meter = 1000

    def __init__(self, *a, **kw):
        Cp16Base.__init__(self, *a, **kw)
        self.config = {"HeartbeatInterval": "60", "AuthorizationKey": "secret"}
        self.transactions = {}

    async def boot(self):
        return await self.call(call16.BootNotification(charge_point_model="M1", charge_point_vendor="PeerVendor"))

    async def start_tx(self, connector_id=1, id_tag="TAG1", meter_start=None, timestamp=None):
        res = await self.call(call16.StartTransaction(connector_id=connector_id, id_tag=id_tag,
                                                      meter_start=self.meter if meter_start is None else meter_start,
                                                      timestamp=timestamp or now()))
        self.transactions[res.transaction_id] = connector_id
        return res

    async def stop_tx(self, transaction_id, meter_stop=None, reason=None):
        self.meter += 500
        return await self.call(call16.StopTransaction(meter_stop=self.meter if meter_stop is None else meter_stop,
                                                      timestamp=now(), transaction_id=transaction_id, reason=reason))

    @on(A16.remote_start_transaction)
    def on_remote_start(self, id_tag, connector_id=None, **_):
        return result16.RemoteStartTransaction(status=self.remote_start_status)

    @after(A16.remote_start_transaction)
    async def after_remote_start(self, id_tag, connector_id=None, **_):
        if self.auto_transactions and self.remote_start_status == "Accepted":
            await self.start_tx(connector_id or 1, id_tag)

    @on(A16.remote_stop_transaction)
    def on_remote_stop(self, transaction_id, **_):
        return result16.RemoteStopTransaction(status=self.remote_stop_status)

    @after(A16.remote_stop_transaction)
    async def after_remote_stop(self, transaction_id, **_):
        if self.auto_transactions and self.remote_stop_status == "Accepted":
            await self.stop_tx(transaction_id, reason="Remote")

    @on(A16.change_availability)
    def on_change_availability(self, connector_id, type, **_):
        return result16.ChangeAvailability(status=self.availability_status)

    @on(A16.get_configuration)
    def on_get_configuration(self, key=None, **_):
        keys = key or list(self.config)
        known = [{"key": k, "readonly": False, "value": self.config[k]} for k in keys if k in self.config]
        return result16.GetConfiguration(configuration_key=known, unknown_key=[k for k in keys if k not in self.config])

    @on(A16.change_configuration)
    def on_change_configuration(self, key, value, **_):
        if key not in self.config:
            return result16.ChangeConfiguration(status="NotSupported")
        self.config[key] = value
        return result16.ChangeConfiguration(status="Accepted")


class Cp201(Cp201Base):
    start_status = "Accepted"
    stop_status = "Accepted"
    auto_transactions = True
    seq = 0

    def __init__(self, *a, **kw):
        Cp201Base.__init__(self, *a, **kw)
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "60"}

    async def boot(self):
        return await self.call(call201.BootNotification(
            charging_station={"model": "M2", "vendor_name": "PeerVendor"}, reason="PowerUp"))

    async def tx_event(self, event, tx_id, id_tag=None, wh=None, remote_start_id=None, reason=None, evse_id=1):
        self.seq += 1
        info = {"transaction_id": tx_id}
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        if reason:
            info["stopped_reason"] = reason
        kwargs = {}
        if id_tag:
            kwargs["id_token"] = {"id_token": id_tag, "type": "ISO14443"}
        if wh is not None:
            ctx = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event, "Sample.Periodic")
            kwargs["meter_value"] = [{"timestamp": now(), "sampled_value": [
                {"value": wh, "context": ctx, "measurand": "Energy.Active.Import.Register"}]}]
        return await self.call(call201.TransactionEvent(
            event_type=event, timestamp=now(), trigger_reason="RemoteStart" if remote_start_id else "Authorized",
            seq_no=self.seq, transaction_info=info, evse={"id": evse_id, "connector_id": 1}, **kwargs))

    @on(A201.request_start_transaction)
    def on_request_start(self, id_token, remote_start_id, **_):
        return result201.RequestStartTransaction(status=self.start_status)

    @after(A201.request_start_transaction)
    async def after_request_start(self, id_token, remote_start_id, **_):
        if self.auto_transactions and self.start_status == "Accepted":
            await self.tx_event("Started", "tx-%d" % remote_start_id, id_token["id_token"], 100.0, remote_start_id)

    @on(A201.request_stop_transaction)
    def on_request_stop(self, transaction_id, **_):
        return result201.RequestStopTransaction(status=self.stop_status)

    @after(A201.request_stop_transaction)
    async def after_request_stop(self, transaction_id, **_):
        if self.auto_transactions and self.stop_status == "Accepted":
            await self.tx_event("Ended", transaction_id, wh=1600.0, reason="Remote")

    @on(A201.change_availability)
    def on_change_availability(self, operational_status, **_):
        return result201.ChangeAvailability(status="Accepted")

    @on(A201.get_variables)
    def on_get_variables(self, get_variable_data, **_):
        out = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            if key in self.variables:
                out.append({"attribute_status": "Accepted", "attribute_value": self.variables[key],
                            "component": item["component"], "variable": item["variable"]})
            else:
                out.append({"attribute_status": "UnknownVariable", "component": item["component"],
                            "variable": item["variable"]})
        return result201.GetVariables(get_variable_result=out)

    @on(A201.set_variables)
    def on_set_variables(self, set_variable_data, **_):
        out = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            status = "Accepted" if key in self.variables else "UnknownVariable"
            if status == "Accepted":
                self.variables[key] = item["attribute_value"]
            out.append({"attribute_status": status, "component": item["component"], "variable": item["variable"]})
        return result201.SetVariables(set_variable_result=out)


@contextlib.asynccontextmanager
async def charge_point(server, cp_id, version="ocpp1.6", boot=True, response_timeout=5, **connect_kw):
    """A connected peer charge point (booted unless boot=False), served until the block ends."""
    cls = Cp16 if version == "ocpp1.6" else Cp201
    ws = await connect(server.ws_url + "/" + cp_id, subprotocols=[version], **connect_kw)
    rec = Recorder(ws)
    cp = cls(cp_id, rec, response_timeout=response_timeout)
    cp.recorder = rec
    task = asyncio.ensure_future(cp.start())
    try:
        await server.wait_connected(cp_id)
        if boot:
            await cp.boot()
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await ws.close()


def run(coro):
    return asyncio.run(coro)





@contextlib.asynccontextmanager
async def csms_http(**options):
    """A bench CSMS on a free port and an aiohttp client for its API."""
    import aiohttp

    from host_tools.csms import start_csms

    options.setdefault("call_timeout", 3.0)
    server = await start_csms(port=0, db_path=options.pop("db_path", ":memory:"), **options)
    http = aiohttp.ClientSession(base_url=server.base_url)
    try:
        yield server, http
    finally:
        await http.close()
        await server.stop()


async def api(http, method, path, body=None, headers=None, expect=None):
    """(status, headers, JSON body) of one API request; asserts `expect` status."""
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    async with http.request(method, path, **kwargs) as resp:
        text = await resp.text()
        data = None
        if text:
            import json
            data = json.loads(text)
        if expect is not None:
            assert resp.status == expect, (resp.status, data)
        return resp.status, resp.headers, data


@contextlib.asynccontextmanager
async def raw_ws(server, cp_id, version="ocpp1.6", **kw):
    """A bare WebSocket to the CSMS (frames written by hand)."""
    ws = await connect(server.ws_url + "/" + cp_id, subprotocols=[version], **kw)
    try:
        yield ws
    finally:
        await ws.close()


async def exchange(ws, text, timeout=3.0):
    """Send one frame and return the next frame received, parsed."""
    import json

    await ws.send(text)
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))
