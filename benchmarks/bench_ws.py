# WebSocket framing (firmware/net/ws.py): frames encoded and decoded per
# second against wsproto's framing code (FrameProtocol, and its Connection
# for reference) in the same run on CPython; then, on the MicroPython unix
# port, frames per second and heap bytes allocated per 1 KiB frame, against
# the size of the payload string itself measured in the same run.
import os
import subprocess
import time

from firmware.net.ws import EV_TEXT, WsConnection
from tests.fuzz_ws import frame
from tests.support import micropython_binary, repo_root

SIZES = (128, 1024, 16384)
ROUNDS = 5


def _best_rate(fn, n):
    best = 0.0
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
    return best


def ours_encode(text):
    ws = WsConnection(max_message=1 << 20)

    def run(n):
        send = ws.send_text
        for _ in range(n):
            send(text)

    return run


def ours_decode(data, count):
    ws = WsConnection(max_message=1 << 20)

    def run(n):
        feed = ws.feed
        nxt = ws.next_event
        for _ in range(n // count):
            feed(data)
            while nxt() == EV_TEXT:
                pass

    return run


def wsproto_encode(text):
    from wsproto.frame_protocol import FrameProtocol

    fp = FrameProtocol(client=True, extensions=[])

    def run(n):
        send = fp.send_data
        for _ in range(n):
            send(text, True)

    return run


def wsproto_decode(data, count, connection=False):
    """wsproto's FrameProtocol (framing only), or its Connection (events)."""
    if connection:
        from wsproto import ConnectionType
        from wsproto.connection import Connection

        conn = Connection(ConnectionType.CLIENT)
        feed, drain = conn.receive_data, conn.events
    else:
        from wsproto.frame_protocol import FrameProtocol

        fp = FrameProtocol(client=True, extensions=[])
        feed, drain = fp.receive_bytes, fp.received_frames

    def run(n):
        for _ in range(n // count):
            feed(data)
            for _item in drain():
                pass

    return run


def cpython_figures():
    print("CPython: frames per second (best of %d), ratio = ours / baseline" % ROUNDS)
    print("%-8s %-7s %14s %14s %8s %20s" % ("payload", "dir", "ours", "wsproto FP", "ratio", "wsproto Connection"))
    for size in SIZES:
        text = '[2,"1","DataTransfer",{"data":"' + "x" * (size - 36) + '"}]'
        count = max(1, 65536 // (size + 10))
        data = b"".join(frame(1, text.encode()) for _ in range(count))
        n = max(count, 200000 // max(1, size // 128))
        n -= n % count
        enc_ours = _best_rate(ours_encode(text), n)
        enc_wp = _best_rate(wsproto_encode(text), n)
        dec_ours = _best_rate(ours_decode(data, count), n)
        dec_wp = _best_rate(wsproto_decode(data, count), n)
        dec_conn = _best_rate(wsproto_decode(data, count, connection=True), n)
        print("%-8d %-7s %14.0f %14.0f %7.2fx" % (size, "encode", enc_ours, enc_wp, enc_ours / enc_wp))
        print("%-8d %-7s %14.0f %14.0f %7.2fx %20.0f" % (size, "decode", dec_ours, dec_wp, dec_ours / dec_wp, dec_conn))


def micropython_figures():
    mpy = micropython_binary()
    if not mpy:
        print("MicroPython: binary not found, skipped")
        return
    script = os.path.join("benchmarks", "mp_ws_alloc.py")
    out = subprocess.run([mpy, "-X", "heapsize=4M", script], cwd=repo_root(), capture_output=True, text=True, timeout=300)
    print(out.stdout.rstrip())
    if out.returncode:
        print(out.stderr)


def main():
    cpython_figures()
    print()
    micropython_figures()


if __name__ == "__main__":
    main()
