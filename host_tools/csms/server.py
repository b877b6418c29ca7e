"""The bench CSMS: OCPP-J WebSocket endpoint and HTTP API on one aiohttp port.

    server = await start_csms(host="127.0.0.1", port=0, db_path=":memory:", **options)
    server.port, server.base_url, server.ws_url      # ws_url + "/" + charger id
    server.storage                                    # storage.SqlStorage, for assertions
    server.sessions                                   # charger id -> connected session
    await server.stop()
"""
import asyncio
import base64
import binascii
import hmac
import ssl
import time

from aiohttp import web

from firmware.ocpp import errors as E
from host_tools.csms import logs
from host_tools.csms.faults import FaultRegistry
from host_tools.csms.msglog import MessageLog
from host_tools.csms.ratelimit import DEFAULT_LIMITS, RateLimiter
from host_tools.csms.session import WsAdapter
from host_tools.csms.storage import open_storage
from host_tools.csms.v16 import ChargePoint16
from host_tools.csms.v201 import ChargePoint201

log = logs.get_logger("server")
ocpp_log = logs.get_logger("ocpp.package")

VERSIONS = (E.V201, E.V16)  # offered in the client's order of preference
MAX_IDENTITY = 48  # P4 §3.1.1 (2.0.1); applied to 1.6 identities too
REMOTE_START_WINDOW = 300.0  # seconds a remote start waits for its transaction


def _valid_identity(cp):
    return 0 < len(cp) <= MAX_IDENTITY and ":" not in cp and cp.isprintable()


def _parse_tokens(tokens):
    """{token: (name, role)} from ("name", "token", "role") tuples or "name:token[:role]" strings."""
    out = {}
    for t in tokens or ():
        parts = t.split(":") if isinstance(t, str) else list(t)
        if len(parts) == 2:
            parts.append("admin")
        name, token, role = parts
        if role not in ("admin", "user"):
            raise ValueError("API token role must be admin or user: %r" % role)
        out[token] = (name, role)
    return out


class CsmsServer:
    def __init__(self, host="127.0.0.1", port=0, db_path=":memory:", *, heartbeat_interval=60, retry_interval=10,
                 boot_policy="Accepted", id_tags=None, authorize_unknown=False, call_timeout=30.0,
                 api_tokens=None, basic_auth=None, require_auth=False, known_only=False,
                 tls_cert=None, tls_key=None, tls_ca=None, rate_limits=None, message_log_path=None,
                 message_log_size=10000, random_faults=None, versions=VERSIONS, storage=None,
                 max_wait=60.0):
        self.host = host
        self.port = port
        self.db_path = db_path
        self.call_timeout = call_timeout
        self.max_wait = max_wait
        self.versions = tuple(versions)
        self.charger_defaults = {"boot_policy": boot_policy, "heartbeat_interval": heartbeat_interval,
                                 "retry_interval": retry_interval, "authorize_unknown": 1 if authorize_unknown else 0}
        self.api_tokens = _parse_tokens(api_tokens)
        self.basic_auth = dict(basic_auth or {})
        self.require_auth = require_auth
        self.known_only = known_only
        self.tls = (tls_cert, tls_key, tls_ca)
        if rate_limits is False:
            limits = {}
        else:
            limits = dict(DEFAULT_LIMITS)
            for name, rule in (rate_limits or {}).items():
                if rule is None:
                    limits.pop(name, None)
                else:
                    limits[name] = (int(rule[0]), float(rule[1]))
        self.rate_limiter = RateLimiter(limits)
        self.storage = storage if storage is not None else open_storage(db_path)
        self.storage.mark_all_disconnected()
        if id_tags:
            self.storage.set_id_tags("*", _id_tag_rows(id_tags), replace=True)
        self.message_log = MessageLog(message_log_path, message_log_size)
        self.faults = FaultRegistry(random_faults)
        self.sessions = {}
        self._remote_starts = []
        self._stop_waiters = {}
        self._connect_waiters = {}
        self._remote_start_id = (int(time.time()) % 1000000) * 1000
        self.runner = None
        self._stopping = False
        self.scheme = "https" if tls_cert else "http"

    # -- life cycle -----------------------------------------------------
    async def start(self):
        from host_tools.csms.api import build_app

        self.app = build_app(self)
        self.app.router.add_get("/ocpp/{charger_id}", self.handle_ws)
        self.app.router.add_get("/{charger_id}", self.handle_ws)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, ssl_context=self._ssl_context())
        await site.start()
        self.port = self.runner.addresses[0][1]
        log.info("bench CSMS listening on %s (OCPP at %s/<chargerId>)", self.base_url, self.ws_url)
        return self

    async def stop(self):
        self._stopping = True
        for session in list(self.sessions.values()):
            try:
                await session.ws.close(code=1001, message=b"CSMS shutting down")
            except Exception:
                pass
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.message_log.close()
        self.storage.close()

    def _ssl_context(self):
        cert, key, ca = self.tls
        if not cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # SEC16 A00.FR.3xx: TLS 1.2 or later
        ctx.load_cert_chain(cert, key)
        if ca:
            ctx.load_verify_locations(ca)
            ctx.verify_mode = ssl.CERT_REQUIRED  # security profile 3: client certificates
        return ctx

    @property
    def _public_host(self):
        return "127.0.0.1" if self.host in ("", "0.0.0.0", None) else ("[%s]" % self.host if ":" in self.host
                                                                         else self.host)

    @property
    def base_url(self):
        return "%s://%s:%d" % (self.scheme, self._public_host, self.port)

    @property
    def ws_url(self):
        return "%s://%s:%d/ocpp" % ("wss" if self.scheme == "https" else "ws", self._public_host, self.port)

    # -- OCPP endpoint --------------------------------------------------
    async def handle_ws(self, request):
        cp = request.match_info["charger_id"]
        logs.correlation_id.set(None)  # frames the charger starts belong to no API request
        if not _valid_identity(cp):
            return web.Response(status=400, text="Invalid charge point identity")
        refusal = self.faults.refusing(cp)
        if refusal is not None:
            status, retry_after = refusal
            log.info("%s: handshake refused with %d (fault injection)", cp, status)
            headers = {"Retry-After": str(retry_after)} if status == 503 else {}
            return web.Response(status=status, headers=headers, text="Refused by fault injection")
        charger = self.storage.get_charger(cp)
        if charger is None and self.known_only:
            log.info("%s: unknown charge point, 404 (J16 §3.2)", cp)
            return web.Response(status=404, text="Unknown charge point")
        password = (charger["password"] if charger else None) or self.basic_auth.get(cp)
        if (password is not None or self.require_auth) and not _basic_ok(request, cp, password):
            log.warning("%s: HTTP Basic authentication failed", cp)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="OCPP", charset="UTF-8"'},
                                text="Unauthorized")
        # No permessage-deflate: OCPP frames are small, chargers rarely offer
        # it, and it costs the CSMS CPU per frame.
        ws = web.WebSocketResponse(protocols=self.versions, autoping=True, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, headers={"Upgrade": "websocket"}, text="WebSocket upgrade required")
        ws.headers["X-Request-ID"] = logs.request_id.get()
        await ws.prepare(request)
        if ws.ws_protocol not in self.versions:
            # No common subprotocol: the handshake went without one; close (J16 §3.2).
            log.warning("%s: no supported OCPP subprotocol offered", cp)
            await ws.close(code=1002, message=b"No supported OCPP subprotocol")
            return ws
        self.storage.ensure_charger(cp, self.charger_defaults)
        self.storage.set_connected(cp, True, ws.ws_protocol)
        cls = ChargePoint16 if ws.ws_protocol == E.V16 else ChargePoint201
        session = cls(cp, WsAdapter(ws), response_timeout=self.call_timeout, logger=ocpp_log)
        session.attach(self, ws, request)
        old = self.sessions.get(cp)
        self.sessions[cp] = session
        log.info("%s connected with %s", cp, ws.ws_protocol)
        for future in self._connect_waiters.pop(cp, ()):
            if not future.done():
                future.set_result(session)
        if old is not None and not old.closed:
            asyncio.ensure_future(old.ws.close(code=1000, message=b"Replaced by a new connection"))
        try:
            await session.start()
        finally:
            if self.sessions.get(cp) is session:
                del self.sessions[cp]
                if not self._stopping:
                    self.storage.set_connected(cp, False)
            log.info("%s disconnected (%s)", cp, ws.close_code)
            if not ws.closed:
                await ws.close()
        return ws

    async def wait_connected(self, charger_id, timeout=5.0):
        """The charger's session once it is connected (for tests and harnesses)."""
        session = self.sessions.get(charger_id)
        if session is not None and not session.closed:
            return session
        future = asyncio.get_running_loop().create_future()
        self._connect_waiters.setdefault(charger_id, []).append(future)
        return await asyncio.wait_for(future, timeout)

    # -- transactions and the API waiting on them -------------------------
    def next_remote_start_id(self):
        self._remote_start_id += 1
        return self._remote_start_id

    def expect_remote_start(self, charger_id, id_tag, connector_id=None, evse_id=None, owner=None,
                            remote_start_id=None):
        now = time.monotonic()
        self._remote_starts = [e for e in self._remote_starts if e["deadline"] >= now]
        entry = {"charger_id": charger_id, "id_tag": id_tag, "connector_id": connector_id, "evse_id": evse_id,
                 "owner": owner, "remote_start_id": remote_start_id, "deadline": time.monotonic() + REMOTE_START_WINDOW,
                 "future": asyncio.get_running_loop().create_future()}
        self._remote_starts.append(entry)
        return entry

    def forget_remote_start(self, entry):
        if entry in self._remote_starts:
            self._remote_starts.remove(entry)

    def transaction_started(self, charger_id, tx_id):
        """Called by the handlers: link the transaction to a remote start."""
        now = time.monotonic()
        tx = None
        for entry in list(self._remote_starts):
            if entry["deadline"] < now:
                self._remote_starts.remove(entry)
                continue
            if entry["charger_id"] != charger_id:
                continue
            if tx is None:
                tx = self.storage.get_transaction(tx_id)
            if tx["remote_start_id"] is not None and entry["remote_start_id"] is not None:
                match = tx["remote_start_id"] == entry["remote_start_id"]
            else:
                match = entry["id_tag"] == tx["id_tag"] and entry["connector_id"] in (None, tx["connector_id"]) \
                    and entry["evse_id"] in (None, tx["evse_id"])
            if match:
                self._remote_starts.remove(entry)
                self.storage.update_transaction(tx_id, owner=entry["owner"], remote_start_id=entry["remote_start_id"])
                self.storage.commit()
                if not entry["future"].done():
                    entry["future"].set_result(tx_id)
                return

    def transaction_stopped(self, tx_id):
        for future in self._stop_waiters.pop(tx_id, ()):
            if not future.done():
                future.set_result(tx_id)

    async def wait_stopped(self, tx_id, timeout):
        """True once the transaction is stopped, False after `timeout` seconds."""
        tx = self.storage.get_transaction(tx_id)
        if tx is not None and tx["status"] == "stopped":
            return True
        future = asyncio.get_running_loop().create_future()
        self._stop_waiters.setdefault(tx_id, []).append(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False


def _id_tag_rows(id_tags):
    """Option id_tags: {"TAG": "Accepted"} or [{"idTag", "status", "parentIdTag", "expiryDate"}]."""
    if isinstance(id_tags, dict):
        return [{"id_tag": k, "status": v} for k, v in id_tags.items()]
    return [{"id_tag": t["idTag"], "status": t.get("status", "Accepted"), "parent_id_tag": t.get("parentIdTag"),
             "expiry_date": t.get("expiryDate")} for t in id_tags]


def _basic_ok(request, cp, password):
    """HTTP Basic with user = identity (SEC16 §2.3). The password matches as
    text, or, when configured as hex, as the raw bytes J16 §6.2.2's example sends."""
    header = request.headers.get("Authorization", "")
    if password is None or not header.startswith("Basic "):
        return False
    try:
        user, _, given = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    if user != cp.encode("utf-8"):
        return False
    if hmac.compare_digest(given, password.encode("utf-8")):
        return True
    try:
        raw = bytes.fromhex(password)
    except ValueError:
        return False
    return hmac.compare_digest(given, raw)


async def start_csms(host="127.0.0.1", port=0, db_path=":memory:", **options):
    """Start a bench CSMS in this event loop; returns the running CsmsServer."""
    server = CsmsServer(host, port, db_path, **options)
    return await server.start()
