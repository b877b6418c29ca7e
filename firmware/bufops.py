# Buffer helpers in plain Python: what CPython runs, and what MicroPython runs
# when its port has no native emitter (firmware/_native.py holds the viper
# versions). firmware/compat.py chooses; everything else imports from compat.


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


def utf8_valid(buf, start, n):
    # Strict UTF-8 (RFC 3629), the same rules as _native.utf8_valid.
    i = start
    end = start + n
    while i < end:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if c < 0xC2:
            return 0
        elif c < 0xE0:
            need = 1
        elif c < 0xF0:
            need = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif c < 0xF5:
            need = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return 0
        if i + need >= end:
            return 0
        c = buf[i + 1]
        if c < lo or c > hi:
            return 0
        k = 2
        while k <= need:
            if (buf[i + k] & 0xC0) != 0x80:
                return 0
            k += 1
        i += need + 1
    return 1
