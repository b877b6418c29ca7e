"""Read a journal copied off a charger.

    python -m host_tools.journal dump PATH [--json]
    python -m host_tools.journal parked PATH

`dump` prints every record, one per line, with its byte offset, and flags
every torn or corrupt region; `--json` prints one JSON object per line
instead. `parked` prints the messages given up after their last attempt as
JSON lines (for billing), with the transactionId they would have carried.
Both only read the file. Exit status: 0 clean, 1 damage found, 2 bad usage.
Bodies are decoded with the cbor2 package, independently of the firmware's
own decoder; the framing (SYNC, length, CRC-32) is read by the firmware's
Scanner, so the dump shows exactly what the charger's replay sees.
"""
import datetime
import json
import os
import sys

import cbor2

from firmware.store import journal as J
from firmware.store import records as R
from firmware.store.state import State

FIELDS = {
    R.K_QUEUED: ("seq", "action", "payload", "local_tx", "attempts"),
    R.K_DELIVERED: ("seq",),
    R.K_TX_OPEN: ("local_tx", "connector", "id_tag", "meter_start", "start_time"),
    R.K_TX_ID: ("local_tx", "transaction_id"),
    R.K_METER: ("local_tx", "wh", "time"),
    R.K_TX_CLOSE: ("local_tx",),
    R.K_AVAIL: ("connector", "operative"),
    R.K_CONFIG: ("key", "value"),
    R.K_PARKED: ("seq",),
    R.K_SENT: ("seq",),
    R.K_ATTEMPT: ("seq", "attempts", "maybe_delivered"),
    R.K_DROPPED: ("seq",),
    R.K_COUNTERS: ("next_seq", "next_local_tx"),
    R.K_RELEASED: ("seq",),
    R.K_AUTH: ("id_tag", "entry"),
}
TIME_FIELDS = ("start_time", "time")


def kind_name(kind):
    if isinstance(kind, int) and 0 <= kind < len(R.KIND_NAMES):
        return R.KIND_NAMES[kind]
    return "kind %r" % (kind,)


def describe(rec):
    """{field: value} for a record, payloads decoded and names restored."""
    names = FIELDS.get(rec[0], ())
    out = {}
    for i, value in enumerate(rec[1:]):
        name = names[i] if i < len(names) else "field%d" % (i + 1)
        if rec[0] == R.K_QUEUED and name == "action":
            value = R.action_name(value)
        elif rec[0] == R.K_QUEUED and name == "payload" and isinstance(value, bytes):
            value = R.unintern(cbor2.loads(value))
        out[name] = value
    return out


def _utc(value):
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _text(fields):
    parts = []
    for name, value in fields.items():
        if name == "payload":
            parts.append("payload=" + json.dumps(value, separators=(",", ":"), ensure_ascii=False))
            continue
        parts.append("%s=%r" % (name, value))
        if name in TIME_FIELDS and _utc(value):
            parts[-1] += " (%s)" % _utc(value)
    return " ".join(parts)


def items(path):
    """Yields ("rec", offset, length, record) and ("bad", offset, length, code, text)."""
    with open(path, "rb") as f:
        sc = J.Scanner(f, os.path.getsize(path))
        yield from sc.records(cbor2.loads)
        if sc.free:
            yield ("free", sc.end, sc.free)


def dump(path, as_json, out):
    records = problems = 0
    if not as_json:
        out.write("journal %s: %d bytes\n" % (path, os.path.getsize(path)))
    for it in items(path):
        if it[0] == "free":
            if not as_json:
                out.write("@%-8d %5d  (free space: zeros)\n" % (it[1], it[2]))
            continue
        if it[0] == "bad":
            problems += 1
            if as_json:
                out.write(json.dumps({"offset": it[1], "length": it[2], "problem": it[4]}) + "\n")
            else:
                out.write("@%-8d %5d  !! %s\n" % (it[1], it[2], it[4]))
            continue
        records += 1
        rec = it[3]
        try:
            fields = describe(rec)
        except Exception as e:
            problems += 1
            fields = {"undecodable": repr(rec), "error": str(e)}
        if as_json:
            row = {"offset": it[1], "length": it[2], "kind": kind_name(rec[0])}
            row.update(fields)
            out.write(json.dumps(row, default=lambda b: b.hex(), ensure_ascii=False) + "\n")
        else:
            out.write("@%-8d %5d  %-14s %s\n" % (it[1], it[2], kind_name(rec[0]), _text(fields)))
    if not as_json:
        out.write("%d records, %d problems\n" % (records, problems))
    return 1 if problems else 0


def parked(path, out):
    st = State()
    problems = 0
    for it in items(path):
        if it[0] == "free":
            continue
        if it[0] == "bad":
            problems += 1
            continue
        try:
            st.apply(it[3])
        except Exception:
            problems += 1
    for seq in st.parked_seqs():
        action, data, local, attempts, _ = st.msgs[seq]
        payload = R.unintern(cbor2.loads(data))
        if local is not None and action in (R.STOP, R.METER_VALUES):
            tid = st.tx_ids.get(local)
            payload["transactionId"] = -1 if tid is None else tid
        row = {"seq": seq, "action": action, "local_tx": local, "attempts": attempts, "payload": payload}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if problems:
        sys.stderr.write("%d damaged records skipped (see: dump)\n" % problems)
    return 1 if problems else 0


def main(argv):
    if len(argv) < 2 or argv[0] not in ("dump", "parked"):
        sys.stderr.write(__doc__)
        return 2
    path = argv[1]
    if not os.path.isfile(path):
        sys.stderr.write("no such file: %s\n" % path)
        return 2
    if argv[0] == "dump":
        return dump(path, "--json" in argv[2:], sys.stdout)
    return parked(path, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
