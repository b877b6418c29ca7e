# Byte loops compiled to machine code by MicroPython's viper emitter: no heap
# allocation, no memoryview slices. Only firmware/compat.py imports this module
# (on MicroPython, when the port has a native emitter); firmware/bufops.py holds
# the same functions in plain Python. Keep the two in step: tests compare them.
import micropython


@micropython.viper
def copy_into(dst: ptr8, doff: int, src: ptr8, soff: int, n: int):
    i = 0
    while i < n:
        dst[doff + i] = src[soff + i]
        i += 1


@micropython.viper
def mask_into(dst: ptr8, doff: int, src: ptr8, soff: int, n: int):
    # The 4-byte masking key sits in dst just before doff (RFC 6455 §5.3).
    k = doff - 4
    i = 0
    while i < n:
        dst[doff + i] = src[soff + i] ^ dst[k + (i & 3)]
        i += 1


@micropython.viper
def utf8_valid(buf: ptr8, start: int, n: int) -> int:
    # Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
    # U+10FFFF. MicroPython's own decoder accepts all three.
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
