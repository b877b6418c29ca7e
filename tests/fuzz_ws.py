# Fuzzing the WebSocket frame parser (firmware/net/ws.py) against an oracle.
#
#   python tests/fuzz_ws.py [cases] [seed]        (make fuzz: 100,000 cases)
#   micropython tests/fuzz_ws.py [cases] [seed]
#
# Each case is a stream of server frames, valid or broken on purpose, then
# often mutated (bits flipped, bytes inserted, dropped or cut off). It is fed
# to WsConnection in random pieces. Checked: no exception but ParseFailed
# escapes; ParseFailed carries 1002, 1007 or 1009; and the events and the
# close code equal those of the oracle below, a plain whole-buffer reading of
# RFC 6455 written apart from the parser. Runs on both runtimes; the same
# seed gives the same cases.
import sys

if __name__ == "__main__":
    sys.path.insert(0, ".")

from firmware.bufops import utf8_valid
from firmware.net.ws import (
    EV_BINARY,
    EV_CLOSE,
    EV_PING,
    EV_PONG,
    EV_TEXT,
    ParseFailed,
    WsConnection,
)

MAX_MESSAGE = 4096


class Rand:
    """xorshift32: the same numbers on CPython and MicroPython."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.u32() % n if n > 0 else 0

    def chance(self, percent):
        return self.below(100) < percent

    def bytes(self, n):
        return bytes(self.below(256) for _ in range(n))


_TEXTS = ("", "a", "[2,\"1\",\"Heartbeat\",{}]", "é", "€uro", "\U0001f50c plug", "z" * 130)
_BAD_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80", b"\xf5\x80\x80\x80")


def _text_payload(r):
    t = _TEXTS[r.below(len(_TEXTS))].encode()
    if r.chance(10):
        t = t * (1 + r.below(40))
    if r.chance(8):
        bad = _BAD_UTF8[r.below(len(_BAD_UTF8))]
        i = r.below(len(t) + 1)
        t = t[:i] + bad + t[i:]
    return t


def frame(op, payload, fin=True, rsv=0, masked=False, form=None, key=b"\x01\x02\x03\x04"):
    """One frame as a server would (not) send it. form: length encoding
    0 (7-bit), 2 (16-bit) or 8 (64-bit); None picks the shortest."""
    n = len(payload)
    if form is None:
        form = 0 if n < 126 else (2 if n < 65536 else 8)
    out = bytearray()
    out.append((0x80 if fin else 0) | (rsv << 4) | op)
    m = 0x80 if masked else 0
    if form == 0:
        out.append(m | n)
    elif form == 2:
        out.append(m | 126)
        out.append((n >> 8) & 0xFF)
        out.append(n & 0xFF)
    else:
        out.append(m | 127)
        for shift in (56, 48, 40, 32, 24, 16, 8, 0):
            out.append((n >> shift) & 0xFF)
    if masked:
        out += key
        payload = bytes(payload[i] ^ key[i & 3] for i in range(n))
    out += payload
    return bytes(out)


def _close_payload(r):
    k = r.below(10)
    if k == 0:
        return b""
    if k == 1:
        return bytes((r.below(256),))
    codes = (1000, 1001, 1002, 1003, 1007, 1011, 1012, 3000, 4999, 1004, 1005, 1006, 1015, 999, 2999, 5000, 0)
    code = codes[r.below(len(codes))]
    reason = _text_payload(r)[:100]
    return bytes(((code >> 8) & 0xFF, code & 0xFF)) + reason


def gen_stream(r):
    out = bytearray()
    for _ in range(1 + r.below(6)):
        k = r.below(12)
        if k <= 3:
            out += frame(1, _text_payload(r))
        elif k == 4:
            out += frame(2, r.bytes(r.below(300)))
        elif k == 5:
            # fragmented text, maybe a control frame between the pieces
            t = _text_payload(r)
            cuts = sorted(r.below(len(t) + 1) for _ in range(r.below(4)))
            parts = []
            last = 0
            for c in cuts:
                parts.append(t[last:c])
                last = c
            parts.append(t[last:])
            for i, p in enumerate(parts):
                out += frame(1 if i == 0 else 0, p, fin=i == len(parts) - 1)
                if r.chance(30):
                    out += frame(9 + r.below(2), r.bytes(r.below(10)))
        elif k == 6:
            out += frame(9, r.bytes(r.below(126)))
        elif k == 7:
            out += frame(10, r.bytes(r.below(20)))
        elif k == 8:
            out += frame(8, _close_payload(r))
        elif k == 9:
            # long forms, sometimes not the shortest
            n = (125, 126, 300, 65535, 65536, MAX_MESSAGE, MAX_MESSAGE + 1)[r.below(7)]
            if n > 70000 or (n > MAX_MESSAGE * 2 and r.chance(50)):
                n = 200
            form = (None, 2, 8, 0 if n < 126 else None)[r.below(4)]
            out += frame(1 + r.below(2), b"x" * n, form=form)
        elif k == 10:
            # broken on purpose: reserved bits, opcodes, masks, fragmented control
            op = (1, 2, 3, 7, 11, 15, 8, 9, 0)[r.below(9)]
            out += frame(op, r.bytes(r.below(130)), fin=r.chance(50), rsv=r.below(8) if r.chance(50) else 0, masked=r.chance(40))
        else:
            out += frame(0, r.bytes(r.below(20)), fin=r.chance(50))
    return bytes(out)


def mutate(r, data):
    for _ in range(r.below(4)):
        k = r.below(5)
        if not data:
            break
        i = r.below(len(data))
        if k == 0:
            data = data[:i] + bytes((data[i] ^ (1 << r.below(8)),)) + data[i + 1 :]
        elif k == 1:
            data = data[:i] + bytes((r.below(256),)) + data[i + 1 :]
        elif k == 2:
            data = data[:i] + r.bytes(1 + r.below(4)) + data[i:]
        elif k == 3:
            data = data[:i] + data[i + 1 + r.below(4) :]
        else:
            data = data[:i]
    return data


def _close_code_ok(code):
    # RFC 6455 §7.4: 1004-1006 and 1015 never on the wire, 1016-2999
    # unassigned, 3000-4999 for libraries and applications.
    if code < 1000 or code >= 5000 or 1016 <= code < 3000:
        return False
    return code not in (1004, 1005, 1006, 1015)


def _text(b):
    if not utf8_valid(b, 0, len(b)):
        return None
    return str(b, "utf-8")


def oracle(data, max_message=MAX_MESSAGE):
    """(events, end): events as tuples; end None (wants more input), or
    ("fail", code), or ("closed",) after a close frame."""
    events = []
    pos = 0
    n_all = len(data)
    msg_op = 0
    msg = b""
    while True:
        if n_all - pos < 2:
            return events, None
        b0 = data[pos]
        b1 = data[pos + 1]
        fin = b0 >> 7
        op = b0 & 15
        length = b1 & 127
        if b0 & 0x70:
            return events, ("fail", 1002)
        if op not in (0, 1, 2, 8, 9, 10):
            return events, ("fail", 1002)
        if op >= 8 and (not fin or length > 125):
            return events, ("fail", 1002)
        if op == 0 and not msg_op:
            return events, ("fail", 1002)
        if op in (1, 2) and msg_op:
            return events, ("fail", 1002)
        if b1 & 0x80:
            return events, ("fail", 1002)
        head = 2
        if length == 126:
            if n_all - pos < 4:
                return events, None
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 126:
                return events, ("fail", 1002)
            head = 4
        elif length == 127:
            if n_all - pos < 10:
                return events, None
            length = 0
            for i in range(8):
                length = (length << 8) | data[pos + 2 + i]
            if length >> 63:
                return events, ("fail", 1002)
            if length >= 1 << 32:
                return events, ("fail", 1009)
            if length < 65536:
                return events, ("fail", 1002)
            head = 10
        if op < 8:
            if len(msg) + length > max_message:
                return events, ("fail", 1009)
        if n_all - pos - head < length:
            return events, None
        payload = bytes(data[pos + head : pos + head + length])
        pos += head + length
        if op == 8:
            if length == 0:
                events.append(("close", 1005, ""))
                return events, ("closed",)
            if length == 1:
                return events, ("fail", 1002)
            code = (payload[0] << 8) | payload[1]
            if not _close_code_ok(code):
                return events, ("fail", 1002)
            reason = _text(payload[2:])
            if reason is None:
                return events, ("fail", 1007)
            events.append(("close", code, reason))
            return events, ("closed",)
        if op == 9:
            events.append(("ping", payload))
            continue
        if op == 10:
            events.append(("pong", payload))
            continue
        if op:
            msg_op = op
            msg = b""
        msg += payload
        if fin:
            if msg_op == 1:
                t = _text(msg)
                if t is None:
                    return events, ("fail", 1007)
                events.append(("text", t))
            else:
                events.append(("binary", msg))
            msg_op = 0
            msg = b""


def run_parser(r, data, max_message=MAX_MESSAGE):
    """Feed data in random pieces; (events, end) in the oracle's terms."""
    ws = WsConnection(max_message=max_message, bufsize=64 + r.below(512), rng=lambda n: bytes(n))
    events = []
    pos = 0
    while True:
        try:
            while True:
                ev = ws.next_event()
                if ev is None:
                    break
                if ev == EV_TEXT:
                    events.append(("text", ws.data))
                elif ev == EV_BINARY:
                    events.append(("binary", ws.data))
                elif ev == EV_PING:
                    events.append(("ping", ws.data))
                elif ev == EV_PONG:
                    events.append(("pong", ws.data))
                elif ev == EV_CLOSE:
                    events.append(("close", ws.close_code, ws.close_reason))
                    return events, ("closed",)
        except ParseFailed as e:
            return events, ("fail", e.code)
        if pos >= len(data):
            return events, None
        step = 1 + r.below(1 + r.below(200))
        ws.feed(data[pos : pos + step])
        pos += step


def one_case(r):
    data = gen_stream(r)
    if r.chance(70):
        data = mutate(r, data)
    got = run_parser(r, data)
    want = oracle(data)
    return data, got, want


def fuzz(cases, seed=1):
    """Runs the cases; returns (count by outcome, list of mismatches)."""
    r = Rand(seed)
    counts = {"closed": 0, "fail": 0, "more": 0}
    codes = {}
    bad = []
    for i in range(cases):
        try:
            data, got, want = one_case(r)
        except Exception as e:  # anything but ParseFailed escaping is a bug
            bad.append((i, "exception", repr(e)))
            continue
        if got != want:
            bad.append((i, data, got, want))
            continue
        end = got[1]
        if end is None:
            counts["more"] += 1
        else:
            counts[end[0]] += 1
            if end[0] == "fail":
                codes[end[1]] = codes.get(end[1], 0) + 1
                if end[1] not in (1002, 1007, 1009):
                    bad.append((i, "code", end[1]))
    counts["codes"] = codes
    return counts, bad


def main(argv):
    cases = int(argv[1]) if len(argv) > 1 else 100000
    seed = int(argv[2]) if len(argv) > 2 else 1
    counts, bad = fuzz(cases, seed)
    print("fuzz_ws: %d cases, seed %d: %r" % (cases, seed, counts))
    for item in bad[:5]:
        print("MISMATCH", item)
    if bad:
        print("fuzz_ws: %d mismatches" % len(bad))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
