# A small CBOR (RFC 8949) codec for the values the journal stores.
#
# Types: None, bool, int (-2**64 .. 2**64-1), float, str, bytes, list (tuples
# encode as lists), dict with str or int keys. Anything else is refused on
# both sides with CBORError: tags (major type 6), indefinite lengths
# (additional information 31), the reserved values 28-30, "undefined" and other
# simple values. Decoding is strict: a truncated item, bytes after the item
# (loads), invalid UTF-8, a duplicate map key and more than MAX_DEPTH nested
# lists/maps are errors, so a corrupt journal record is never taken for data.
#
# Floats are written in the shortest of half/single/double that gives the
# value back exactly (RFC 8949 §4.2.2 preferred serialisation); NaN is written
# as the half 0x7e00. Ports built with single-precision floats (ESP32) read a
# double to the nearest single, as every float they hold.
import struct
from math import copysign, frexp, ldexp

from firmware.compat import const

MAX_DEPTH = const(16)

_MAX_U64 = 0xFFFFFFFFFFFFFFFF
_INF = float("inf")


class CBORError(ValueError):
    pass


def dumps(obj):
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def dump_into(out, obj):
    """Appends the encoding of obj to the bytearray out (no temporary copy)."""
    _encode(out, obj, 0)


def head(out, major, n):
    # Major type in the top three bits; the argument in the shortest width.
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(mt | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(mt | 27)
        out.extend(struct.pack(">Q", n))


def _encode(out, obj, depth):
    t = type(obj)
    # Journal records are lists of small ints, strings and bytes: those are
    # written here without a call per item (bool is not int: type() keeps
    # them apart on both runtimes).
    if t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise CBORError("nesting deeper than %d" % MAX_DEPTH)
        n = len(obj)
        if n < 24:
            out.append(0x80 | n)
        else:
            head(out, 4, n)
        depth += 1
        for item in obj:
            ti = type(item)
            if ti is int and 0 <= item <= _MAX_U64:
                if item < 24:
                    out.append(item)
                else:
                    head(out, 0, item)
            elif ti is str:
                b = item.encode()
                n = len(b)
                if n < 24:
                    out.append(0x60 | n)
                else:
                    head(out, 3, n)
                out.extend(b)
            elif ti is bytes:
                head(out, 2, len(item))
                out.extend(item)
            else:
                _encode(out, item, depth)
    elif t is int:
        if obj >= 0:
            if obj < 24:
                out.append(obj)
            elif obj > _MAX_U64:
                raise CBORError("integer out of 64-bit range")
            else:
                head(out, 0, obj)
        else:
            n = -1 - obj
            if n > _MAX_U64:
                raise CBORError("integer out of 64-bit range")
            head(out, 1, n)
    elif t is str:
        b = obj.encode()
        n = len(b)
        if n < 24:
            out.append(0x60 | n)
        else:
            head(out, 3, n)
        out.extend(b)
    elif obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif t is float:
        _encode_float(out, obj)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise CBORError("nesting deeper than %d" % MAX_DEPTH)
        head(out, 5, len(obj))
        for k in obj:
            tk = type(k)
            if tk is not str and tk is not int:
                raise CBORError("map key must be str or int")
            _encode(out, k, depth + 1)
            _encode(out, obj[k], depth + 1)
    elif t is bytes or t is bytearray or t is memoryview:
        head(out, 2, len(obj))
        out.extend(obj)
    else:
        raise CBORError("cannot encode type " + t.__name__)


def _half_bits(f):
    # The IEEE 754 binary16 bits of f if f (finite) is exact in a half, else None.
    if f == 0:
        return 0x8000 if copysign(1.0, f) < 0 else 0
    sign = 0x8000 if f < 0 else 0
    a = -f if sign else f
    m, e = frexp(a)  # a = m * 2**e with 0.5 <= m < 1
    if e > 16:
        return None
    if e >= -13:  # normal: a = (1 + frac/1024) * 2**(e-1), e-1 >= -14
        frac = m * 2048 - 1024
        if frac != int(frac):
            return None
        return sign | ((e + 14) << 10) | int(frac)
    k = ldexp(a, 24)  # subnormal: a = k * 2**-24
    if k != int(k):
        return None
    return sign | int(k)


def _encode_float(out, f):
    if f != f:
        out.extend(b"\xf9\x7e\x00")
        return
    if f == _INF or f == -_INF:
        out.extend(b"\xf9\x7c\x00" if f > 0 else b"\xf9\xfc\x00")
        return
    h = _half_bits(f)
    if h is not None:
        out.append(0xF9)
        out.extend(struct.pack(">H", h))
        return
    try:
        single = struct.pack(">f", f)
        exact = struct.unpack(">f", single)[0] == f
    except OverflowError:
        exact = False
    if exact:
        out.append(0xFA)
        out.extend(single)
    else:
        out.append(0xFB)
        out.extend(struct.pack(">d", f))


def _half_value(h):
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        v = ldexp(mant, -24)
    elif exp == 31:
        v = _INF - _INF if mant else _INF
    else:
        v = ldexp(mant + 1024, exp - 25)
    return -v if h & 0x8000 else v


class _Decoder:
    def __init__(self, buf, pos, end):
        self.buf = buf
        self.pos = pos
        self.end = end

    def _need(self, n):
        if n > self.end - self.pos:
            raise CBORError("truncated at byte %d" % self.pos)

    def _take(self, n):
        # Position of the next n bytes, which are consumed.
        p = self.pos
        if n > self.end - p:
            raise CBORError("truncated at byte %d" % p)
        self.pos = p + n
        return p

    def _arg(self, ai):
        # The argument of a head whose additional information is 24..27.
        buf = self.buf
        if ai == 24:
            return buf[self._take(1)]
        if ai == 25:
            p = self._take(2)
            return (buf[p] << 8) | buf[p + 1]
        if ai == 26:
            return struct.unpack_from(">I", buf, self._take(4))[0]
        return struct.unpack_from(">Q", buf, self._take(8))[0]

    def item(self, depth):
        buf = self.buf
        start = self.pos
        if start >= self.end:
            raise CBORError("truncated at byte %d" % start)
        ib = buf[start]
        self.pos = start + 1
        major = ib >> 5
        ai = ib & 0x1F
        if ai < 24:  # the argument is in the initial byte: the common case
            n = ai
        elif ai < 28:
            if major == 7:
                return self._simple(ai, start)
            n = self._arg(ai)
        elif ai == 31 and major == 7:
            raise CBORError("unexpected break at byte %d" % start)
        elif ai == 31 and 2 <= major <= 5:
            raise CBORError("indefinite length not supported at byte %d" % start)
        else:
            raise CBORError("reserved additional information at byte %d" % start)
        if major == 0:
            return n
        if major == 3 or major == 2:
            p = self._take(n)
            if major == 2:
                return bytes(buf[p : p + n])
            try:
                return str(buf[p : p + n], "utf-8")
            except UnicodeError:
                raise CBORError("invalid UTF-8 at byte %d" % start)
        if major == 4 or major == 5:
            if depth >= MAX_DEPTH:
                raise CBORError("nesting deeper than %d" % MAX_DEPTH)
            depth += 1
            if major == 4:
                self._need(n)  # every item takes at least one byte
                out = []
                for _ in range(n):
                    out.append(self.item(depth))
                return out
            self._need(2 * n)
            out = {}
            for _ in range(n):
                kpos = self.pos
                k = self.item(depth)
                tk = type(k)
                if tk is not str and tk is not int:
                    raise CBORError("map key must be str or int at byte %d" % kpos)
                if k in out:
                    raise CBORError("duplicate map key at byte %d" % kpos)
                out[k] = self.item(depth)
            return out
        if major == 1:
            return -1 - n
        if major == 7:
            return self._simple(ai, start)
        raise CBORError("tags not supported at byte %d" % start)

    def _simple(self, ai, start):
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai == 22:
            return None
        buf = self.buf
        if ai == 25:
            p = self._take(2)
            return _half_value((buf[p] << 8) | buf[p + 1])
        if ai == 26:
            return struct.unpack_from(">f", buf, self._take(4))[0]
        if ai == 27:
            return struct.unpack_from(">d", buf, self._take(8))[0]
        raise CBORError("unsupported simple value at byte %d" % start)


def decode_from(buf, pos=0, end=None):
    """Decodes one item of buf starting at pos; returns (value, next_pos)."""
    d = _Decoder(buf, pos, len(buf) if end is None else end)
    value = d.item(0)
    return value, d.pos


def loads(buf):
    """Decodes buf, which must hold exactly one item."""
    d = _Decoder(buf, 0, len(buf))
    value = d.item(0)
    if d.pos != d.end:
        raise CBORError("%d trailing bytes after the item" % (d.end - d.pos))
    return value
