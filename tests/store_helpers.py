# Helpers for the store tests, on both runtimes: scratch directories (no
# tempfile on MicroPython) and a file layer that cuts the power at a chosen step.
import os

from firmware.compat import urandom
from firmware.store.journal import Files

SCRATCH = "build/test-store"


def _mkdirs(path):
    part = ""
    for name in path.split("/"):
        part = part + "/" + name if part else name
        try:
            os.mkdir(part)
        except OSError:
            pass


def scratch_dir():
    """A new empty directory under build/ (the repository root is the cwd)."""
    path = SCRATCH + "/" + "".join("%02x" % b for b in urandom(6))
    _mkdirs(path)
    return path


def remove_tree(path):
    for entry in os.listdir(path):
        p = path + "/" + entry
        if os.stat(p)[0] & 0x4000:
            remove_tree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


class PowerCut(Exception):
    pass


# How a cut write leaves the file: none of the bytes, the first half, all of them.
NONE, HALF, ALL = 0, 1, 2


class CrashFiles(Files):
    """Real files; the power goes at step number `at` (1-based) of the steps
    that change the disk: opening a file to write, write, sync, rename, remove,
    directory sync. A cut write lands as `torn` says. The step is counted and
    the exception raised; `steps` counts all steps seen (for a dry run, at=0).
    A cut rename with torn=HALF leaves the target unlinked and the source in
    place (what FAT does between its two steps)."""

    def __init__(self, at=0, torn=NONE):
        self.at = at
        self.torn = torn
        self.steps = 0
        self.cut = False

    def _step(self):
        if self.cut:
            raise PowerCut("no power")
        self.steps += 1
        if self.steps == self.at:
            self.cut = True
            return True
        return False

    def open(self, path, mode):
        if "r" not in mode and self._step():
            if mode.startswith("w"):
                open(path, "wb").close()  # the file appears, empty
            raise PowerCut("open " + path)
        return open(path, mode)

    def write(self, f, data):
        if self._step():
            if self.torn == HALF:
                f.write(bytes(data[: len(data) // 2]))
            elif self.torn == ALL:
                f.write(data)
            Files.flush(self, f)
            raise PowerCut("write")
        f.write(data)

    def sync(self, f):
        # The cut is simulated, so the sync itself need not reach the disk
        # (hundreds of runs per test); the order of steps is what is checked.
        Files.flush(self, f)
        if self._step():
            raise PowerCut("sync")

    def rename(self, src, dst):
        if self._step():
            if self.torn == HALF:
                os.remove(dst)
            elif self.torn == ALL:
                os.rename(src, dst)
            raise PowerCut("rename")
        os.rename(src, dst)

    def remove(self, path):
        if self._step():
            if self.torn != NONE:
                os.remove(path)
            raise PowerCut("remove")
        os.remove(path)

    def sync_dir(self, path):
        if self._step():
            raise PowerCut("sync_dir")
        Files.sync_dir(self, path)
