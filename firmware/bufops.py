# Buffer helpers in plain Python: what CPython runs, and what MicroPython runs
# when its port has no native emitter (firmware/_native.py holds viper
# versions of the same functions). firmware/compat.py chooses; everything
# else imports from compat.


def copy_into(dst, doff, src, soff, n):
    dst[doff : doff + n] = memoryview(src)[soff : soff + n]


def mask_into(dst, doff, src, soff, n):
    # XOR n bytes of src with the 4-byte key found in dst[doff-4:doff] and
    # write them at dst[doff:]. One wide integer XOR instead of a byte loop.
    if n <= 0:
        return
    reps = (n + 3) >> 2
    key = int.from_bytes(bytes(dst[doff - 4 : doff]) * reps, "little")
    data = int.from_bytes(memoryview(src)[soff : soff + n], "little")
    dst[doff : doff + n] = (data ^ key).to_bytes(reps << 2, "little")[:n]


_IDENTITY = None
_ONES = None


def mask_into_strided(dst, doff, src, soff, n):
    # The same as mask_into, faster for large payloads on CPython: copy, then
    # translate every fourth byte through a 256-byte XOR table per key byte.
    # Needs extended slice assignment, which MicroPython lacks.
    global _IDENTITY, _ONES
    if _IDENTITY is None:
        _IDENTITY = int.from_bytes(bytes(range(256)), "little")
        _ONES = int.from_bytes(b"\x01" * 256, "little")
    dst[doff : doff + n] = memoryview(src)[soff : soff + n]
    end = doff + n
    for i in range(4):
        table = (_IDENTITY ^ (dst[doff - 4 + i] * _ONES)).to_bytes(256, "little")
        dst[doff + i : end : 4] = dst[doff + i : end : 4].translate(table)


# RFC 3629 §4, the UTF8-2/3/4 rules: lead byte range, range of the byte
# after it, how many more continuation bytes (80-BF) follow. Written as the
# table of the RFC, apart from the viper loop, so the tests compare two forms.
_UTF8_RULES = (
    (0xC2, 0xDF, 0x80, 0xBF, 0),
    (0xE0, 0xE0, 0xA0, 0xBF, 1),
    (0xE1, 0xEC, 0x80, 0xBF, 1),
    (0xED, 0xED, 0x80, 0x9F, 1),
    (0xEE, 0xEF, 0x80, 0xBF, 1),
    (0xF0, 0xF0, 0x90, 0xBF, 2),
    (0xF1, 0xF3, 0x80, 0xBF, 2),
    (0xF4, 0xF4, 0x80, 0x8F, 2),
)


def utf8_valid(buf, start, n):
    """1 when buf[start:start+n] is strict UTF-8, else 0."""
    i = start
    end = start + n
    while i < end:
        c = buf[i]
        i += 1
        if c < 0x80:
            continue
        for lead_lo, lead_hi, lo, hi, more in _UTF8_RULES:
            if lead_lo <= c <= lead_hi:
                break
        else:
            return 0
        if i + more >= end or not lo <= buf[i] <= hi:
            return 0
        for k in range(i + 1, i + 1 + more):
            if buf[k] & 0xC0 != 0x80:
                return 0
        i += 1 + more
    return 1
