# Run by benchmarks/bench_ws.py under the MicroPython unix port (cwd = the
# repository root): frames per second, and heap bytes allocated per 1 KiB
# frame (gc.mem_alloc before and after many frames), next to the bytes the
# payload string alone takes, measured the same way in the same run. The
# collector is off while a count runs (and the run is short enough to fit
# the heap): an automatic collection would otherwise free the frames already
# counted and make every figure too small.
import sys

sys.path.insert(0, ".")

import gc
import time

from firmware.net.ws import WsConnection

FRAMES = 2000  # frames per second over this many
COUNTED = 200  # frames per allocation count (about 220 KiB with the collector off)


def server_frame(payload):
    n = len(payload)
    head = bytes((0x81, 126, n >> 8, n & 0xFF)) if n >= 126 else bytes((0x81, n))
    return head + payload


def per_frame(fn, n):
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn(n)
        return (gc.mem_alloc() - before) / n
    finally:
        gc.enable()


def main():
    text = "x" * 1024
    incoming = server_frame(text.encode())
    body = memoryview(incoming)[4:]
    ws = WsConnection(max_message=4096, bufsize=2048)
    # warm up: buffers at size, masking keys fetched
    for _ in range(32):
        ws.send_text(text)
        ws.feed(incoming)
        ws.next_event()

    def payload_only(n):
        for _ in range(n):
            str(body, "utf-8")

    def decode(n):
        feed = ws.feed
        nxt = ws.next_event
        for _ in range(n):
            feed(incoming)
            nxt()
            nxt()

    def encode(n):
        send = ws.send_text
        for _ in range(n):
            send(text)

    base = per_frame(payload_only, COUNTED)
    dec = per_frame(decode, COUNTED)
    enc = per_frame(encode, COUNTED)

    def rate(fn):
        t0 = time.ticks_us()
        fn(FRAMES)
        return FRAMES * 1000000 / time.ticks_diff(time.ticks_us(), t0)

    print("MicroPython unix port, 1 KiB text frames:")
    print("  decode: %8.0f frames/s, %6.1f bytes allocated per frame" % (rate(decode), dec))
    print("  encode: %8.0f frames/s, %6.1f bytes allocated per frame" % (rate(encode), enc))
    print("  baseline: the payload str alone takes %.1f bytes" % base)
    print("  beyond the payload: decode %+.1f bytes per frame (ratio %.3f), encode %.1f bytes (no payload copy)" % (dec - base, dec / base, enc))
    print("  (beyond the payload, decode: the memoryview of the message that str() reads; encode: the bytes object of")
    print("   str.encode, which shares the text's data, and the memoryview of the frame handed to the stream)")


main()
