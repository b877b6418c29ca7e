# Every difference between MicroPython and CPython lives here, so that the
# rest of firmware/ reads the same on both runtimes. `sys.implementation` and
# `except ImportError` appear nowhere else under firmware/.
import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(value):
        return value


import json

if IS_MICROPYTHON:
    import gc
    import time
    import os

    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add

    def json_dumps(obj):
        return json.dumps(obj, separators=(",", ":"))

    def print_exception(exc, file=None):
        sys.print_exception(exc, file or sys.stdout)

    def urandom(n):
        return os.urandom(n)

    def fsync(f):
        # The unix port's flush() calls fsync(2); on bare-metal ports flush()
        # writes the littlefs/FAT cache to flash, which is all they offer.
        f.flush()

    def flush(f):
        # Hand written data to the OS without forcing it to the medium. The
        # unix port writes unbuffered and its flush() is an fsync, and on
        # bare-metal ports the next fsync() carries the data: nothing to do.
        pass

    def fsync_dir(path):
        # No directory handles: littlefs commits a rename atomically in its
        # metadata log; FAT offers nothing better.
        pass

    mem_alloc = gc.mem_alloc
    mem_free = gc.mem_free
    collect = gc.collect
    wall_time = time.time

    def wall_offset_s():
        # Bare-metal ports count from 2000-01-01 when built that way; the unix
        # port and current ports use 1970. gmtime(0) tells which.
        return 946684800 if time.gmtime(0)[0] == 2000 else 0

else:
    import os
    import time
    import traceback
    import gc

    _START = time.monotonic()

    def ticks_ms():
        return int((time.monotonic() - _START) * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

    _dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    from json.encoder import c_make_encoder, encode_basestring

    def _no_default(o):
        raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

    # What JSONEncoder.encode builds on every call, built once (None without
    # the C accelerator).
    _c_encode = None if c_make_encoder is None else c_make_encoder(None, _no_default, encode_basestring, None, ":", ",", False, False, True)

    def json_dumps(obj):
        if _c_encode is not None and type(obj) is not str:
            return "".join(_c_encode(obj, 0))
        return _dumps(obj)

    def print_exception(exc, file=None):
        # sys.stdout looked up at call time: it may have been replaced since.
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=file or sys.stdout)

    def urandom(n):
        return os.urandom(n)

    def fsync(f):
        f.flush()
        os.fsync(f.fileno())

    def flush(f):
        f.flush()

    def fsync_dir(path):
        # Makes a rename or a new file in the directory durable (POSIX).
        fd = os.open(path or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def mem_alloc():
        return 0

    def mem_free():
        return 0

    collect = gc.collect
    wall_time = time.time

    def wall_offset_s():
        return 0


json_loads = json.loads

if not IS_MICROPYTHON:
    from json.scanner import make_scanner as _make_scanner

    _scan = _make_scanner(json.JSONDecoder())

    def json_loads(text):
        # The C scanner straight away (json.loads goes through two Python
        # layers first); anything unusual (whitespace around the value, bad
        # JSON) takes json.loads, which answers or raises as always.
        try:
            obj, end = _scan(text, 0)
        except StopIteration:
            return json.loads(text)
        if end != len(text):
            return json.loads(text)
        return obj

_CRC_TABLE = None


def crc32_py(data, crc=0):
    # zlib's CRC-32 (reflected 0xEDB88320), for ports built without
    # MICROPY_PY_BINASCII_CRC32; the table is built on first use.
    global _CRC_TABLE
    if _CRC_TABLE is None:
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            table.append(c)
        _CRC_TABLE = table
    t = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    from binascii import crc32
except ImportError:
    crc32 = crc32_py

# Hashed sets beat a scan of a small tuple on CPython; on MicroPython a tuple
# is smaller and about as fast, so tables keep tuples there.
FAST_SETS = not IS_MICROPYTHON

# Byte loops for the WebSocket framing: copy, XOR-mask, strict UTF-8 check.
# MicroPython runs them as viper machine code where the port has a native
# emitter (no allocation), else as plain Python like CPython.
if IS_MICROPYTHON:
    try:
        from firmware._native import copy_into, mask_into, utf8_valid
    except (ImportError, SyntaxError, ValueError):
        from firmware.bufops import copy_into, mask_into, utf8_valid

    def utf8_text(mv, start, n):
        # MicroPython's str() accepts overlong forms and surrogates: check first.
        if not utf8_valid(mv, start, n):
            return None
        return str(mv[start : start + n], "utf-8")

    def wire(frame):
        # asyncio's Stream copies what it cannot send at once: a reused
        # buffer may go out as it is.
        return frame

    # A stream's write() may only buffer; drain() sends.
    SYNC_WRITE = False

    def is_tls_error(exc):
        # mbedTLS failures: a certificate refused is a ValueError carrying
        # mbedTLS's verify text; others are OSErrors with negative numbers.
        if isinstance(exc, ValueError):
            return True
        return isinstance(exc, OSError) and bool(exc.args) and type(exc.args[0]) is int and exc.args[0] < 0

else:
    from firmware.bufops import copy_into, utf8_valid  # noqa: F401
    from firmware.bufops import mask_into as _mask_int
    from firmware.bufops import mask_into_strided as _mask_strided

    def mask_into(dst, doff, src, soff, n):
        # One wide-integer XOR for small payloads, table lookups for large.
        if n < 4096:
            _mask_int(dst, doff, src, soff, n)
        else:
            _mask_strided(dst, doff, src, soff, n)

    def utf8_text(mv, start, n):
        try:
            return str(mv[start : start + n], "utf-8")
        except UnicodeError:
            return None

    def wire(frame):
        # CPython's transports may keep a reference to what they are given
        # instead of copying it: hand them bytes of their own.
        return bytes(frame)

    # StreamWriter.write() hands the data to the socket (or the transport's
    # buffer) at once; drain() only waits for a full buffer to empty.
    SYNC_WRITE = True

    def is_tls_error(exc):
        import ssl

        return isinstance(exc, ssl.SSLError)


class Monotonic:
    """A millisecond clock that never wraps, built from the wrapping ticks.

    MicroPython's ticks wrap after 2**30 ms (12.4 days); a charger runs for
    months. Call now() at least once a week (the agent's timers do).
    """

    def __init__(self, ticks=ticks_ms):
        self._ticks = ticks
        self._last = ticks()
        self._ms = 0
        if not IS_MICROPYTHON and ticks is ticks_ms:
            # CPython's clock does not wrap: read it directly (the agent
            # reads the time after every event).
            self.now = _ms_since(time.monotonic())

    def now(self):
        t = self._ticks()
        self._ms += ticks_diff(t, self._last)
        self._last = t
        return self._ms


def _ms_since(t0):
    mono = time.monotonic

    def now():
        return int((mono() - t0) * 1000)

    return now


def is_int(value):
    # bool is a subclass of int on CPython but not on MicroPython; JSON and the
    # OCPP schemas keep them apart, so we do too.
    return type(value) is int


def is_number(value):
    t = type(value)
    return t is int or t is float


async def wait_event(event, ms):
    """Wait for an asyncio.Event at most ms; True if it was set."""
    import asyncio

    if event.is_set():
        return True
    # CPython 3.11+ has asyncio.timeout: the wait runs in the caller's task,
    # where wait_for would start a task per wait (the agent's timer loop
    # waits after every event; in a fleet of thousands that shows).
    timeout = getattr(asyncio, "timeout", None)
    try:
        if timeout is None:
            await asyncio.wait_for(event.wait(), ms / 1000)
        else:
            async with timeout(ms / 1000):
                await event.wait()
    except asyncio.TimeoutError:
        return False
    return True


async def stdin_reader():
    """An asyncio stream reader on standard input (the bench console on a
    device's USB/UART REPL line)."""
    import asyncio

    if IS_MICROPYTHON:
        return asyncio.StreamReader(sys.stdin)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def der_blocks(data):
    """The DER bodies of the PEM blocks in data (bytes); data itself if it
    holds no PEM (already DER)."""
    import binascii

    if b"-----BEGIN" not in data:
        return [data]
    out = []
    body = None
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----BEGIN"):
            body = []
        elif line.startswith(b"-----END"):
            if body is not None:
                out.append(binascii.a2b_base64(b"".join(body)))
            body = None
        elif body is not None and line and b":" not in line:
            body.append(line)
    return out


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def tls_client_context(ca_file=None, ca_data=None, cert_file=None, key_file=None):
    """A TLS client context that verifies the server: CERT_REQUIRED and the
    host name (given at connect time) checked, on both runtimes.

    MicroPython's context verifies nothing unless told, has no system CA
    store (a CA is required there) and, on some ports, reads DER only: PEM
    files are converted here. CPython uses the system store when no CA is
    given. A client certificate and key (files) make it mutual TLS.
    """
    import ssl

    if IS_MICROPYTHON:
        if not (ca_file or ca_data):
            raise ValueError("a CA certificate is required for TLS on MicroPython")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        data = _read(ca_file) if ca_file else ca_data
        if type(data) is str:
            data = data.encode()
        for der in der_blocks(data):
            ctx.load_verify_locations(cadata=der)
        if cert_file:
            ctx.load_cert_chain(der_blocks(_read(cert_file))[0], der_blocks(_read(key_file))[0])
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if ca_data:
        ctx.load_verify_locations(cadata=ca_data.decode() if ca_data[:1] == b"-" else ca_data)
    if not (ca_file or ca_data):
        ctx.load_default_certs()
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
