import unittest

from firmware.net.handshake import Handshake, HandshakeError, accept_for

NONCE = b"the sample nonce"  # RFC 6455 §1.3: key dGhlIHNhbXBsZSBub25jZQ==
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def hs(subs=("ocpp2.0.1", "ocpp1.6"), headers=()):
    return Handshake("csms.example:8080", "/ocpp/CP%201", subs, headers, rng=lambda n: NONCE[:n])


def answer(*lines, accept=ACCEPT, proto=b"ocpp1.6", status=b"101 Switching Protocols"):
    head = [b"HTTP/1.1 " + status, b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]
    if proto is not None:
        head.append(b"Sec-WebSocket-Protocol: " + proto)
    return b"\r\n".join(head + list(lines)) + b"\r\n\r\n"


def refusal(h, data):
    try:
        h.feed(data)
    except HandshakeError as e:
        return e
    raise AssertionError("accepted")


class RequestTest(unittest.TestCase):
    def test_accept_digest_of_rfc_example(self):
        self.assertEqual(accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="), ACCEPT)

    def test_request_offers_subprotocols_in_order(self):
        h = hs(headers=(("Authorization", "Basic QUwxMDAwOg=="),))
        self.assertEqual(
            h.request(),
            b"GET /ocpp/CP%201 HTTP/1.1\r\n"
            b"Host: csms.example:8080\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: ocpp2.0.1, ocpp1.6\r\n"
            b"Authorization: Basic QUwxMDAwOg==\r\n"
            b"\r\n",
        )

    def test_header_injection_refused(self):
        with self.assertRaises(ValueError):
            hs(headers=(("X", "a\r\nEvil: 1"),)).request()


class AnswerTest(unittest.TestCase):
    def test_good_answer_in_pieces_with_a_frame_behind(self):
        h = hs()
        data = answer(b"Server: test") + b"\x81\x02hi"
        for i in range(len(data) - 6):
            self.assertFalse(h.feed(data[i : i + 1]))
        self.assertTrue(h.feed(data[len(data) - 6 :]))
        self.assertEqual(h.subprotocol, "ocpp1.6")
        self.assertEqual(h.extra, b"\x81\x02hi")

    def test_header_names_and_tokens_are_case_insensitive(self):
        h = hs()
        data = (
            b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
            b"sec-websocket-accept: " + ACCEPT + b"\r\nsec-websocket-protocol: ocpp2.0.1\r\n\r\n"
        )
        self.assertTrue(h.feed(data))
        self.assertEqual(h.subprotocol, "ocpp2.0.1")

    def test_wrong_accept(self):
        e = refusal(hs(), answer(accept=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
        self.assertEqual(e.reason, "wrong Sec-WebSocket-Accept")
        self.assertEqual(e.status, 101)

    def test_no_subprotocol_agreed(self):
        # OCPP-J 1.6 §3.2: the server answers without the header; we refuse.
        self.assertEqual(refusal(hs(), answer(proto=None)).reason, "server agreed to no subprotocol")

    def test_subprotocol_not_offered(self):
        self.assertEqual(refusal(hs(), answer(proto=b"ocpp2.1")).reason, "server chose a subprotocol not offered")
        self.assertEqual(refusal(hs(), answer(proto=b"ocpp1.6, ocpp2.0.1")).reason, "server chose a subprotocol not offered")

    def test_extension_not_offered(self):
        e = refusal(hs(), answer(b"Sec-WebSocket-Extensions: permessage-deflate"))
        self.assertEqual(e.reason, "extension not offered")

    def test_upgrade_and_connection_headers(self):
        bad_upgrade = answer().replace(b"Upgrade: websocket", b"Upgrade: h2c")
        self.assertEqual(refusal(hs(), bad_upgrade).reason, "Upgrade is not websocket")
        bad_conn = answer().replace(b"Connection: Upgrade", b"Connection: close")
        self.assertEqual(refusal(hs(), bad_conn).reason, "Connection does not include Upgrade")

    def test_other_status(self):
        e = refusal(hs(), b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n")
        self.assertEqual((e.status, e.reason), (401, "HTTP 401 Unauthorized"))
        e = refusal(hs(), b"HTTP/1.1 404 Not Found\r\n\r\n")
        self.assertEqual(e.status, 404)

    def test_garbage_and_oversize(self):
        self.assertEqual(refusal(hs(), b"SSH-2.0-OpenSSH\r\n\r\n").status, 0)
        self.assertEqual(refusal(hs(), b"HTTP/1.1 abc OK\r\n\r\n").reason, "bad HTTP status line")
        self.assertEqual(refusal(hs(), answer(b"no colon here")).reason, "malformed header line")
        self.assertEqual(refusal(hs(), answer(b"X: \xff\xfe", proto=b"\xff")).status, 101)
        h = hs()
        with self.assertRaises(HandshakeError):
            for _ in range(100):
                h.feed(b"X-Filler: " + b"y" * 100 + b"\r\n")
