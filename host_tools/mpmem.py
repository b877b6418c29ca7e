"""Memory figures on the MicroPython unix port: heap taken by imports, and
the smallest `micropython -X heapsize=N` at which a script still passes.

    tree = flash.compiled_tree()                 # .mpy files
    src = source_tree(files)                     # the same files as .py
    import_heap(tree, ["firmware.hw.modbus"])    # bytes held after the imports
    min_heapsize(SCRIPT, tree)                   # smallest passing heap, bytes

A script passes when it exits 0 and prints a line starting with "OK".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from host_tools.flash import ROOT, _bin

_IMPORT = """
import sys
sys.path[:] = [".", ".frozen"]
import gc
gc.collect()
a = gc.mem_alloc()
%s
gc.collect()
print("OK", gc.mem_alloc() - a)
"""


def run(code, cwd, heapsize=None, binary=None, timeout=120):
    cmd = [binary or _bin("micropython")]
    if heapsize:
        cmd += ["-X", "heapsize=%d" % heapsize]
    cmd += ["-c", code]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def passes(code, cwd, heapsize, binary=None):
    out = run(code, cwd, heapsize, binary)
    return out.returncode == 0 and any(line.startswith("OK") for line in out.stdout.splitlines())


def ok_fields(code, cwd, heapsize=None, binary=None):
    """The fields after "OK" on the script's OK line, as ints where they are."""
    out = run(code, cwd, heapsize, binary)
    for line in out.stdout.splitlines():
        if line.startswith("OK"):
            return [int(x) if x.lstrip("-").isdigit() else x for x in line.split()[1:]]
    raise RuntimeError("script failed: %s" % (out.stderr or out.stdout)[-2000:])


def import_heap(cwd, modules, binary=None):
    """Bytes of heap still held after importing `modules` (gc collected)."""
    code = _IMPORT % "\n".join("import " + m for m in modules)
    return ok_fields(code, cwd, binary=binary)[0]


def min_heapsize(code, cwd, lo=2048, hi=4 << 20, resolution=256, binary=None):
    """Smallest heap (bytes, to `resolution`) at which the script passes."""
    if not passes(code, cwd, hi, binary):
        raise RuntimeError("script does not pass even with %d bytes" % hi)
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        if passes(code, cwd, mid, binary):
            hi = mid
        else:
            lo = mid
    return hi


def source_tree(files):
    """A temporary directory holding these repository files as .py sources
    (the baseline of the .mpy figures); the caller removes it."""
    tmp = tempfile.mkdtemp(prefix="py-")
    for rel in files:
        dst = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), dst)
    return tmp
