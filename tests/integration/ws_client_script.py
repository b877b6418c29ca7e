# A charge-point transport driven from the command line, for integration
# tests on both runtimes: `micropython` or `python -u`, cwd = repository root.
# argv[1]: path of a JSON file {"config": {...transport config...},
#          "echo": bool, "send_on_open": text, "closes": n, "fails": n,
#          "stop_after": n}. (A file, not the JSON itself: the MicroPython
#          unix port of the pinned release aborts on an argument of 256
#          characters or more.)
# Prints one JSON object per line: open, msg, close, fail, exit.
import sys

sys.path.insert(0, ".")

import asyncio
import json

from firmware.net.manager import Transport


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def main():
    with open(sys.argv[1]) as f:
        opts = json.loads(f.read())
    state = {"closes": 0, "fails": 0, "msgs": 0}
    done = asyncio.Event()
    holder = []

    async def on_open(sub):
        out({"ev": "open", "sub": sub})
        if opts.get("send_on_open"):
            ok = await holder[0].send(opts["send_on_open"])
            out({"ev": "sent", "ok": ok})

    async def on_message(text):
        out({"ev": "msg", "text": text})
        state["msgs"] += 1
        if opts.get("echo"):
            await holder[0].send("echo:" + text)
        if opts.get("stop_after") and state["msgs"] >= opts["stop_after"]:
            done.set()

    def on_close(code, reason):
        out({"ev": "close", "code": code, "reason": reason})
        state["closes"] += 1
        if state["closes"] >= opts.get("closes", 1):
            done.set()

    def on_fail(kind, detail):
        out({"ev": "fail", "kind": kind, "detail": detail})
        state["fails"] += 1
        if state["fails"] >= opts.get("fails", 1):
            done.set()

    async def run():
        t = Transport(opts["config"], on_open=on_open, on_message=on_message, on_close=on_close, on_fail=on_fail)
        holder.append(t)
        task = asyncio.create_task(t.run())
        await done.wait()
        await t.stop()
        await task
        out({"ev": "exit"})

    asyncio.run(run())


main()
