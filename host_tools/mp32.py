"""Build 32-bit MicroPython unix ports for the ESP32-sized heap figures.

    python -m host_tools.mp32 --src /path/to/micropython [--out build/mp32]

The `micropython` binary from PyPI is a 64-bit build: every object pointer
and heap block is twice what a 32-bit controller (ESP32, RP2040) spends.
This builds, from a MicroPython source tree, two 32-bit unix ports with
`gcc -m32` (Debian/Ubuntu: apt-get install gcc-multilib):

  OUT/micropython          asyncio frozen, the agent loaded from .mpy files
  OUT/micropython-frozen   the agent frozen into the image as well (what
                           manifest.py does for a device image)

benchmarks/bench_mpheap.py measures both when they exist. Only the
lib/axtls submodule is needed (for hashlib.sha1); FFI, btree and the
micropython-lib packages are left out.
"""

import argparse
import os
import shutil
import subprocess
import sys

from host_tools.flash import ROOT, firmware_files

# The simulated charger's boards, which the benchmark runs the agent on.
BOARDS = ("__init__.py", "base.py", "host.py", "unix.py")
# Not frozen: the 2.x tables (a 1.6 charger never loads them) and the viper
# loops (native code for x86 needs -march; bufops is the same in Python).
LEFT_OUT = ("firmware/ocpp/schemas/v201.py", "firmware/ocpp/schemas/v21.py", "firmware/_native.py")


def manifest(frozen_agent):
    lines = ['include("$(MPY_DIR)/extmod/asyncio")']
    if frozen_agent:
        fw = [f[len("firmware/") :] for f in firmware_files(include_host_only=True) if f not in LEFT_OUT]
        lines.append('package("firmware", files=(%s), base_path=%r)' % (", ".join(repr(f) for f in fw), ROOT))
        lines.append('package("boards", files=(%s), base_path=%r)' % (", ".join(repr(f) for f in BOARDS), ROOT))
    return "\n".join(lines) + "\n"


def build(src, out, frozen_agent, jobs=2):
    src = os.path.abspath(src)
    os.makedirs(out, exist_ok=True)
    name = "micropython-frozen" if frozen_agent else "micropython"
    man = os.path.abspath(os.path.join(out, name + ".manifest.py"))
    with open(man, "w") as f:
        f.write(manifest(frozen_agent))
    lib = os.path.join(src, "lib", "micropython-lib")
    if not os.path.exists(os.path.join(lib, "README.md")):
        # The manifest tool insists on the submodule even when nothing in it is used.
        os.makedirs(lib, exist_ok=True)
        open(os.path.join(lib, "README.md"), "w").close()
    if not os.path.exists(os.path.join(src, "lib", "axtls", "crypto")):
        raise SystemExit("lib/axtls is missing: git submodule update --init lib/axtls")
    subprocess.run(["make", "-C", os.path.join(src, "mpy-cross"), "-j%d" % jobs], check=True)
    build_dir = "build-32-" + name
    cmd = [
        "make", "-C", os.path.join(src, "ports", "unix"), "-j%d" % jobs, "VARIANT=standard", "BUILD=" + build_dir,
        "CC=gcc -m32", "LD=gcc -m32", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=1",
        "MICROPY_SSL_AXTLS=1", "MICROPY_SSL_MBEDTLS=0", "FROZEN_MANIFEST=" + man,
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    dst = os.path.join(out, name)
    shutil.copy(os.path.join(src, "ports", "unix", build_dir, "micropython"), dst)
    return dst


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.mp32", description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, help="a MicroPython source tree (with lib/axtls)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "mp32"))
    ap.add_argument("-j", dest="jobs", type=int, default=2)
    args = ap.parse_args(argv)
    for frozen in (False, True):
        print(build(args.src, args.out, frozen, args.jobs))


if __name__ == "__main__":
    main(sys.argv[1:])
