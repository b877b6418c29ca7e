import unittest

from firmware import bufops, compat
from firmware.net import ws as W
from tests import fuzz_ws
from tests.fuzz_ws import frame
from tests.support import IS_MICROPYTHON

KEYS = bytes(range(1, 65))  # masking keys 01020304, 05060708, ...


def conn(**kw):
    kw.setdefault("rng", lambda n: KEYS[:n])
    return W.WsConnection(**kw)


def unmask(data):
    """(fin, opcode, payload) of one client frame, checking the mask bit."""
    data = bytes(data)
    b1 = data[1]
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    h = 2
    if n == 126:
        n = (data[2] << 8) | data[3]
        h = 4
    elif n == 127:
        n = int.from_bytes(data[2:10], "big")
        h = 10
    key = data[h : h + 4]
    body = data[h + 4 :]
    assert len(body) == n
    return data[0] >> 7, data[0] & 0x0F, bytes(body[i] ^ key[i & 3] for i in range(n))


def events(ws, data, step=0):
    """Feed data (in pieces of `step` bytes, 0 = at once); list of events."""
    out = []
    step = step or len(data)
    for i in range(0, len(data), step):
        ws.feed(data[i : i + step])
        while True:
            ev = ws.next_event()
            if ev is None:
                break
            if ev == W.EV_CLOSE:
                out.append((ev, ws.close_code, ws.close_reason))
            else:
                out.append((ev, ws.data))
    return out


def fails(ws, data):
    try:
        events(ws, data)
    except W.ParseFailed as e:
        return e.code
    return None


class EncodeTest(unittest.TestCase):
    def test_text_frame_is_masked_with_a_fresh_key(self):
        ws = conn()
        f = bytes(ws.send_text("hello"))
        self.assertEqual(f[:2], b"\x81\x85")
        self.assertEqual(f[2:6], b"\x01\x02\x03\x04")
        self.assertEqual(unmask(f), (1, 1, b"hello"))
        f2 = bytes(ws.send_text("hello"))
        self.assertEqual(f2[2:6], b"\x05\x06\x07\x08")
        self.assertEqual(unmask(f2), (1, 1, b"hello"))

    def test_length_forms(self):
        ws = conn()
        for n, head in ((0, b"\x81\x80"), (125, b"\x81\xfd"), (126, b"\x81\xfe\x00\x7e"), (65535, b"\x81\xfe\xff\xff")):
            f = bytes(ws.send_text("a" * n))
            self.assertEqual(f[: len(head)], head)
            self.assertEqual(unmask(f)[2], b"a" * n)
        f = bytes(ws.send_text("b" * 65536))
        self.assertEqual(f[:10], b"\x81\xff\x00\x00\x00\x00\x00\x01\x00\x00")
        self.assertEqual(unmask(f)[2], b"b" * 65536)

    def test_utf8_text_and_binary(self):
        ws = conn()
        self.assertEqual(unmask(ws.send_text("é€\U0001f50c"))[2], "é€\U0001f50c".encode())
        self.assertEqual(unmask(ws.send_binary(b"\x00\xff"))[:2], (1, 2))

    def test_control_frames(self):
        ws = conn()
        self.assertEqual(unmask(ws.send_ping(b"hb")), (1, 9, b"hb"))
        self.assertEqual(unmask(ws.pong(b"hb")), (1, 10, b"hb"))
        with self.assertRaises(ValueError):
            ws.send_ping(b"x" * 126)

    def test_data_and_control_buffers_are_apart(self):
        ws = conn()
        data = ws.send_text("message")
        ws.pong(b"between")
        self.assertEqual(unmask(data)[2], b"message")

    def test_close_handshake_started_by_us(self):
        ws = conn()
        f = ws.close(1000, "bye")
        self.assertEqual(unmask(f), (1, 8, b"\x03\xe8bye"))
        self.assertEqual(ws.state, W.ST_CLOSING)
        self.assertIsNone(ws.close())
        with self.assertRaises(RuntimeError):
            ws.send_text("late")
        # data still arriving before the peer's answer is delivered
        self.assertEqual(events(ws, frame(1, b"last") + frame(8, b"\x03\xe8")), [(W.EV_TEXT, "last"), (W.EV_CLOSE, 1000, "")])
        self.assertEqual(ws.state, W.ST_CLOSED)

    def test_close_without_code_and_bad_codes(self):
        ws = conn()
        self.assertEqual(unmask(ws.close(None)), (1, 8, b""))
        ws = conn()
        for code in (999, 1004, 1005 + 1, 1015, 2000, 5000):
            with self.assertRaises(ValueError):
                ws.close(code)
        with self.assertRaises(ValueError):
            ws.close(1000, "x" * 124)


class DecodeTest(unittest.TestCase):
    def test_messages_in_any_pieces(self):
        stream = frame(1, b"a" * 200) + frame(2, b"\x00\x01") + frame(1, "é€".encode()) + frame(1, b"z" * 70000)
        want = [(W.EV_TEXT, "a" * 200), (W.EV_BINARY, b"\x00\x01"), (W.EV_TEXT, "é€"), (W.EV_TEXT, "z" * 70000)]
        for step in (0, 1, 2, 3, 7, 125, 4096):
            ws = conn(max_message=100000, bufsize=16)
            self.assertEqual(events(ws, stream, step), want)

    def test_fragments_with_control_frames_between(self):
        stream = (
            frame(1, "[2,\"1\",".encode(), fin=False)
            + frame(9, b"p")
            + frame(0, "\"é".encode()[:2], fin=False)
            + frame(10, b"")
            + frame(0, "é\"]".encode()[1:], fin=True)
        )
        ws = conn()
        got = events(ws, stream, 3)
        self.assertEqual(got, [(W.EV_PING, b"p"), (W.EV_PONG, b""), (W.EV_TEXT, '[2,"1","é"]')])

    def test_utf8_split_inside_a_character_across_fragments(self):
        t = "€".encode()
        ws = conn()
        self.assertEqual(events(ws, frame(1, t[:1], fin=False) + frame(0, t[1:])), [(W.EV_TEXT, "€")])

    def test_protocol_errors_close_1002(self):
        cases = (
            frame(1, b"x", rsv=4),  # reserved bit, no extension agreed
            frame(3, b""),  # reserved opcode
            frame(11, b""),
            frame(9, b"", fin=False),  # fragmented control frame
            frame(9, b"x" * 126),  # control payload over 125
            frame(0, b"x"),  # continuation with nothing to continue
            frame(1, b"x", fin=False) + frame(1, b"y"),  # new message inside one
            frame(1, b"x", masked=True),  # masked frame from the server
            frame(1, b"x" * 100, form=2),  # length not in its shortest form
            frame(1, b"x" * 1000, form=8),
            frame(8, b"\x03"),  # close body of one byte
            frame(8, b"\x03\xec"),  # close code 1004
            frame(8, b"\x03\xed"),  # 1005 is never sent
            frame(8, b"\x07\xd0"),  # 2000 unassigned
        )
        for data in cases:
            self.assertEqual(fails(conn(), data), W.CLOSE_PROTOCOL_ERROR, data[:4])
        # 64-bit length with its top bit set
        self.assertEqual(fails(conn(), b"\x82\x7f\x80" + bytes(7)), W.CLOSE_PROTOCOL_ERROR)

    def test_invalid_utf8_closes_1007(self):
        for bad in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\x80"):
            self.assertEqual(fails(conn(), frame(1, bad)), W.CLOSE_INVALID_DATA, bad)
        self.assertEqual(fails(conn(), frame(8, b"\x03\xe8\xff")), W.CLOSE_INVALID_DATA)

    def test_too_big_closes_1009(self):
        self.assertEqual(fails(conn(max_message=1000), frame(1, b"x" * 1001)), W.CLOSE_TOO_BIG)
        ws = conn(max_message=1000)
        self.assertEqual(events(ws, frame(1, b"x" * 1000)), [(W.EV_TEXT, "x" * 1000)])
        # the sum of the fragments counts
        data = frame(1, b"x" * 600, fin=False) + frame(0, b"x" * 401)
        self.assertEqual(fails(conn(max_message=1000), data), W.CLOSE_TOO_BIG)
        # refused from the header alone: the payload never has to arrive
        self.assertEqual(fails(conn(), b"\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00"), W.CLOSE_TOO_BIG)

    def test_failure_then_close_frame_with_its_code(self):
        ws = conn()
        code = fails(ws, frame(1, b"\xff"))
        self.assertEqual(ws.state, W.ST_FAILED)
        self.assertEqual(unmask(ws.close(code, "bad text")), (1, 8, b"\x03\xefbad text"))
        self.assertEqual(ws.state, W.ST_CLOSED)
        self.assertEqual(ws.close_code, W.CLOSE_INVALID_DATA)
        self.assertIsNone(ws.next_event())

    def test_peer_close_is_reported_and_echoed(self):
        ws = conn()
        self.assertEqual(events(ws, frame(8, b"\x0f\xa1bye") + frame(1, b"ignored")), [(W.EV_CLOSE, 4001, "bye")])
        self.assertEqual(ws.state, W.ST_CLOSE_RECEIVED)
        self.assertEqual(unmask(ws.close(ws.close_code)), (1, 8, b"\x0f\xa1"))
        self.assertEqual(ws.state, W.ST_CLOSED)
        self.assertIsNone(ws.lost())

    def test_close_without_body_is_1005_and_answered_without_body(self):
        ws = conn()
        self.assertEqual(events(ws, frame(8, b"")), [(W.EV_CLOSE, W.CLOSE_NO_STATUS, "")])
        self.assertEqual(unmask(ws.close(ws.close_code)), (1, 8, b""))

    def test_lost_transport_is_1006(self):
        ws = conn()
        events(ws, frame(1, b"half")[:3])
        self.assertEqual(ws.lost(), W.EV_CLOSE)
        self.assertEqual(ws.close_code, W.CLOSE_ABNORMAL)
        self.assertIsNone(ws.lost())

    def test_feed_again_before_draining_keeps_order(self):
        ws = conn()
        two = frame(1, b"two")
        ws.feed(frame(1, b"one") + two[:3])
        self.assertEqual(ws.next_event(), W.EV_TEXT)
        self.assertEqual(ws.data, "one")
        ws.feed(two[3:])  # three bytes were still unread: joined, not lost
        self.assertEqual(ws.next_event(), W.EV_TEXT)
        self.assertEqual(ws.data, "two")
        self.assertIsNone(ws.next_event())

    def test_feed_with_length(self):
        ws = conn()
        buf = bytearray(64)
        f = frame(1, b"ab")
        buf[: len(f)] = f
        ws.feed(buf, len(f))
        self.assertEqual(ws.next_event(), W.EV_TEXT)
        self.assertEqual(ws.data, "ab")
        self.assertIsNone(ws.next_event())


class BufferOpsTest(unittest.TestCase):
    def test_mask_and_copy_every_implementation(self):
        src = bytes(range(256)) * 24
        masks = [bufops.mask_into, compat.mask_into]
        if not IS_MICROPYTHON:
            masks.append(bufops.mask_into_strided)  # extended slices: CPython
        for mask in masks:
            for n in (0, 1, 3, 4, 5, 255, 700, 4095, 4096, 5001):
                dst = bytearray(8 + n)
                dst[4:8] = b"\x11\x22\x33\x44"
                mask(dst, 8, src, 5, n)
                want = bytes(src[5 + i] ^ (0x11, 0x22, 0x33, 0x44)[i & 3] for i in range(n))
                self.assertEqual(bytes(dst[8:]), want)
        for copy in (bufops.copy_into, compat.copy_into):
            for n in (0, 1, 700):
                dst = bytearray(n + 2)
                copy(dst, 2, src, 7, n)
                self.assertEqual(bytes(dst[2:]), src[7 : 7 + n])

    def test_utf8_validators_agree(self):
        r = fuzz_ws.Rand(7)
        samples = [b"", b"ascii", "é€\U0001f50c".encode(), b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xf4\x8f\xbf\xbf"]
        samples += list(fuzz_ws._BAD_UTF8)
        for _ in range(3000):
            n = r.below(6)
            samples.append(bytes(0x80 + r.below(0x80) if r.chance(70) else r.below(0x100) for _ in range(n)))
        for s in samples:
            a = bufops.utf8_valid(s, 0, len(s))
            b = compat.utf8_valid(s, 0, len(s))
            self.assertEqual(bool(a), bool(b), s)
            if not IS_MICROPYTHON:
                try:
                    s.decode("utf-8")
                    ok = True
                except UnicodeError:
                    ok = False
                self.assertEqual(bool(a), ok, s)


class FuzzTest(unittest.TestCase):
    def test_2000_random_and_mutated_streams(self):
        counts, bad = fuzz_ws.fuzz(2000, seed=11)
        self.assertEqual(bad, [])
        self.assertGreater(counts["fail"], 0)
        self.assertGreater(counts["closed"], 0)
        self.assertEqual(sorted(counts["codes"]), [1002, 1007, 1009])


class AllocationTest(unittest.TestCase):
    @unittest.skipIf(not IS_MICROPYTHON, "heap figures exist on MicroPython only")
    def test_frames_allocate_only_their_payload(self):
        ws = conn(max_message=4096, bufsize=2048)
        text = "x" * 1024
        incoming = frame(1, text.encode())
        # warm up: buffers grown, key pool filled
        for _ in range(20):
            ws.send_text(text)
            ws.feed(incoming)
            ws.next_event()
        body = memoryview(incoming)[4:]
        payload = _alloc(lambda: str(body, "utf-8"), 50)

        def decode():
            ws.feed(incoming)
            ws.next_event()
            ws.next_event()

        per_decode = _alloc(decode, 50)
        per_encode = _alloc(lambda: ws.send_text(text), 64)
        # decoding: the str itself and the view it is made from (32 bytes);
        # encoding: no payload copy, only the view handed out, the text's
        # UTF-8 view and a sixteenth of a masking key refill
        self.assertLessEqual(per_decode, payload + 32)
        self.assertLess(per_encode, 100)


def _alloc(fn, times):
    compat.collect()
    before = compat.mem_alloc()
    for _ in range(times):
        fn()
    return (compat.mem_alloc() - before) // times

