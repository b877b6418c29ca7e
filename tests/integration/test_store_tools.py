"""The journal across processes and runtimes: the dump tool, files written by
MicroPython and read by CPython (and back), and fsync(2) seen with strace."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.support import micropython_binary, repo_root

START = {"connectorId": 1, "idTag": "TAG", "meterStart": 100, "timestamp": "2024-05-01T10:00:00Z"}
STOP = {"idTag": "TAG", "meterStop": 250, "timestamp": "2024-05-01T11:00:00Z", "reason": "Local"}

# The same run, written by either runtime (cwd = repository root).
WRITER = """
import sys
sys.path.insert(0, ".")
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
s = Store(sys.argv[1])
s.load()
q = TxQueue(s, 1, 60)
local = s.open_tx(1, "TAG", 100, 1714557600)
q.enqueue("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 100,
                               "timestamp": "2024-05-01T10:00:00Z"}, local, 0)
d = q.next_due(0, True)
q.sent(d[0], 0)
q.on_result(d[0], {"transactionId": 31}, 0)
s.meter(local, 180.5, 1714558200)
seq = q.enqueue("StopTransaction", {"idTag": "TAG", "meterStop": 250, "timestamp": "2024-05-01T11:00:00Z",
                                    "reason": "Local"}, local, 0)
q.sent(seq, 0)
q.on_error(seq, 0)
s.close_tx(local)
s.set_config("HeartbeatInterval", 300)
s.set_availability(2, False)
s.close()
"""

READER = """
import sys
sys.path.insert(0, ".")
from firmware.compat import json_dumps
from firmware.store.records import unpack_payload
from firmware.store.state import Store
s = Store(sys.argv[1])
problems = s.load()
snap = s.state.snapshot()
snap["msgs"] = dict((str(k), [v[0], unpack_payload(v[1]), v[2], v[3], v[4]]) for k, v in snap["msgs"].items())
for key in ("open", "tx_ids", "availability"):
    snap[key] = dict((str(k), v) for k, v in snap[key].items())
print(json_dumps([len(problems), snap]))
"""


def run_tool(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.journal"] + list(args), cwd=repo_root(),
                          capture_output=True, text=True)


@pytest.fixture
def jpath(tmp_path):
    return str(tmp_path / "journal")


def write_session(path):
    subprocess.run([sys.executable, "-c", WRITER, path], cwd=repo_root(), check=True)


def test_dump_lists_every_record_with_its_fields(jpath):
    write_session(jpath)
    res = run_tool("dump", jpath)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("journal %s: " % jpath)
    assert lines[-1].endswith(" records, 0 problems")
    kinds = [line.split()[2] for line in lines[1:-1]]
    assert kinds[:3] == ["tx_open", "queued", "sent"]
    assert "parked" in kinds and "config" in kinds and "availability" in kinds
    queued = [line for line in lines if " queued " in line][0]
    assert "action='StartTransaction'" in queued
    assert '"measurand"' not in queued and '"idTag":"TAG"' in queued
    assert "start_time=1714557600 (2024-05-01T10:00:00Z)" in lines[1]


def test_dump_flags_a_flipped_bit_and_a_torn_tail(jpath):
    write_session(jpath)
    data = bytearray(open(jpath, "rb").read())
    offsets = [json.loads(line)["offset"] for line in run_tool("dump", jpath, "--json").stdout.splitlines()]
    data[offsets[2] + 9] ^= 0x04
    data = data[:-3]
    open(jpath, "wb").write(data)
    res = run_tool("dump", jpath, "--json")
    assert res.returncode == 1
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    problems = [r for r in rows if "problem" in r]
    assert [p["problem"].split(";")[0] for p in problems] == ["bad checksum", "torn tail"]
    assert problems[0]["offset"] == offsets[2]
    assert len([r for r in rows if "kind" in r]) == len(offsets) - 2


def test_parked_exports_given_up_messages_with_their_transaction_id(jpath):
    write_session(jpath)
    res = run_tool("parked", jpath)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows == [{"seq": 2, "action": "StopTransaction", "local_tx": 1, "attempts": 1,
                     "payload": dict(STOP, transactionId=31)}]


def test_dump_refuses_bad_usage(jpath):
    assert run_tool().returncode == 2
    assert run_tool("dump", jpath).returncode == 2  # no such file


def snapshot_by(runtime, path):
    cmd = [micropython_binary(), "-c", READER, path] if runtime == "mp" else [sys.executable, "-c", READER, path]
    out = subprocess.run(cmd, cwd=repo_root(), capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_a_journal_written_by_micropython_reads_the_same_on_both(tmp_path):
    mp_path, py_path = str(tmp_path / "mp"), str(tmp_path / "py")
    subprocess.run([micropython_binary(), "-c", WRITER, mp_path], cwd=repo_root(), check=True)
    write_session(py_path)
    # Same size; the bytes differ only where MicroPython orders a dict's keys otherwise.
    assert os.path.getsize(mp_path) == os.path.getsize(py_path)
    for runtime in ("mp", "py"):
        for path in (mp_path, py_path):
            assert snapshot_by(runtime, path) == snapshot_by("py", py_path)
    problems, snap = snapshot_by("mp", mp_path)
    assert problems == 0
    assert snap["tx_ids"] == {"1": 31} and snap["open"] == {}


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize("runtime", ["mp", "py"])
def test_append_returns_only_after_fsync(tmp_path, runtime):
    path = str(tmp_path / "journal")
    script = (
        "import sys\nsys.path.insert(0, '.')\nfrom firmware.store.journal import Journal\n"
        "j = Journal(sys.argv[1])\nfor i in range(3):\n    j.append([5, 1, i, i])\n    print('RETURNED')\n"
    )
    exe = micropython_binary() if runtime == "mp" else sys.executable
    res = subprocess.run(["strace", "-f", "-e", "trace=write,fsync,fdatasync", exe, "-c", script, path],
                         cwd=repo_root(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    calls = [line for line in res.stderr.splitlines() if line.startswith(("write(", "fsync(", "fdatasync(", "[pid"))]
    calls = [c.split("] ", 1)[-1] for c in calls]
    # Between consecutive RETURNED markers: a frame write, then an fsync of that fd.
    seq = []
    for c in calls:
        if "RETURNED" in c:
            seq.append("R")
        elif c.startswith("write(") and "\\245" in c:
            seq.append("W")
        elif c.startswith(("fsync(", "fdatasync(")):
            seq.append("S")
    text = "".join(seq)
    assert text.count("R") == 3
    for chunk in text.split("R")[:3]:
        assert chunk.endswith("WS"), text
