# RFC 6455 WebSocket framing for the client side, sans-I/O.
#
#   ws = WsConnection()
#   ws.feed(data)                    # bytes from the socket (kept, not copied)
#   while True:
#       ev = ws.next_event()         # None: feed more
#       if ev is None: break
#       if ev == EV_TEXT: use(ws.data)
#   out = ws.send_text("[2,...]")    # memoryview of the masked frame
#
# Events are small ints (EV_*); what comes with them sits in attributes:
# `data` (str for text, bytes otherwise), `close_code`, `close_reason`.
# A protocol fault raises ParseFailed carrying the close code chosen where
# the fault was found; the caller then sends close(exc.code) and drops TCP.
#
# Allocation: input is parsed in place, payloads are copied into one reused
# message buffer, frames are built in one reused output buffer and handed
# out as a memoryview that stays valid until the next send_* call of the same
# kind (data or control). Only the delivered payload (str or bytes) is new.
from firmware.compat import const, copy_into, mask_into, utf8_text, urandom

EV_TEXT = const(1)
EV_BINARY = const(2)
EV_CLOSE = const(8)
EV_PING = const(9)
EV_PONG = const(10)

# Close codes (RFC 6455 §7.4.1).
CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL_ERROR = const(1002)
CLOSE_UNSUPPORTED_DATA = const(1003)
CLOSE_NO_STATUS = const(1005)
CLOSE_ABNORMAL = const(1006)
CLOSE_INVALID_DATA = const(1007)
CLOSE_POLICY = const(1008)
CLOSE_TOO_BIG = const(1009)
CLOSE_INTERNAL = const(1011)

# Connection states.
ST_OPEN = const(0)
ST_CLOSING = const(1)  # we sent a close frame and wait for the peer's
ST_CLOSE_RECEIVED = const(2)  # the peer sent one; we owe the reply
ST_FAILED = const(3)  # ParseFailed; we owe a close frame with its code
ST_CLOSED = const(4)

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)

_HEAD = const(0)
_BODY = const(1)

_CTL_MAX = const(125)
_KEYS = const(64)  # masking keys fetched from the RNG at a time (16 frames)

DEFAULT_MAX_MESSAGE = const(65536)


class ParseFailed(Exception):
    """The peer broke RFC 6455; `code` is the close code to send."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def close_code_valid(code):
    # Codes a peer may put on the wire (RFC 6455 §7.4.1, §7.4.2; IANA adds
    # 1012-1014). 1004, 1005, 1006 and 1015 are never sent.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class WsConnection:
    def __init__(self, max_message=DEFAULT_MAX_MESSAGE, bufsize=1024, rng=urandom):
        self.max_message = max_message
        self._rng = rng
        self.state = ST_OPEN
        self.data = None
        self.close_code = None
        self.close_reason = ""
        # input: a reference to what feed() got, parsed in place
        self._in = b""
        self._pos = 0
        self._end = 0
        # frame being parsed
        self._phase = _HEAD
        self._hdr = bytearray(10)
        self._have = 0
        self._need = 2
        self._op = 0
        self._fin = 0
        self._left = 0
        # message assembly (text/binary, possibly fragmented)
        self._msg = bytearray(min(bufsize, max_message))
        self._msg_mv = memoryview(self._msg)
        self._msg_len = 0
        self._msg_op = 0  # opcode of the message in progress, 0 when none
        # control frame payload
        self._ctl = bytearray(_CTL_MAX)
        self._ctl_mv = memoryview(self._ctl)
        self._ctl_len = 0
        # output buffers: data frames and control frames
        self._out = bytearray(min(bufsize, max_message) + 14)
        self._out_mv = memoryview(self._out)
        self._cout = bytearray(2 + 4 + _CTL_MAX)
        self._cout_mv = memoryview(self._cout)
        self._keys = b""
        self._kpos = _KEYS

    # -- receiving -----------------------------------------------------------

    def feed(self, data, n=-1):
        """Hand over bytes read from the socket (the first n of data).

        The connection keeps a reference and parses in place: do not reuse
        the buffer until next_event() has returned None.
        """
        if n < 0:
            n = len(data)
        if self._pos < self._end:
            # The caller fed again before draining: join (rare path).
            data = bytes(memoryview(self._in)[self._pos : self._end]) + bytes(memoryview(data)[:n])
            n = len(data)
        self._in = data
        self._pos = 0
        self._end = n

    def lost(self):
        """The transport is gone. EV_CLOSE with close code 1006 unless a
        close was already reported (or the parser failed), else None."""
        st = self.state
        self.state = ST_CLOSED
        self._in = b""
        self._pos = self._end = 0
        if st == ST_OPEN or st == ST_CLOSING:
            self.close_code = CLOSE_ABNORMAL
            self.close_reason = ""
            return EV_CLOSE
        return None

    def next_event(self):
        """The next event (EV_*), or None when more input is needed."""
        if self.state >= ST_CLOSE_RECEIVED:
            # After the peer's close frame, or a failure, input is ignored.
            self._pos = self._end
            return None
        data = self._in
        while True:
            avail = self._end - self._pos
            if self._phase == _HEAD:
                if avail == 0:
                    return None
                have = self._have
                need = self._need
                hdr = self._hdr
                pos = self._pos
                while have < need and pos < self._end:
                    hdr[have] = data[pos]
                    have += 1
                    pos += 1
                self._pos = pos
                self._have = have
                if have < need:
                    return None
                if need == 2:
                    self._head2()
                    if self._need > 2:
                        continue
                else:
                    self._head_ext()
                self._begin_body()
                avail = self._end - self._pos
            # _BODY
            left = self._left
            if left:
                if avail == 0:
                    return None
                take = left if left < avail else avail
                if self._op >= _OP_CLOSE:
                    copy_into(self._ctl, self._ctl_len, data, self._pos, take)
                    self._ctl_len += take
                else:
                    copy_into(self._msg, self._msg_len, data, self._pos, take)
                    self._msg_len += take
                self._pos += take
                self._left = left - take
                if left > take:
                    return None
            self._phase = _HEAD
            self._have = 0
            self._need = 2
            ev = self._frame_done()
            if ev is not None:
                return ev

    def _fail(self, code, reason):
        self.state = ST_FAILED
        self._pos = self._end
        raise ParseFailed(code, reason)

    def _head2(self):
        # RFC 6455 §5.2: FIN, RSV1-3, opcode; MASK, payload length.
        b0 = self._hdr[0]
        b1 = self._hdr[1]
        op = b0 & 0x0F
        if b0 & 0x70:
            self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if op > _OP_BINARY and (op < _OP_CLOSE or op > _OP_PONG):
            self._fail(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        n = b1 & 0x7F
        if op >= _OP_CLOSE:
            # §5.5: control frames are not fragmented, at most 125 bytes.
            if not b0 & 0x80:
                self._fail(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if n > _CTL_MAX:
                self._fail(CLOSE_PROTOCOL_ERROR, "control frame too long")
        elif op == _OP_CONT:
            if not self._msg_op:
                self._fail(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif self._msg_op:
            self._fail(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        if b1 & 0x80:
            # §5.1: a client closes when it sees a masked frame.
            self._fail(CLOSE_PROTOCOL_ERROR, "masked frame from server")
        self._op = op
        self._fin = b0 & 0x80
        if n == 126:
            self._need = 4
        elif n == 127:
            self._need = 10
        else:
            self._left = n

    def _head_ext(self):
        hdr = self._hdr
        if self._need == 4:
            n = (hdr[2] << 8) | hdr[3]
            if n < 126:
                self._fail(CLOSE_PROTOCOL_ERROR, "length not in its shortest form")
        else:
            if hdr[2] & 0x80:
                self._fail(CLOSE_PROTOCOL_ERROR, "length with its top bit set")
            if hdr[2] or hdr[3] or hdr[4] or hdr[5]:
                # 2**32 or more: too big for anyone, and keeps ints small.
                self._fail(CLOSE_TOO_BIG, "message too big")
            n = (hdr[6] << 24) | (hdr[7] << 16) | (hdr[8] << 8) | hdr[9]
            if n < 65536:
                self._fail(CLOSE_PROTOCOL_ERROR, "length not in its shortest form")
        self._left = n

    def _begin_body(self):
        self._phase = _BODY
        if self._op >= _OP_CLOSE:
            self._ctl_len = 0
            return
        if not self._msg_op:
            self._msg_op = self._op
            self._msg_len = 0
        total = self._msg_len + self._left
        if total > self.max_message:
            self._fail(CLOSE_TOO_BIG, "message too big")
        if total > len(self._msg):
            self._grow_msg(total)

    def _grow_msg(self, need):
        size = len(self._msg)
        while size < need:
            size <<= 1
        if size > self.max_message:
            size = self.max_message
        try:
            buf = bytearray(size)
        except MemoryError:
            self._fail(CLOSE_TOO_BIG, "message too big for memory")
        copy_into(buf, 0, self._msg, 0, self._msg_len)
        self._msg = buf
        self._msg_mv = memoryview(buf)

    def _frame_done(self):
        op = self._op
        if op >= _OP_CLOSE:
            n = self._ctl_len
            if op == _OP_CLOSE:
                return self._on_close(n)
            self.data = bytes(self._ctl_mv[:n])
            return EV_PING if op == _OP_PING else EV_PONG
        if not self._fin:
            return None
        op = self._msg_op
        n = self._msg_len
        self._msg_op = 0
        self._msg_len = 0
        if op == _OP_TEXT:
            text = utf8_text(self._msg_mv, 0, n)
            if text is None:
                self._fail(CLOSE_INVALID_DATA, "text is not UTF-8")
            self.data = text
            return EV_TEXT
        self.data = bytes(self._msg_mv[:n])
        return EV_BINARY

    def _on_close(self, n):
        # RFC 6455 §5.5.1, §7.1.5: no body means 1005; a body starts with the
        # 2-byte code, then a UTF-8 reason.
        if n == 0:
            code = CLOSE_NO_STATUS
            reason = ""
        elif n == 1:
            self._fail(CLOSE_PROTOCOL_ERROR, "close frame of 1 byte")
        else:
            code = (self._ctl[0] << 8) | self._ctl[1]
            if not close_code_valid(code):
                self._fail(CLOSE_PROTOCOL_ERROR, "invalid close code")
            reason = utf8_text(self._ctl_mv, 2, n - 2)
            if reason is None:
                self._fail(CLOSE_INVALID_DATA, "close reason is not UTF-8")
        self.close_code = code
        self.close_reason = reason
        self.state = ST_CLOSED if self.state == ST_CLOSING else ST_CLOSE_RECEIVED
        self._pos = self._end
        return EV_CLOSE

    # -- sending -------------------------------------------------------------

    def send_text(self, text):
        """The frame carrying one text message (a memoryview, see above)."""
        return self._data_frame(_OP_TEXT, text.encode())

    def send_binary(self, data):
        return self._data_frame(_OP_BINARY, data)

    def send_ping(self, payload=b""):
        if self.state != ST_OPEN:
            raise RuntimeError("WebSocket not open")
        return self._control(_OP_PING, payload, len(payload))

    def pong(self, payload=b""):
        """The answer to a ping: send it with the ping's payload (ws.data)."""
        if self.state > ST_CLOSING:
            raise RuntimeError("WebSocket closed")
        return self._control(_OP_PONG, payload, len(payload))

    def close(self, code=CLOSE_NORMAL, reason=""):
        """Our close frame, or None when none is due any more.

        Starts the closing handshake when open; answers the peer's close
        (echo its code: pass ws.close_code) or reports a ParseFailed code.
        code None sends a close frame without a body.
        """
        st = self.state
        if st == ST_CLOSING or st == ST_CLOSED:
            return None
        if code is None or code == CLOSE_NO_STATUS:
            body = b""
        else:
            if not close_code_valid(code):
                raise ValueError("close code not allowed on the wire")
            r = reason.encode()
            if len(r) > _CTL_MAX - 2:
                raise ValueError("close reason too long")
            body = bytes((code >> 8, code & 0xFF)) + r
        if st == ST_OPEN:
            # The connection's close code will be the one in the peer's
            # answer (RFC 6455 §7.1.5).
            self.state = ST_CLOSING
        else:
            self.state = ST_CLOSED
            if st == ST_FAILED:
                self.close_code = code
                self.close_reason = reason
        return self._control(_OP_CLOSE, body, len(body))

    def _data_frame(self, op, payload):
        if self.state != ST_OPEN:
            raise RuntimeError("WebSocket not open")
        n = len(payload)
        if n + 14 > len(self._out):
            self._grow_out(n + 14)
        total = self._frame(self._out, op, payload, n)
        return self._out_mv[:total]

    def _grow_out(self, need):
        size = len(self._out)
        while size < need:
            size <<= 1
        self._out = bytearray(size)
        self._out_mv = memoryview(self._out)

    def _control(self, op, payload, n):
        if n > _CTL_MAX:
            raise ValueError("control payload over 125 bytes")
        total = self._frame(self._cout, op, payload, n)
        return self._cout_mv[:total]

    def _frame(self, buf, op, payload, n):
        # RFC 6455 §5.2 header, then §5.3 masking with a fresh key per frame.
        buf[0] = 0x80 | op
        if n < 126:
            buf[1] = 0x80 | n
            h = 2
        elif n < 65536:
            buf[1] = 0xFE
            buf[2] = n >> 8
            buf[3] = n & 0xFF
            h = 4
        else:
            buf[1] = 0xFF
            buf[2] = buf[3] = buf[4] = buf[5] = 0
            buf[6] = (n >> 24) & 0xFF
            buf[7] = (n >> 16) & 0xFF
            buf[8] = (n >> 8) & 0xFF
            buf[9] = n & 0xFF
            h = 10
        k = self._kpos
        if k >= _KEYS:
            self._keys = self._rng(_KEYS)
            k = 0
        keys = self._keys
        buf[h] = keys[k]
        buf[h + 1] = keys[k + 1]
        buf[h + 2] = keys[k + 2]
        buf[h + 3] = keys[k + 3]
        self._kpos = k + 4
        h += 4
        mask_into(buf, h, payload, 0, n)
        return h + n
