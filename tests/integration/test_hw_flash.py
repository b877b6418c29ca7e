"""Flashing without a device: the compiled tree loads under the real
MicroPython binary, package.json installs with mpremote's mip code, and the
generated packaging files are fresh."""

import json
import os
import shutil
import subprocess

import pytest

from host_tools import flash
from tests.support import micropython_binary

MP = micropython_binary()

SMOKE = r"""
import sys
sys.path[:] = [".", ".frozen"]
import os
for d in ("firmware", "firmware/hw", "boards"):
    for n in os.listdir(d):
        assert not n.endswith(".py") or d + "/" + n == "firmware/_native.py", d + "/" + n  # .mpy, native code as source
import firmware.compat, firmware.hw.modbus, firmware.hw.meters, firmware.hw.relay
import firmware.hw.lock, firmware.hw.pilot, firmware.hw.rfid, firmware.hw.status, firmware.hw.sim
import boards.base, boards.esp32_devkit, boards.picow
from firmware.hw import sim
print(firmware.hw.modbus.__file__)
print(hex(firmware.hw.modbus.crc16(b"123456789")))
class Clock:
    ms = 0
    def __call__(self):
        self.ms += 1
        return self.ms
c = Clock()
b = sim.SimBench(ticks=c)
d = sim.drivers(b)
b.plug(); b.ev_request(True)
d["pilot"].set_current(10)
d["relay"].close()
while d["relay"].poll() is None:
    pass
import asyncio
asyncio.run(d["meter"].update())
print(d["meter"].value("Current.Import", 1))
"""


def run_mp(cwd, code, *args):
    return subprocess.run([MP, *args, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def tree():
    path = flash.compiled_tree()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(MP is None, reason="no micropython binary")
def test_compiled_tree_runs_under_micropython(tree):
    version = flash.runtime_mpy_version(MP)
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(tree) for f in fs]
    sources = [os.path.relpath(f, tree) for f in files if f.endswith(".py")]
    assert sources == list(flash.AS_SOURCE)  # native code goes as source
    made = [f for f in files if f.endswith(".mpy")]
    assert made and len(made) + len(sources) == len(files)
    flash.check_compatible(made, version)  # raises if mpy-cross and the binary disagree
    out = run_mp(tree, SMOKE)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0].endswith("modbus.mpy")
    assert lines[1:] == ["0x4b37", "10.0"]


def test_version_mismatch_is_refused(tmp_path):
    bad = tmp_path / "x.mpy"
    bad.write_bytes(b"M\x05\x00\x1f")
    with pytest.raises(SystemExit):
        flash.check_compatible([str(bad)], (6, 3))
    native = tmp_path / "n.mpy"
    native.write_bytes(b"M\x06\x1a\x1f")  # arch 6 (xtensawin), sub-version 2
    with pytest.raises(SystemExit):
        flash.check_compatible([str(native)], (6, 3))
    ok = tmp_path / "ok.mpy"
    ok.write_bytes(b"M\x06\x00\x1f")  # bytecode: the sub-version does not matter
    flash.check_compatible([str(ok)], (6, 3))


def test_packaging_files_are_fresh():
    flash.main(["package-json", "--check"])
    flash.main(["manifest", "--check"])


def test_device_set_leaves_the_simulator_out():
    files = flash.device_files("picow")
    assert "firmware/hw/sim.py" not in files
    assert "boards/picow.py" in files and "boards/esp32_devkit.py" not in files
    assert "boards/host.py" not in files and "boards/rpi.py" not in files


def test_manifest_names_real_files():
    calls = []
    env = {
        "metadata": lambda **kw: calls.append(("metadata", kw)),
        "include": lambda p: calls.append(("include", p)),
        "package": lambda name, files=(), opt=None: calls.append(("package", name, files, opt)),
    }
    exec(open(os.path.join(flash.ROOT, "manifest.py")).read(), env)
    packages = [c for c in calls if c[0] == "package"]
    assert [p[1] for p in packages] == ["firmware", "boards"]
    for _, name, files, opt in packages:
        assert opt == 3  # asserts stripped; validation never uses assert
        for f in files:
            assert os.path.exists(os.path.join(flash.ROOT, name, f)), f


class FakeTransport:
    """Enough of mpremote's transport for mip: a directory as the board."""

    def __init__(self, root):
        self.root = root

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def fs_exists(self, path):
        return os.path.exists(self._p(path))

    def fs_mkdir(self, path):
        os.mkdir(self._p(path))

    def fs_writefile(self, path, data, progress_callback=None):
        with open(self._p(path), "wb") as f:
            f.write(data)

    def fs_hashfile(self, path, algo):
        raise FileNotFoundError(path)


@pytest.mark.skipif(MP is None, reason="no micropython binary")
def test_mip_install_from_package_json(tmp_path):
    from mpremote import mip

    board = tmp_path / "board"
    board.mkdir()
    (board / "lib").mkdir()
    mip._install_json(FakeTransport(str(board)), os.path.join(flash.ROOT, "package.json"), None, "lib", None, False)
    installed = sorted(
        os.path.relpath(os.path.join(dp, f), board / "lib") for dp, _, fs in os.walk(board / "lib") for f in fs
    )
    assert installed == sorted(flash.device_files())
    code = (
        "import sys; sys.path[:] = ['lib', '.frozen']\n"
        "import firmware.hw.modbus, firmware.hw.meters, firmware.hw.rfid, boards.esp32_devkit\n"
        "print(firmware.hw.meters.SDM630['name'])\n"
    )
    out = run_mp(board, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SDM630"


def test_flash_dry_run(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"csms_url": "ws://csms:9000/ocpp", "hw": {"meter": "SDM120"}}))
    out = tmp_path / "out"
    cmd = flash.flash("/dev/ttyUSB7", "picow", str(cfg), out_dir=str(out), dry_run=True)
    assert cmd[1:3] == ["connect", "/dev/ttyUSB7"]
    assert cmd[-1] == "reset"
    assert cmd.count("+") == 4
    written = json.loads((out / "config.json").read_text())
    assert written == {"csms_url": "ws://csms:9000/ocpp", "hw": {"meter": "SDM120"}, "board": "picow"}
    assert (out / "boards" / "picow.mpy").exists()
    assert not (out / "firmware" / "hw" / "sim.mpy").exists()
    compile(open(out / "main.py").read(), "main.py", "exec")
    with pytest.raises(SystemExit):
        flash.flash("/dev/ttyUSB7", "host", None, out_dir=str(out), dry_run=True)
