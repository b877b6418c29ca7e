"""A TCP chaos proxy between OCPP-J charge points and a CSMS.

    python -m host_tools.chaos_proxy --listen 127.0.0.1:9000 --upstream 127.0.0.1:8180 \\
        --seed 7 --random '{"probabilities": {"delay": 0.02, "cut": 0.005}}' --log faults.jsonl

Charge points connect to the proxy as if it were the CSMS (ws://127.0.0.1:9000/ocpp/<id>);
every TCP connection is relayed to the upstream address. The proxy reads each
direction as a sequence of units, the HTTP head first and then whole WebSocket
frames (RFC 6455 §5.2; anything else is relayed in raw chunks), and may do one
of these to a unit:

  delay     hold it `ms`; what follows in the same direction waits behind it,
            as TCP keeps bytes in order (a latency spike)
  reorder   hold it `ms` while later units of the same direction overtake it:
            messages reach the peer in another order than they were sent.
            TCP never does this within one connection; a CSMS behind a
            message queue or a gateway does, and an old connection's data
            can arrive after a newer one's (units still held when their
            connection ends are delivered before the far side is closed)
  drop      discard it; the connection stays up (a lost message)
  cut       relay its first `at` bytes, then close both sides (a connection
            that ends in the middle of a frame)
  reset     abort both sides with a TCP RST
  halfopen  from now on relay nothing and close nothing for `hold_s` seconds:
            both peers keep a connection that carries nothing (a pulled cable,
            a NAT that forgot the flow); data they send is discarded

Faults come from a seeded random mode (which may be limited to a direction
and to kinds of unit), from a schedule, or from a fault log replayed. Random mode draws at most one fault per unit from a generator
seeded with the seed, the charge point identity (the last path segment of
the upgrade request), the number of that identity's connection and the
direction, so the same seed and the same traffic give the same faults
whatever the timing between chargers. Every fault is logged as one JSON line
with its position (identity, connection number, direction, unit index); that
log, given back as `replay`, injects the same faults at the same positions.

Python API:

    proxy = ChaosProxy(("127.0.0.1", 8180), seed=7, random={...}, schedule=[...], log_path="f.jsonl")
    await proxy.start()          # proxy.port, proxy.url("/ocpp")
    proxy.set_random(None)       # faults off (proxy.clear_schedule() for the schedule)
    proxy.counts                 # {kind: faults injected}
    await proxy.stop()
"""
import asyncio
import fnmatch
import heapq
import json
import random
import socket
import struct
import sys
import urllib.parse

KINDS = ("delay", "reorder", "drop", "cut", "reset", "halfopen")  # random draw order
UP = "up"  # charge point -> CSMS
DOWN = "down"  # CSMS -> charge point
DIRECTIONS = (UP, DOWN)

U_HEAD = "head"
U_FRAME = "frame"
U_RAW = "raw"

MAX_HEAD = 16384  # an HTTP head longer than this is relayed raw
MAX_FRAME = 1 << 24  # a WebSocket frame longer than this switches to raw
MAX_BUFFERED = 1 << 20  # a peer that reads nothing while this much waits is reset
CONNECT_TIMEOUT_S = 10.0
_READ = 65536

RANDOM_DEFAULTS = {
    "probabilities": {},
    "delay_ms": [50, 2000],
    "reorder_ms": [200, 8000],
    "halfopen_s": 60.0,
    "directions": [UP, DOWN],
    "units": [U_HEAD, U_FRAME, U_RAW],
}


# -- specifications ------------------------------------------------------------


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _range(name, v):
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and _number(v[0]) and _number(v[1]) and 0 <= v[0] <= v[1]):
        raise ValueError("%s must be [min, max] with 0 <= min <= max" % name)
    return [v[0], v[1]]


def _directions(v):
    if v in ("both", None):
        return [UP, DOWN]
    if isinstance(v, str):
        v = [v]
    if not v or any(d not in DIRECTIONS for d in v):
        raise ValueError("dir must be up, down, both or a list of them")
    return list(v)


def parse_random(spec):
    """The random mode, checked and with defaults: {"probabilities": {kind: p},
    "delay_ms": [lo, hi], "reorder_ms": [lo, hi], "halfopen_s": s,
    "directions": ["up", "down"], "units": ["head", "frame", "raw"]}: which
    directions and kinds of unit may be hit. Probabilities add up to at most 1."""
    if not isinstance(spec, dict):
        raise ValueError("random faults must be a JSON object")
    out = dict(RANDOM_DEFAULTS)
    for key, v in spec.items():
        if key == "seed":
            continue
        if key not in RANDOM_DEFAULTS:
            raise ValueError("unknown random fault setting %r" % key)
        out[key] = v
    total = 0.0
    for kind, p in out["probabilities"].items():
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r; kinds: %s" % (kind, ", ".join(KINDS)))
        if not _number(p) or not 0 <= p <= 1:
            raise ValueError("probability of %s must be a number from 0 to 1" % kind)
        total += p
    if total > 1:
        raise ValueError("probabilities add up to more than 1")
    out["probabilities"] = dict(out["probabilities"])
    out["delay_ms"] = _range("delay_ms", out["delay_ms"])
    out["reorder_ms"] = _range("reorder_ms", out["reorder_ms"])
    if not _number(out["halfopen_s"]) or out["halfopen_s"] < 0:
        raise ValueError("halfopen_s must be a number of seconds")
    out["directions"] = _directions(out["directions"])
    units = out["units"]
    if not isinstance(units, (list, tuple)) or not units or any(u not in (U_HEAD, U_FRAME, U_RAW) for u in units):
        raise ValueError("units must be a list of head, frame, raw")
    out["units"] = list(units)
    return out


_PARAMS = {"delay": ("ms",), "reorder": ("ms",), "drop": (), "cut": ("at",), "reset": (), "halfopen": ("hold_s",)}


def parse_rule(rule):
    """One schedule entry, checked. Three forms:
      {"at": s, "kind": K, ...}                     at s seconds after start: reset and
                                                    halfopen strike open connections at
                                                    once, the others the next unit
      {"from": s, "until": s, "kind": K, "p": 1.0}  every unit in the window, with probability p
      {"id": ID, "conn": n, "dir": D, "unit": k, "kind": K}   exactly that unit (a replayed log)
    Common keys: "match" (identity glob, "*"), "dir" (up, down, both), and the
    kind's own: "ms" (delay, reorder), "at" (cut: bytes relayed), "hold_s"
    (halfopen). A missing value is drawn like the random mode draws it."""
    if not isinstance(rule, dict):
        raise ValueError("a schedule entry must be a JSON object")
    kind = rule.get("kind")
    if kind not in KINDS:
        raise ValueError("kind must be one of: %s" % ", ".join(KINDS))
    params = {}
    for name in _PARAMS[kind]:
        if name in rule:
            v = rule[name]
            if not _number(v) or v < 0:
                raise ValueError("%s must be a number >= 0" % name)
            params[name] = v
    out = {"kind": kind, "params": params, "match": rule.get("match", "*"), "dirs": _directions(rule.get("dir"))}
    if isinstance(rule.get("params"), dict):  # a fault log record
        for name in _PARAMS[kind]:
            if name in rule["params"]:
                params[name] = rule["params"][name]
    if "unit" in rule:
        for key in ("id", "conn", "dir", "unit"):
            if key not in rule:
                raise ValueError("a positional entry needs id, conn, dir and unit")
        if rule["dir"] not in DIRECTIONS:
            raise ValueError("dir of a positional entry must be up or down")
        out["form"] = "position"
        out["key"] = (rule["id"], rule["conn"], rule["dir"], rule["unit"])
    elif "at" in rule:
        if not _number(rule["at"]) or rule["at"] < 0:
            raise ValueError("at must be seconds >= 0")
        out["form"] = "at"
        out["at"] = rule["at"]
    elif "from" in rule or "until" in rule:
        lo, hi = rule.get("from", 0), rule.get("until", float("inf"))
        p = rule.get("p", 1.0)
        if not (_number(lo) and _number(hi) and 0 <= lo <= hi and _number(p) and 0 <= p <= 1):
            raise ValueError("a window needs 0 <= from <= until and 0 <= p <= 1")
        out["form"] = "window"
        out["from"], out["until"], out["p"] = lo, hi, p
    else:
        raise ValueError("a schedule entry needs at, from/until, or id/conn/dir/unit")
    return out


def load_replay(lines):
    """Positional rules from the lines of a fault log (other records are skipped)."""
    rules = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        if rec.get("kind") in KINDS and "unit" in rec:
            rules.append(parse_rule(rec))
    return rules


# -- cutting a byte stream into units ------------------------------------------------------


class Splitter:
    """One direction's bytes as units: the HTTP head, then whole WebSocket
    frames; raw chunks when the stream is not (or no longer) a WebSocket
    (a refused upgrade's answer, a head or frame too large)."""

    def __init__(self, response):
        self.response = response
        self.buf = bytearray()
        self.mode = U_HEAD

    def feed(self, data):
        """[(unit kind, bytes, first byte or None)] complete so far."""
        buf = self.buf
        buf += data
        out = []
        while buf:
            mode = self.mode
            if mode == U_RAW:
                out.append((U_RAW, bytes(buf), None))
                del buf[:]
                break
            if mode == U_HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self.mode = U_RAW
                        continue
                    break
                head = bytes(buf[: end + 4])
                del buf[: end + 4]
                out.append((U_HEAD, head, None))
                self.mode = U_FRAME
                if self.response:
                    parts = head.split(b"\r\n", 1)[0].split(b" ")
                    if len(parts) < 2 or parts[1] != b"101":
                        self.mode = U_RAW
                continue
            n = len(buf)
            if n < 2:
                break
            size = buf[1] & 0x7F
            hl = 2
            if size == 126:
                hl = 4
                if n < 4:
                    break
                size = (buf[2] << 8) | buf[3]
            elif size == 127:
                hl = 10
                if n < 10:
                    break
                size = int.from_bytes(buf[2:10], "big")
            if buf[1] & 0x80:
                hl += 4  # masking key (client to server)
            total = hl + size
            if total > MAX_FRAME:
                self.mode = U_RAW
                continue
            if n < total:
                break
            out.append((U_FRAME, bytes(buf[:total]), buf[0]))
            del buf[:total]
        return out


def identity_of(head):
    """The charge point identity: the last segment of the request path."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) < 2:
        return None
    path = line[1].decode("latin-1").split("?", 1)[0].rstrip("/")
    seg = path.rsplit("/", 1)[-1]
    return urllib.parse.unquote(seg) or None


def _abort(writer):
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


# -- one direction of one connection ---------------------------------------------------------


class Pipe:
    def __init__(self, link, direction, reader, writer):
        self.link = link
        self.dir = direction
        self.reader = reader
        self.writer = writer
        self.split = Splitter(direction == DOWN)
        self.units = 0
        self.rng = None
        self.armed = []  # faults a timed schedule entry left for the next unit
        self.heap = []  # (due, n, data, overtakes)
        self.n = 0
        self.ordered_due = 0.0
        self.ordered_pending = 0
        self.wake = None
        self.flusher = None
        self.closing = False
        self.cut = False

    def random_source(self):
        if self.rng is None:
            link = self.link
            who = link.identity if link.identity is not None else "#%d" % link.number
            self.rng = random.Random("%s/%s/%d/%s" % (link.proxy.seed, who, link.n, self.dir))
        return self.rng

    async def pump(self):
        link = self.link
        while not link.ended:
            try:
                data = await self.reader.read(_READ)
            except (OSError, asyncio.IncompleteReadError):
                data = b""
            if not data:
                break
            if link.frozen or self.cut:
                continue  # half-open or cut: whatever comes is discarded
            for unit in self.split.feed(data):
                self.on_unit(unit)
                if link.ended or link.frozen or self.cut:
                    break
        link.side_ended(self)

    def on_unit(self, unit):
        kind, data, _ = unit
        idx = self.units
        self.units += 1
        link = self.link
        if idx == 0 and self.dir == UP and kind == U_HEAD:
            link.identify(identity_of(data))
        proxy = link.proxy
        fault = proxy.decide(self, idx, kind, data)
        if fault is None:
            self.deliver(data, 0.0, False)
            return
        fk, params, source = fault
        proxy.record(link, self.dir, idx, unit, fk, params, source)
        if fk == "delay":
            self.deliver(data, params["ms"] / 1000.0, False)
        elif fk == "reorder":
            self.deliver(data, params["ms"] / 1000.0, True)
        elif fk == "cut":
            at = params["at"]
            if at > 0:
                self.deliver(data[:at], 0.0, False)
            self.cut = True
            self.finish()
        elif fk == "reset":
            link.reset()
        elif fk == "halfopen":
            link.freeze(params["hold_s"])
        # drop: nothing goes out

    def deliver(self, data, delay, overtakes):
        loop = asyncio.get_running_loop()
        now = loop.time()
        if overtakes:
            due = now + delay
        else:
            if delay <= 0 and self.ordered_pending == 0:
                self.write(data)
                return
            due = max(now + delay, self.ordered_due)
            self.ordered_due = due
            self.ordered_pending += 1
        heapq.heappush(self.heap, (due, self.n, data, overtakes))
        self.n += 1
        self._kick()

    def _kick(self):
        if self.flusher is None:
            self.wake = asyncio.Event()
            self.flusher = asyncio.ensure_future(self._flush())
        self.wake.set()

    async def _flush(self):
        loop = asyncio.get_running_loop()
        heap = self.heap
        try:
            while not self.link.ended:
                if not heap:
                    if self.closing:
                        self.link.close()
                        return
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                wait = heap[0][0] - loop.time()
                if wait > 0:
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                    continue
                _, _, data, overtakes = heapq.heappop(heap)
                if not overtakes:
                    self.ordered_pending -= 1
                self.write(data)
        except asyncio.CancelledError:
            pass

    def write(self, data):
        link = self.link
        if link.ended or link.frozen:
            return
        w = self.writer
        try:
            w.write(data)
        except Exception:  # closing transports raise several kinds
            link.close()
            return
        link.proxy.stats["bytes_" + self.dir] += len(data)
        if w.transport.get_write_buffer_size() > MAX_BUFFERED:
            link.reset()

    def finish(self):
        """Close the connection once what this direction still holds is out."""
        if not self.heap:
            self.link.close()
        else:
            self.closing = True
            self._kick()

    def stop(self):
        if self.flusher is not None:
            self.flusher.cancel()
            self.flusher = None
        self.heap = []


# -- one relayed connection -------------------------------------------------------------------


class Link:
    def __init__(self, proxy, number, reader, writer):
        self.proxy = proxy
        self.number = number
        self.reader = reader
        self.writer = writer
        self.upstream = None
        self.identity = None
        self.n = 0
        self.frozen = False
        self.ended = False
        self.pipes = ()
        self.hold = None

    def identify(self, identity):
        self.identity = identity
        if identity is not None:
            per = self.proxy.per_identity
            per[identity] = self.n = per.get(identity, 0) + 1

    async def run(self):
        proxy = self.proxy
        try:
            ur, uw = await asyncio.wait_for(asyncio.open_connection(*proxy.upstream), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            # The CSMS is down: the charge point sees its connection reset.
            proxy.stats["upstream_failed"] += 1
            _abort(self.writer)
            return
        self.upstream = uw
        up = Pipe(self, UP, self.reader, uw)
        down = Pipe(self, DOWN, ur, self.writer)
        self.pipes = (up, down)
        try:
            await asyncio.gather(up.pump(), down.pump())
        finally:
            self.close()

    def side_ended(self, pipe):
        if self.ended or self.frozen:
            return  # a half-open connection stays as it is until its hold ends
        pipe.finish()

    def close(self):
        """Both sides closed with a FIN, after what their buffers hold."""
        self._finish(False)

    def reset(self):
        """Both sides aborted with a RST."""
        self._finish(True)

    def _finish(self, abort):
        if self.ended:
            return
        self.ended = True
        self._end()
        for w in (self.writer, self.upstream):
            if w is not None:
                try:
                    _abort(w) if abort else w.close()
                except Exception:  # already closing: several kinds
                    pass

    def freeze(self, hold_s):
        if self.frozen or self.ended:
            return
        self.frozen = True
        for p in self.pipes:
            p.stop()
        self.hold = asyncio.get_running_loop().call_later(hold_s, self.close)

    def _end(self):
        for p in self.pipes:
            p.stop()
        if self.hold is not None:
            self.hold.cancel()
            self.hold = None

    def matches(self, rule, direction):
        return direction in rule["dirs"] and fnmatch.fnmatchcase(self.identity or "", rule["match"])


# -- the proxy ----------------------------------------------------------------------------------


class ChaosProxy:
    def __init__(self, upstream, host="127.0.0.1", port=0, seed=0, random=None, schedule=(), replay=(),
                 log_path=None, log=None):
        """upstream: (host, port) of the CSMS; random: see parse_random (None:
        off); schedule: entries as parse_rule takes them; replay: positional
        rules (load_replay) that replace the random mode; log_path: append
        one JSON line per fault there; log: or a callable taking each record."""
        self.upstream = tuple(upstream)
        self.host = host
        self.port = port
        self.seed = seed
        self.random = parse_random(random) if random else None
        self.positions = {}
        self.timed = []
        self.windows = []
        for rule in list(replay) + [parse_rule(r) for r in schedule]:
            self._add_rule(rule)
        self.counts = dict((k, 0) for k in KINDS)
        self.stats = {"connections": 0, "upstream_failed": 0, "bytes_up": 0, "bytes_down": 0}
        self.per_identity = {}
        self.links = set()
        self.server = None
        self.t0 = None
        self._timers = []
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self._log = log

    def _add_rule(self, rule):
        form = rule["form"]
        if form == "position":
            self.positions[rule["key"]] = rule
        elif form == "at":
            self.timed.append(rule)
        else:
            self.windows.append(rule)

    # -- life cycle ---------------------------------------------------------
    async def start(self):
        loop = asyncio.get_running_loop()
        self.server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        self.t0 = loop.time()
        for rule in self.timed:
            self._timers.append(loop.call_at(self.t0 + rule["at"], self._strike, rule))
        self._write_log({"event": "start", "seed": self.seed, "upstream": "%s:%d" % self.upstream,
                         "random": self.random, "rules": len(self.timed) + len(self.windows),
                         "replay": len(self.positions)})
        return self

    def url(self, path="/ocpp"):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    async def stop(self):
        for h in self._timers:
            h.cancel()
        if self.server is not None:
            self.server.close()
        for link in list(self.links):
            link.close()
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.wait_closed(), 5)
            except asyncio.TimeoutError:
                pass
            self.server = None
        self._write_log({"event": "stop", "counts": self.counts, "stats": self.stats})
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def elapsed(self):
        return asyncio.get_running_loop().time() - self.t0

    # -- changing the faults while running ------------------------------------
    def set_random(self, spec):
        """New random mode (a spec as parse_random takes it), or None: off."""
        self.random = parse_random(spec) if spec else None

    def add_schedule(self, rules):
        loop = asyncio.get_running_loop()
        for r in rules:
            rule = parse_rule(r)
            self._add_rule(rule)
            if rule["form"] == "at":
                self._timers.append(loop.call_at(self.t0 + rule["at"], self._strike, rule))

    def clear_schedule(self):
        for h in self._timers:
            h.cancel()
        self._timers = []
        self.timed = []
        self.windows = []
        self.positions = {}
        for link in self.links:
            for p in link.pipes:
                p.armed = []

    def faults_off(self):
        """No new faults from now on (connections held half-open stay so until their hold ends)."""
        self.set_random(None)
        self.clear_schedule()

    # -- connections ----------------------------------------------------------
    async def _accept(self, reader, writer):
        self.stats["connections"] += 1
        link = Link(self, self.stats["connections"], reader, writer)
        self.links.add(link)
        try:
            await link.run()
        except Exception as e:  # a bug here must not take the proxy down
            self._write_log({"event": "error", "conn": link.number, "error": repr(e)})
            link.reset()
        finally:
            self.links.discard(link)

    def _strike(self, rule):
        immediate = rule["kind"] in ("reset", "halfopen")
        for link in list(self.links):
            if link.ended or link.frozen or not link.pipes:
                continue
            for pipe in link.pipes:
                if not link.matches(rule, pipe.dir):
                    continue
                if immediate:
                    params = self._params(rule["kind"], rule["params"], pipe, b"")
                    self.record(link, pipe.dir, pipe.units, None, rule["kind"], params, "schedule")
                    if rule["kind"] == "reset":
                        link.reset()
                    else:
                        link.freeze(params["hold_s"])
                    break
                pipe.armed.append((rule["kind"], rule["params"], "schedule"))

    # -- deciding --------------------------------------------------------------
    def decide(self, pipe, idx, unit_kind, data):
        """(kind, params, source) for this unit, or None."""
        link = pipe.link
        if self.positions:
            rule = self.positions.get((link.identity, link.n, pipe.dir, idx))
            if rule is not None:
                return rule["kind"], self._params(rule["kind"], rule["params"], pipe, data), "replay"
        if pipe.armed:
            kind, params, source = pipe.armed.pop(0)
            return kind, self._params(kind, params, pipe, data), source
        if self.windows:
            now = self.elapsed()
            for rule in self.windows:
                if rule["from"] <= now < rule["until"] and link.matches(rule, pipe.dir):
                    if rule["p"] >= 1 or pipe.random_source().random() < rule["p"]:
                        return rule["kind"], self._params(rule["kind"], rule["params"], pipe, data), "schedule"
        spec = self.random
        if spec is not None and pipe.dir in spec["directions"] and unit_kind in spec["units"]:
            r = pipe.random_source().random()
            acc = 0.0
            probs = spec["probabilities"]
            for kind in KINDS:
                acc += probs.get(kind, 0)
                if r < acc:
                    return kind, self._params(kind, {}, pipe, data), "random"
        return None

    def _params(self, kind, given, pipe, data):
        spec = self.random or RANDOM_DEFAULTS
        out = dict(given)
        if kind in ("delay", "reorder") and "ms" not in out:
            lo, hi = spec["delay_ms" if kind == "delay" else "reorder_ms"]
            out["ms"] = round(pipe.random_source().uniform(lo, hi))
        elif kind == "cut":
            n = len(data)
            at = out.get("at")
            if at is None:
                at = pipe.random_source().randint(1, n - 1) if n > 1 else 0
            out["at"] = int(min(at, max(n - 1, 0)))
        elif kind == "halfopen" and "hold_s" not in out:
            out["hold_s"] = spec["halfopen_s"]
        return out

    def record(self, link, direction, idx, unit, kind, params, source):
        self.counts[kind] += 1
        rec = {"t": round(self.elapsed(), 3), "kind": kind, "id": link.identity, "conn": link.n, "dir": direction,
               "unit": idx, "params": params, "source": source, "link": link.number}
        if unit is not None:
            rec["unit_kind"] = unit[0]
            rec["bytes"] = len(unit[1])
            if unit[0] == U_FRAME:
                rec["opcode"] = unit[2] & 0x0F
        self._write_log(rec)

    def _write_log(self, rec):
        if self._log is not None:
            self._log(rec)
        if self._log_file is not None:
            self._log_file.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._log_file.flush()


# -- command line -------------------------------------------------------------------------------------


def _address(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("expected HOST:PORT, got %r" % text)
    return host or "127.0.0.1", int(port)


def _json_arg(text):
    """JSON text, or the name of a file holding it (optionally as @FILE)."""
    if text.startswith("@"):
        text = text[1:]
    else:
        try:
            return json.loads(text)
        except ValueError:
            pass
    with open(text, encoding="utf-8") as f:
        return json.load(f)


def parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m host_tools.chaos_proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (port 0: any free port)")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the CSMS")
    p.add_argument("--seed", default="0", help="seed of the random mode")
    p.add_argument("--random", type=_json_arg, help='random faults: JSON or a file, e.g. {"probabilities": {"drop": 0.01}}')
    p.add_argument("--schedule", type=_json_arg, help="schedule: a JSON list (or a file holding one)")
    p.add_argument("--replay", help="a fault log of an earlier run: inject the same faults at the same places")
    p.add_argument("--log", help="append every injected fault to this file (JSON lines)")
    return p


async def _main(args):
    import signal

    host, port = _address(args.listen)
    replay = []
    if args.replay:
        with open(args.replay, encoding="utf-8") as f:
            replay = load_replay(f)
    proxy = ChaosProxy(_address(args.upstream), host, port, seed=args.seed, random=None if args.replay else args.random,
                       schedule=args.schedule or (), replay=replay, log_path=args.log,
                       log=lambda rec: print(json.dumps(rec, separators=(",", ":")), flush=True))
    await proxy.start()
    print(json.dumps({"event": "listening", "url": proxy.url(), "upstream": args.upstream}), flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await proxy.stop()


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        asyncio.run(_main(args))
    except ValueError as e:
        print("chaos_proxy: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
