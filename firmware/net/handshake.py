# The WebSocket opening handshake of a client (RFC 6455 §4.1), sans-I/O.
#
#   hs = Handshake("csms.example:8443", "/ocpp/CP1", ("ocpp2.0.1", "ocpp1.6"))
#   write(hs.request())
#   while not hs.feed(read()): pass      # raises HandshakeError
#   hs.subprotocol                        # the one the server chose
#   hs.extra                              # bytes after the response: frames
#
# The 101 answer is checked strictly: Upgrade, Connection, the
# Sec-WebSocket-Accept digest, no extension we did not offer, and exactly one
# subprotocol out of those offered. OCPP-J: a server that supports none of
# them answers without the header (OCPP-J 1.6 §3.2, 2.0.1 Part 4 §3.3), and
# the client refuses that connection.
import binascii
import hashlib

from firmware.compat import urandom

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_RESPONSE = 8192


class HandshakeError(Exception):
    """The server's answer is not a valid upgrade. `status` is the HTTP
    status (0 when the answer was not HTTP or was cut short)."""

    def __init__(self, reason, status=0):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def accept_for(key):
    """Sec-WebSocket-Accept expected for a Sec-WebSocket-Key (both bytes)."""
    return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest()).strip()


def _clean(value):
    if "\r" in value or "\n" in value:
        raise ValueError("line break in a header value")
    return value


class Handshake:
    def __init__(self, host, path, subprotocols, headers=(), rng=urandom, max_response=MAX_RESPONSE):
        if not subprotocols:
            raise ValueError("no subprotocol to offer")
        self.key = binascii.b2a_base64(rng(16)).strip()
        self._host = _clean(host)
        self._path = _clean(path)
        self._offered = tuple(subprotocols)
        self._headers = tuple(headers)
        self._buf = b""
        self._max = max_response
        self.received = 0  # bytes of answer so far
        self.status = 0
        self.headers = {}
        self.subprotocol = None
        self.extra = b""

    def request(self):
        lines = [
            "GET " + self._path + " HTTP/1.1",
            "Host: " + self._host,
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: " + self.key.decode(),
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: " + _clean(", ".join(self._offered)),
        ]
        for name, value in self._headers:
            lines.append(_clean(name) + ": " + _clean(value))
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode()

    def feed(self, data, n=-1):
        """Take bytes of the answer; True once the whole header is in and good."""
        if n < 0:
            n = len(data)
        self.received += n
        self._buf += bytes(memoryview(data)[:n])
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > self._max:
                raise HandshakeError("response header too long")
            return False
        head = self._buf[:end]
        self.extra = self._buf[end + 4 :]
        self._buf = b""
        try:
            self._check(head)
        except UnicodeError:
            raise HandshakeError("response header is not text", self.status)
        return True

    def _check(self, head):
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.1"):
            raise HandshakeError("not an HTTP/1.1 response")
        try:
            status = int(parts[1])
        except ValueError:
            raise HandshakeError("bad HTTP status line")
        self.status = status
        if status != 101:
            phrase = parts[2].decode() if len(parts) > 2 else ""
            raise HandshakeError(("HTTP %d " % status) + phrase, status)
        hdrs = {}
        for line in lines[1:]:
            i = line.find(b":")
            if i <= 0:
                raise HandshakeError("malformed header line")
            name = line[:i].strip().lower().decode()
            value = line[i + 1 :].strip()
            if name in hdrs:
                hdrs[name] = hdrs[name] + b", " + value
            else:
                hdrs[name] = value
        self.headers = hdrs
        if hdrs.get("upgrade", b"").lower() != b"websocket":
            raise HandshakeError("Upgrade is not websocket", status)
        tokens = [t.strip().lower() for t in hdrs.get("connection", b"").split(b",")]
        if b"upgrade" not in tokens:
            raise HandshakeError("Connection does not include Upgrade", status)
        if hdrs.get("sec-websocket-accept") != accept_for(self.key):
            raise HandshakeError("wrong Sec-WebSocket-Accept", status)
        if hdrs.get("sec-websocket-extensions"):
            raise HandshakeError("extension not offered", status)
        chosen = hdrs.get("sec-websocket-protocol")
        if not chosen:
            raise HandshakeError("server agreed to no subprotocol", status)
        chosen = chosen.decode()
        if chosen not in self._offered:
            raise HandshakeError("server chose a subprotocol not offered", status)
        self.subprotocol = chosen
