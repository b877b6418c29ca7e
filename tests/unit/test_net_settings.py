import binascii
import unittest

from firmware.net.settings import ConfigError, Settings, basic_credentials, endpoint_path, parse_url, quote_identity

KEY_HEX = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"  # OCPP-J 1.6 §6.2.2 example
SECRET = "s3cr3t-Key-DoNotLog-42"


def cfg(**kw):
    c = {"url": "ws://csms.example/ocpp", "identity": "CP1"}
    c.update(kw)
    return c


class UrlTest(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parse_url("ws://h/ocpp"), (False, "h", 80, "/ocpp"))
        self.assertEqual(parse_url("WSS://h:8443"), (True, "h", 8443, "/"))
        self.assertEqual(parse_url("ws://[::1]:9000/a/b?x=1"), (False, "::1", 9000, "/a/b?x=1"))
        for bad in ("http://h/", "h/ocpp", "ws://:80/", "ws://h:0/", "ws://h:99999/", "ws://h:x/", "ws://u:p@h/", "ws://h/#f", "ws://[::1/"):
            with self.assertRaises(ConfigError):
                parse_url(bad)

    def test_identity_is_percent_encoded(self):
        # OCPP-J 1.6 §3.1.1, 2.0.1 Part 4 §3.1.1: RFC 3986 unreserved stay.
        self.assertEqual(quote_identity("CP-01_a.b~c"), "CP-01_a.b~c")
        self.assertEqual(quote_identity("CP 1/é:#?"), "CP%201%2F%C3%A9%3A%23%3F")
        self.assertEqual(endpoint_path("/ocpp", "CP 1"), "/ocpp/CP%201")
        self.assertEqual(endpoint_path("/ocpp/", "CP1"), "/ocpp/CP1")
        self.assertEqual(endpoint_path("/", "CP1"), "/CP1")
        self.assertEqual(endpoint_path("/ocpp?token=x", "CP1"), "/ocpp/CP1?token=x")

    def test_host_header(self):
        self.assertEqual(Settings(cfg()).host_header, "csms.example")
        self.assertEqual(Settings(cfg(url="ws://[::1]:9000/x")).host_header, "[::1]:9000")
        self.assertEqual(Settings(cfg(url="ws://h:80/x")).host_header, "h")


class BasicAuthTest(unittest.TestCase):
    def test_hex_key_goes_as_raw_bytes(self):
        # J16 §6.2.2: AL1000 with that key gives exactly this header.
        self.assertEqual(
            basic_credentials("AL1000", KEY_HEX, "hex", ("ocpp1.6",)), "Basic QUwxMDAwOgABAgMEBQYH////////////////"
        )
        self.assertEqual(basic_credentials("AL1000", KEY_HEX, "auto", ("ocpp1.6", "ocpp2.0.1")), "Basic QUwxMDAwOgABAgMEBQYH////////////////")

    def test_text_key_goes_as_utf8(self):
        want = "Basic " + binascii.b2a_base64(b"CP1:" + KEY_HEX.encode()).strip().decode()
        self.assertEqual(basic_credentials("CP1", KEY_HEX, "text", ("ocpp1.6",)), want)
        # auto: 2.0.1 preferred, so the string itself (Part 2 A00.FR.205)
        self.assertEqual(basic_credentials("CP1", KEY_HEX, "auto", ("ocpp2.0.1", "ocpp1.6")), want)
        # auto: not hex, so text even for 1.6
        want = "Basic " + binascii.b2a_base64(b"CP1:" + SECRET.encode()).strip().decode()
        self.assertEqual(basic_credentials("CP1", SECRET, "auto", ("ocpp1.6",)), want)

    def test_profile_1_sends_the_header(self):
        s = Settings(cfg(security_profile=1, authorization_key=KEY_HEX, identity="AL1000"))
        self.assertEqual(s.headers, [("Authorization", "Basic QUwxMDAwOgABAgMEBQYH////////////////")])
        self.assertEqual(Settings(cfg(authorization_key=KEY_HEX)).headers, [])  # profile 0: none

    def test_bad_keys(self):
        for kw in (
            {"authorization_key_format": "hex", "authorization_key": "abc"},
            {"authorization_key_format": "hex", "authorization_key": "zz" * 16},
            {"authorization_key_format": "base64", "authorization_key": SECRET},
            {"authorization_key": ""},
            {},
        ):
            with self.assertRaises(ConfigError):
                Settings(cfg(security_profile=1, **kw))
        with self.assertRaises(ConfigError):
            Settings(cfg(security_profile=1, authorization_key=SECRET, identity="CP:1"))


class ProfileTest(unittest.TestCase):
    def test_never_less_security_than_configured(self):
        with self.assertRaises(ConfigError):
            Settings(cfg(url="ws://h/", security_profile=2, authorization_key=SECRET))
        with self.assertRaises(ConfigError):
            Settings(cfg(url="ws://h/", security_profile=3))
        with self.assertRaises(ConfigError):
            Settings(cfg(url="wss://h/", security_profile=1, authorization_key=SECRET))
        with self.assertRaises(ConfigError):
            Settings(cfg(url="wss://h/", security_profile=0))
        for p in (-1, 4, "2", True):
            with self.assertRaises(ConfigError):
                Settings(cfg(security_profile=p))

    def test_profile_3_needs_a_client_certificate(self):
        with self.assertRaises(ConfigError):
            Settings(cfg(url="wss://h/", security_profile=3, ca_file="ca.pem"))

    def test_ocpp2_identity_rules(self):
        with self.assertRaises(ConfigError):
            Settings(cfg(subprotocols=["ocpp2.0.1"], identity="x" * 49))
        with self.assertRaises(ConfigError):
            Settings(cfg(subprotocols=["ocpp2.1"], identity="a:b"))
        Settings(cfg(subprotocols=["ocpp1.6"], identity="x" * 49))

    def test_timings_and_defaults(self):
        s = Settings(cfg(ping_interval_s=0, pong_timeout_s=2.5))
        self.assertEqual((s.ping_interval_ms, s.pong_timeout_ms), (0, 2500))
        self.assertEqual(s.subprotocols, ("ocpp1.6",))
        self.assertEqual((s.backoff_min_ms, s.backoff_base_ms, s.backoff_max_ms), (1000, 10000, 300000))
        for kw in ({"ping_interval_s": -1}, {"pong_timeout_s": 0}, {"connect_timeout_s": "5"}, {"max_message": 10},
                   {"backoff_min_s": 10, "backoff_max_s": 5}, {"subprotocols": []}, {"subprotocols": ["a b"]},
                   {"url": None}, {"identity": ""}):
            with self.assertRaises(ConfigError):
                Settings(cfg(**kw))


class SecretTest(unittest.TestCase):
    def test_key_never_in_error_text_or_repr(self):
        forms = (SECRET, binascii.b2a_base64(SECRET.encode()).strip().decode(), KEY_HEX)
        bad_configs = (
            cfg(security_profile=1, authorization_key=SECRET, identity="a:b"),
            cfg(security_profile=1, authorization_key=SECRET, authorization_key_format="hex"),
            cfg(security_profile=1, authorization_key=KEY_HEX, authorization_key_format="nope"),
            cfg(url="wss://h/", security_profile=1, authorization_key=SECRET),
            cfg(url="ws://h/", security_profile=2, authorization_key=SECRET),
            cfg(url="wss://h/", security_profile=2, authorization_key=SECRET, ca_file="/nonexistent/ca.pem"),
            cfg(url="ws://" + SECRET + "@h/", security_profile=1, authorization_key=SECRET),
        )
        for c in bad_configs:
            try:
                Settings(c)
            except ConfigError as e:
                text = str(e) + repr(e)
                for f in forms:
                    self.assertNotIn(f, text)
            else:
                self.fail("accepted")
        s = Settings(cfg(security_profile=1, authorization_key=SECRET))
        for f in forms:
            self.assertNotIn(f, repr(s))
