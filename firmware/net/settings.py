# Transport settings: the configuration dict checked once, turned into what
# the client needs (host, port, path, headers, TLS context, timings in ms).
#
# Security profiles (OCPP 1.6 security whitepaper §2.1; 2.0.1 Part 2 A00):
#   0  ws://,  no credentials (trusted networks and bench only)
#   1  ws://,  HTTP Basic auth with the AuthorizationKey
#   2  wss://, server certificate verified, HTTP Basic auth
#   3  wss://, server certificate verified, client certificate (mutual TLS)
# A URL whose scheme does not match the profile is refused: the agent never
# connects with less security than configured.
#
# The AuthorizationKey never appears in an exception text or a repr.
import binascii

from firmware.compat import tls_client_context

PROFILE_MAX = 3

# Key, default. Times in seconds (floats allowed), sizes in bytes.
DEFAULTS = {
    "subprotocols": ("ocpp1.6",),
    "security_profile": 0,
    "authorization_key": None,
    "authorization_key_format": "auto",
    "ca_file": None,
    "ca_data": None,
    "client_cert_file": None,
    "client_key_file": None,
    "ping_interval_s": 30,
    "pong_timeout_s": 10,
    "connect_timeout_s": 10,
    "close_timeout_s": 5,
    "backoff_min_s": 1,
    "backoff_base_s": 10,
    "backoff_max_s": 300,
    "backoff_reset_s": 60,
    "max_message": 65536,
}

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_HEX = "0123456789ABCDEF"


class ConfigError(ValueError):
    pass


def quote_identity(identity):
    """Percent-encode a charge point identity for the URL path (RFC 3986
    unreserved characters stay; OCPP-J 1.6 §3.1.1, 2.0.1 Part 4 §3.1.1)."""
    out = []
    for b in identity.encode():
        c = chr(b)
        if b < 128 and c in _UNRESERVED:
            out.append(c)
        else:
            out.append("%" + _HEX[b >> 4] + _HEX[b & 15])
    return "".join(out)


def parse_url(url):
    """(secure, host, port, path) of a ws:// or wss:// URL."""
    i = url.find("://")
    if i < 0:
        raise ConfigError("url must start with ws:// or wss://")
    scheme = url[:i].lower()
    if scheme == "ws":
        secure = False
        port = 80
    elif scheme == "wss":
        secure = True
        port = 443
    else:
        raise ConfigError("url must start with ws:// or wss://")
    rest = url[i + 3 :]
    if "#" in rest:
        raise ConfigError("url must not have a fragment (RFC 6455 §3)")
    j = rest.find("/")
    hostport = rest if j < 0 else rest[:j]
    path = "/" if j < 0 else rest[j:]
    if "@" in hostport:
        raise ConfigError("url must not carry credentials; use authorization_key")
    if hostport.startswith("["):
        k = hostport.find("]")
        if k < 0:
            raise ConfigError("url has a bad IPv6 address")
        host = hostport[1:k]
        tail = hostport[k + 1 :]
    else:
        k = hostport.find(":")
        host = hostport if k < 0 else hostport[:k]
        tail = "" if k < 0 else hostport[k:]
    if tail:
        if not tail.startswith(":"):
            raise ConfigError("url has a bad port")
        try:
            port = int(tail[1:])
        except ValueError:
            raise ConfigError("url has a bad port")
        if not 0 < port < 65536:
            raise ConfigError("url has a bad port")
    if not host:
        raise ConfigError("url has no host")
    return secure, host, port, path


def endpoint_path(path, identity):
    """The CSMS URL path with "/<identity>" appended, before any query."""
    q = path.find("?")
    query = "" if q < 0 else path[q:]
    base = path if q < 0 else path[:q]
    if not base.endswith("/"):
        base += "/"
    return base + quote_identity(identity) + query


def _is_hex(s):
    for c in s:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


def basic_credentials(identity, key, fmt, subprotocols):
    """The value of the Authorization header for HTTP Basic auth.

    fmt "hex": the key is the hexadecimal form of the password bytes, which
    go on the wire (OCPP-J 1.6 §6.2.2 example; the 1.6 AuthorizationKey).
    fmt "text": the key is sent as its UTF-8 bytes (2.0.1 BasicAuthPassword,
    Part 2 A00.FR.205). fmt "auto": "hex" when the preferred subprotocol is
    ocpp1.6 and the key is 32 to 40 hexadecimal digits, else "text".
    """
    if fmt == "auto":
        n = len(key)
        if subprotocols[0] == "ocpp1.6" and 32 <= n <= 40 and not n & 1 and _is_hex(key):
            fmt = "hex"
        else:
            fmt = "text"
    if fmt == "hex":
        if len(key) & 1 or not _is_hex(key):
            raise ConfigError("authorization_key is not an even number of hexadecimal digits")
        password = binascii.unhexlify(key)
    elif fmt == "text":
        password = key.encode()
    else:
        raise ConfigError("authorization_key_format must be auto, hex or text")
    token = binascii.b2a_base64(identity.encode() + b":" + password).strip()
    return "Basic " + token.decode()


def _seconds_ms(config, name, allow_zero):
    value = config.get(name, DEFAULTS[name])
    t = type(value)
    if t is not int and t is not float:
        raise ConfigError(name + " must be a number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(name + " must be positive")
    return int(value * 1000)


class Settings:
    def __init__(self, config):
        get = config.get
        url = get("url")
        identity = get("identity")
        if type(url) is not str or not url:
            raise ConfigError("url is required")
        if type(identity) is not str or not identity:
            raise ConfigError("identity is required")
        subs = get("subprotocols", DEFAULTS["subprotocols"])
        if type(subs) is str:
            subs = (subs,)
        subs = tuple(subs)
        if not subs:
            raise ConfigError("subprotocols must name at least one")
        for s in subs:
            if type(s) is not str or not s or " " in s or "," in s:
                raise ConfigError("subprotocols must be tokens like ocpp1.6")
        profile = get("security_profile", 0)
        if type(profile) is not int or not 0 <= profile <= PROFILE_MAX:
            raise ConfigError("security_profile must be 0, 1, 2 or 3")
        secure, host, port, path = parse_url(url)
        if secure and profile < 2:
            raise ConfigError("a wss:// url needs security_profile 2 or 3")
        if not secure and profile >= 2:
            raise ConfigError("security_profile 2 and 3 need a wss:// url; refusing to connect without TLS")
        for s in subs:
            if s.startswith("ocpp2") and (len(identity) > 48 or ":" in identity):
                # 2.0.1 Part 4 §3.1.1: at most 48 characters, no colon.
                raise ConfigError("identity must be at most 48 characters without ':' for OCPP 2.x")
        headers = []
        if profile in (1, 2):
            key = get("authorization_key")
            if type(key) is not str or not key:
                raise ConfigError("security_profile 1 and 2 need an authorization_key")
            if ":" in identity:
                raise ConfigError("identity must not contain ':' with HTTP Basic auth")
            fmt = get("authorization_key_format", "auto")
            headers.append(("Authorization", basic_credentials(identity, key, fmt, subs)))
        self.ca_file = get("ca_file")
        self.ca_data = get("ca_data")
        self.client_cert_file = get("client_cert_file")
        self.client_key_file = get("client_key_file")
        if profile == 3 and not (self.client_cert_file and self.client_key_file):
            raise ConfigError("security_profile 3 needs client_cert_file and client_key_file")
        self.profile = profile
        self.secure = secure
        self.host = host
        self.port = port
        self.path = endpoint_path(path, identity)
        h = "[" + host + "]" if ":" in host else host
        if port != (443 if secure else 80):
            h += ":" + str(port)
        self.host_header = h
        self.identity = identity
        self.subprotocols = subs
        self.headers = headers
        self.ping_interval_ms = _seconds_ms(config, "ping_interval_s", True)
        self.pong_timeout_ms = _seconds_ms(config, "pong_timeout_s", False)
        self.connect_timeout_ms = _seconds_ms(config, "connect_timeout_s", False)
        self.close_timeout_ms = _seconds_ms(config, "close_timeout_s", False)
        self.backoff_min_ms = _seconds_ms(config, "backoff_min_s", True)
        self.backoff_base_ms = _seconds_ms(config, "backoff_base_s", False)
        self.backoff_max_ms = _seconds_ms(config, "backoff_max_s", False)
        self.backoff_reset_ms = _seconds_ms(config, "backoff_reset_s", True)
        if self.backoff_max_ms < self.backoff_min_ms:
            raise ConfigError("backoff_max_s must not be below backoff_min_s")
        mm = get("max_message", DEFAULTS["max_message"])
        if type(mm) is not int or mm < 125:
            raise ConfigError("max_message must be an integer of at least 125")
        self.max_message = mm
        self._tls = None
        if secure:
            self.tls_context()  # certificate problems show at configuration time

    def tls_context(self):
        if self._tls is None and self.secure:
            try:
                self._tls = tls_client_context(self.ca_file, self.ca_data, self.client_cert_file, self.client_key_file)
            except (OSError, ValueError) as e:
                raise ConfigError("TLS set-up failed: " + str(e))
        return self._tls
