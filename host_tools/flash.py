"""Compile the agent to .mpy, put it on a board, and keep the packaging files.

    python -m host_tools.flash compile [--board B] [--out DIR]
    python -m host_tools.flash flash --port /dev/ttyUSB0 [--board B] [--config config.json]
    python -m host_tools.flash package-json [--check]   # package.json for mip
    python -m host_tools.flash manifest [--check]       # manifest.py for freezing

`make flash PORT=...` runs `flash`: it compiles firmware/ and the board's
files with mpy-cross, checks that the board runs the same .mpy version,
removes the old tree, copies the new one with mpremote, writes config.json
(the given file with "board" set) and a small main.py, and resets the board.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSION = "0.1.0"
DEVICE_BOARDS = ("esp32_devkit", "picow")
# Under firmware/ but never on a device: the simulated parts.
HOST_ONLY = ("firmware/hw/sim.py", "firmware/simhw.py")
# Viper/native code is compiled by the device for its own architecture:
# these go over as source (mpy-cross would need the port's -march).
AS_SOURCE = ("firmware/_native.py",)

MAIN_PY = """\
# Written by host_tools/flash.py: start the agent (it reads config.json and
# builds the drivers with boards.<config["board"]>.build(config)).
try:
    from firmware.agent import main
except ImportError as e:
    print("firmware.agent is not installed:", e)
else:
    main()
"""


def _bin(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


def firmware_files(include_host_only=False):
    """Repository-relative paths of firmware/**.py, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "firmware")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
                if include_host_only or rel not in HOST_ONLY:
                    out.append(rel)
    return sorted(out)


def board_files(boards=DEVICE_BOARDS):
    return ["boards/__init__.py", "boards/base.py"] + ["boards/%s.py" % b for b in boards]


def device_files(board=None):
    """What goes on a device: the firmware and one board (all device boards
    when board is None, as in package.json and manifest.py)."""
    boards = DEVICE_BOARDS if board is None else (board,)
    return firmware_files() + board_files(boards)


# -- .mpy ----------------------------------------------------------------------


def mpy_cross_version():
    out = subprocess.run([_bin("mpy-cross"), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def compile_files(files, out_dir, opt=None):
    """mpy-cross each repository-relative .py into out_dir (same layout, .mpy)."""
    cross = _bin("mpy-cross")
    if cross is None:
        raise SystemExit("mpy-cross not found (run make setup)")
    made = []
    for rel in files:
        if rel in AS_SOURCE:
            dst = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(ROOT, rel), dst)
            made.append(dst)
            continue
        dst = os.path.join(out_dir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        cmd = [cross, "-o", dst, "-s", rel]
        if opt is not None:
            cmd.append("-O%d" % opt)
        cmd.append(os.path.join(ROOT, rel))
        subprocess.run(cmd, check=True)
        made.append(dst)
    return made


def mpy_file_version(path):
    """(version, sub-version, arch) from a .mpy header: b"M", version, flags
    (arch << 2 | sub-version). The sub-version only matters for native code
    (arch != 0); bytecode loads wherever the version matches."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4 or head[0:1] != b"M":
        raise ValueError("not a .mpy file: %s" % path)
    return head[1], head[2] & 3, head[2] >> 2


def runtime_mpy_version(binary=None, port=None):
    """(version, sub-version) a MicroPython runtime loads: the unix binary,
    or a board on `port` through mpremote."""
    code = "import sys;print(getattr(sys.implementation,'_mpy',0))"
    if port is not None:
        cmd = [_bin("mpremote"), "connect", port, "exec", code]
    else:
        cmd = [binary or _bin("micropython"), "-c", code]
    v = int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    return v & 0xFF, (v >> 8) & 3


def check_compatible(mpy_paths, runtime_version):
    for p in mpy_paths:
        version, sub, arch = mpy_file_version(p)
        if version != runtime_version[0] or (arch and sub != runtime_version[1]):
            raise SystemExit(
                "%s is .mpy v%d.%d but the runtime loads v%d.%d: use the mpy-cross of that MicroPython"
                % (p, version, sub, runtime_version[0], runtime_version[1])
            )


# -- flashing -------------------------------------------------------------------

_RM_TREE = """
import os
def rm(p):
    try:
        for e in os.ilistdir(p):
            q = p + '/' + e[0]
            if e[1] == 0x4000:
                rm(q)
            else:
                os.remove(q)
        os.rmdir(p)
    except OSError:
        pass
rm('firmware')
rm('boards')
"""


def device_config(config_path, board):
    cfg = {}
    if config_path:
        with open(config_path) as f:
            cfg = json.load(f)
    cfg["board"] = board
    return cfg


def flash_commands(port, tree, config_file, main_file):
    """The mpremote invocation: one connection, chained with '+'."""
    mp = _bin("mpremote") or "mpremote"
    return [
        mp, "connect", port,
        "exec", _RM_TREE, "+",
        "fs", "cp", "-r", os.path.join(tree, "firmware"), os.path.join(tree, "boards"), ":", "+",
        "fs", "cp", config_file, ":config.json", "+",
        "fs", "cp", main_file, ":main.py", "+",
        "reset",
    ]  # fmt: skip


def flash(port, board, config_path=None, out_dir=None, dry_run=False):
    if board not in DEVICE_BOARDS:
        raise SystemExit("board must be one of %s" % ", ".join(DEVICE_BOARDS))
    out_dir = out_dir or os.path.join(ROOT, "build", "mpy", board)
    shutil.rmtree(out_dir, ignore_errors=True)
    made = compile_files(device_files(board), out_dir)
    if not dry_run:
        check_compatible(made, runtime_mpy_version(port=port))
    cfg_file = os.path.join(out_dir, "config.json")
    with open(cfg_file, "w") as f:
        json.dump(device_config(config_path, board), f, indent=1)
    main_file = os.path.join(out_dir, "main.py")
    with open(main_file, "w") as f:
        f.write(MAIN_PY)
    cmd = flash_commands(port, out_dir, cfg_file, main_file)
    if dry_run:
        return cmd
    subprocess.run(cmd, check=True)
    return cmd


# -- package.json (mip) and manifest.py (freezing) ----------------------------------


def package_json():
    """mip package description: every device file, by a URL relative to this
    file (mpremote mip install github:OWNER/REPO, or a local path)."""
    files = device_files()
    return json.dumps({"urls": [[f, f] for f in files], "deps": [], "version": VERSION}, indent=1) + "\n"


def manifest_py():
    files = device_files()
    fw = [f[len("firmware/"):] for f in files if f.startswith("firmware/")]
    bd = [f[len("boards/"):] for f in files if f.startswith("boards/")]
    lines = [
        "# Freezes the agent into a MicroPython image (generated by",
        "# `python -m host_tools.flash manifest`; do not edit). From a MicroPython tree:",
        "#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=%s/manifest.py" % "$REPO",
        '#   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=%s/manifest.py' % "$REPO",
        'metadata(description="OCPP charge-point agent", version="%s")' % VERSION,
        'include("$(PORT_DIR)/boards/manifest.py")',
        "package(",
        '    "firmware",',
        "    files=(",
    ]
    lines += ['        "%s",' % f for f in fw]
    lines += ["    ),", "    opt=3,", ")", "package(", '    "boards",', "    files=("]
    lines += ['        "%s",' % f for f in bd]
    lines += ["    ),", "    opt=3,", ")", ""]
    return "\n".join(lines)


def _write_or_check(path, text, check):
    full = os.path.join(ROOT, path)
    if check:
        current = open(full).read() if os.path.exists(full) else ""
        if current != text:
            raise SystemExit("%s is stale: run python -m host_tools.flash %s" % (path, {"package.json": "package-json"}.get(path, "manifest")))
        return
    with open(full, "w") as f:
        f.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.flash")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="compile the device tree to .mpy")
    c.add_argument("--board", default="esp32_devkit")
    c.add_argument("--out")
    f = sub.add_parser("flash", help="compile and copy to a board with mpremote")
    f.add_argument("--port", required=True)
    f.add_argument("--board", default="esp32_devkit")
    f.add_argument("--config")
    f.add_argument("--dry-run", action="store_true", help="print the mpremote command instead")
    for name in ("package-json", "manifest"):
        p = sub.add_parser(name)
        p.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    args = ap.parse_args(argv)
    if args.cmd == "compile":
        out = args.out or os.path.join(ROOT, "build", "mpy", args.board)
        shutil.rmtree(out, ignore_errors=True)
        made = compile_files(device_files(args.board), out)
        check_compatible(made, runtime_mpy_version())
        print("%d files compiled to %s (%s)" % (len(made), out, mpy_cross_version()))
    elif args.cmd == "flash":
        cmd = flash(args.port, args.board, args.config, dry_run=args.dry_run)
        if args.dry_run:
            print(" ".join(cmd))
    elif args.cmd == "package-json":
        _write_or_check("package.json", package_json(), args.check)
    elif args.cmd == "manifest":
        _write_or_check("manifest.py", manifest_py(), args.check)


def compiled_tree(files=None, include_host_only=True):
    """A temporary directory holding the compiled tree (for tests and
    benchmarks); the caller removes it."""
    tmp = tempfile.mkdtemp(prefix="mpy-")
    if files is None:
        files = firmware_files(include_host_only) + board_files()
    compile_files(files, tmp)
    return tmp


if __name__ == "__main__":
    main()
