# The append-only journal file: everything the agent must not lose.
#
# File  = MAGIC, then frames, then possibly zeros (free space). MAGIC is b"OCJ"
#         and the format version (1).
# Frame = SYNC (0xA5), body length (2 bytes, big-endian, 1..65535),
#         CRC-32 of the two length bytes and the body (4 bytes, big-endian),
#         body (one CBOR item: a record, a list whose first item is its kind).
#
# append() writes the frame at the end of the data and returns only after it
# is synced (compat.fsync: fsync(2) on CPython and on the MicroPython unix
# port, a flush of the littlefs/FAT cache to flash on bare-metal ports), so the
# caller acts on a record only once it is durable. append_many() puts several
# records into one frame (a K_BATCH record): they land together or not at all,
# with one sync. With prealloc > 0 the file is grown in zero-filled steps of
# that many bytes and frames overwrite the zeros: a sync then changes no file
# size, which on ext4 makes it about a third faster (see bench_journal). On
# littlefs, which copies on write, leave it at 0.
#
# An unsynced journal (sync=False) hands each frame to the OS as it is
# written, unless it is `batched`: then frames gather in the file's buffer
# until flush(), which its owner calls once per step (the agent: after it has
# performed what an event asked for), and at close.
#
# replay() yields the records in order. A frame that does not check out (no
# SYNC byte, impossible length, CRC mismatch, body not CBOR) starts a bad
# region; the reader looks for the next SYNC byte at which a whole frame checks
# out and carries on from there, so one bad record costs only itself. A bad
# region that runs to the end of the file is a torn tail (a write cut short).
# Zeros from a frame boundary to the end of the file are free space, not
# damage. Each bad region is reported once as a problem tuple (code, offset,
# length, text). New frames go after the last good frame when only free space
# follows it, else after everything, so they are never glued to garbage; the
# owner rewrites a damaged journal with compact() (Store.load does), so the
# next boot starts clean.
#
# compact(records) writes the live records to PATH.new, syncs it, renames it
# over PATH and syncs the directory. A crash before the rename leaves PATH as
# it was (the stale PATH.new is deleted on the next open); after it, PATH is
# the new file. If PATH is missing but PATH.new exists (a FAT rename cut
# between its unlink and its rename), PATH.new is complete and is adopted.
import os
import struct

from firmware import compat
from firmware.compat import const
from firmware.store import cbor

MAGIC = b"OCJ\x01"
SYNC = const(0xA5)
HEADER = const(7)
MAX_BODY = const(65535)
K_BATCH = const(0)

# Problem codes (first item of a problem tuple).
P_TORN = const(1)  # the file ends inside a frame or in bytes that are no frame
P_CRC = const(2)  # a frame whose checksum does not match
P_FRAME = const(3)  # bytes that do not start a frame (no SYNC byte, bad length)
P_CBOR = const(4)  # a frame that checks out but whose body is not a record
P_MAGIC = const(5)  # the file does not start with MAGIC
P_KIND = const(6)  # a record of a kind this firmware does not know (Store)
PROBLEM_NAMES = {
    P_TORN: "torn tail",
    P_CRC: "bad checksum",
    P_FRAME: "not a frame",
    P_CBOR: "body is not a record",
    P_MAGIC: "bad file header",
    P_KIND: "unknown record kind",
}

_SCAN = const(256)  # bytes read at a time while looking for the next SYNC byte
_WRITE_CHUNK = const(4096)  # compaction writes in pieces of about this size


def problem_text(p):
    return "journal %s at byte %d (%d bytes): %s" % (PROBLEM_NAMES.get(p[0], "?"), p[1], p[2], p[3])


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else ("/" if i == 0 else ".")


class Files:
    """The file operations the journal uses; tests replace it to cut power."""

    def open(self, path, mode):
        return open(path, mode)

    def write(self, f, data):
        f.write(data)

    def sync(self, f):
        compat.fsync(f)

    def flush(self, f):
        compat.flush(f)

    def close(self, f):
        f.close()

    def rename(self, src, dst):
        os.rename(src, dst)

    def remove(self, path):
        os.remove(path)

    def size(self, path):
        """Size in bytes, or -1 when there is no such file."""
        try:
            return os.stat(path)[6]
        except OSError:
            return -1

    def sync_dir(self, path):
        compat.fsync_dir(_dirname(path))


def frame(rec):
    """The bytes of one frame holding rec (a bytearray)."""
    out = bytearray(HEADER)
    cbor.dump_into(out, rec)
    _seal(out, 0)
    return out


def _seal(out, at):
    # Fills in the header of the frame that starts at out[at] and runs to the end.
    n = len(out) - at - HEADER
    if n > MAX_BODY:
        raise ValueError("record of %d bytes exceeds the %d-byte frame limit" % (n, MAX_BODY))
    struct.pack_into(">BH", out, at, SYNC, n)
    mv = memoryview(out)
    crc = compat.crc32(mv[at + HEADER :], compat.crc32(mv[at + 1 : at + 3]))
    struct.pack_into(">I", out, at + 3, crc & 0xFFFFFFFF)


class Scanner:
    """Reads the frames of an open journal file (shared with the dump tool).

    records(loads) yields ("rec", offset, length, record) for each record
    (those of a batch share their frame) and ("bad", offset, length, code,
    text) for each damaged region. Afterwards `end` is where the next frame
    belongs and `free` the bytes of zeros after the data.
    """

    def __init__(self, f, size):
        self.f = f
        self.size = size
        self.pos = 0
        self.end = 0
        self.free = 0
        self._hdr = bytearray(HEADER)
        self._fpos = -1  # the file's position when known

    def records(self, loads=cbor.loads):
        """loads decodes a body (the dump tool passes cbor2's) and raises
        ValueError on bad data."""
        bad = self._start()
        if bad is not None:
            yield bad
        while True:
            item = self._next()
            if item is None:
                return
            if item[0] != "rec":
                yield item
                continue
            at, body = item[1], item[2]
            n = HEADER + len(body)
            try:
                rec = loads(body)
            except ValueError as e:
                yield ("bad", at, n, P_CBOR, "%s: %s" % (PROBLEM_NAMES[P_CBOR], e))
                continue
            if type(rec) is not list or not rec or type(rec[0]) is not int:
                yield ("bad", at, n, P_CBOR, PROBLEM_NAMES[P_CBOR] + ": not a [kind, ...] list")
                continue
            if rec[0] == K_BATCH:
                for sub in rec[1:]:
                    yield ("rec", at, n, sub)
            else:
                yield ("rec", at, n, rec)

    def _start(self):
        # Checks MAGIC; a "bad" item if the file does not start with it.
        head = self.f.read(len(MAGIC))
        if head == MAGIC:
            self.pos = self.end = len(MAGIC)
            return None
        self.f.seek(0)
        if len(head) < len(MAGIC) and MAGIC.startswith(head):
            # Cut while its header was written: nothing was ever in it.
            self.pos = self.end = len(head)
            return ("bad", 0, len(head), P_TORN, PROBLEM_NAMES[P_TORN]) if head else None
        return ("bad", 0, 0, P_MAGIC, PROBLEM_NAMES[P_MAGIC])

    def _read_frame(self, at):
        # (body, None) for a valid frame at `at`, else (None, cause).
        f = self.f
        hdr = self._hdr
        if self._fpos != at:  # frames are read in order: seek only after damage
            f.seek(at)
        self._fpos = -1
        if f.readinto(hdr) < HEADER:
            return None, P_TORN
        if hdr[0] != SYNC:
            return None, P_FRAME
        n = (hdr[1] << 8) | hdr[2]
        if n == 0:
            return None, P_FRAME
        if at + HEADER + n > self.size:
            return None, P_TORN
        body = f.read(n)
        if len(body) < n:
            return None, P_TORN
        crc = compat.crc32(body, compat.crc32(memoryview(hdr)[1:3])) & 0xFFFFFFFF
        if crc != struct.unpack_from(">I", hdr, 3)[0]:
            return None, P_CRC
        self._fpos = at + HEADER + n
        return body, None

    def _next(self):
        at = self.pos
        if at >= self.size:
            return None
        body, cause = self._read_frame(at)
        if body is not None:
            self.pos = self.end = at + HEADER + len(body)
            return ("rec", at, body)
        if self._zeros_from(at):
            self.free = self.size - at
            self.pos = self.size
            return None
        # Bad region: find the next offset where a whole frame checks out.
        good = self._resync(at + 1)
        self.pos = good
        if good >= self.size:
            cause = P_TORN
            self.end = self.size  # never write over bytes we cannot explain
        elif cause == P_TORN:
            cause = P_FRAME  # it claimed more bytes than the file holds, yet frames follow
        f = self.f
        f.seek(at)
        self._fpos = -1
        head = f.read(good - at if good - at < 16 else 16)
        text = PROBLEM_NAMES[cause] + "; starts " + "".join("%02x" % b for b in head)
        return ("bad", at, good - at, cause, text)

    def _zeros_from(self, at):
        f = self.f
        f.seek(at)
        self._fpos = -1
        while True:
            chunk = f.read(_SCAN)
            if not chunk:
                return True
            if chunk.count(b"\0") != len(chunk):
                return False

    def _resync(self, start):
        f = self.f
        size = self.size
        pos = start
        while pos < size:
            f.seek(pos)
            self._fpos = -1
            chunk = f.read(_SCAN)
            if not chunk:
                break
            i = chunk.find(b"\xa5")
            while i >= 0:
                cand = pos + i
                if self._read_frame(cand)[0] is not None:
                    return cand
                i = chunk.find(b"\xa5", i + 1)
            pos += len(chunk)
        return size


class Journal:
    def __init__(self, path, sync=True, fs=None, prealloc=0, batched=False):
        self.path = path
        self.tmp = path + ".new"
        self.fs = fs or Files()
        self.synced = sync
        self.batched = batched and not sync
        self.prealloc = prealloc
        self._f = None
        self._at = -1  # the open file's position when known (a seek flushes its buffer)
        self._dirty = False  # batched frames not yet handed to the OS
        self.appends = 0
        self.records = 0
        self.syncs = 0
        self.compactions = 0
        self.last_offset = -1  # offset of the frame of the record replay() yielded last
        self._recover_tmp()
        size = self.fs.size(self.path)
        self.alloc = size if size > 0 else 0  # bytes in the file
        self.end = None  # where the next frame goes; known after a replay

    def _recover_tmp(self):
        fs = self.fs
        if fs.size(self.tmp) < 0:
            return
        if fs.size(self.path) < 0:
            fs.rename(self.tmp, self.path)
            fs.sync_dir(self.path)
        else:
            fs.remove(self.tmp)

    def size(self):
        """Bytes of data (free space not counted)."""
        return self.alloc if self.end is None else self.end

    def stats(self):
        return {
            "synced": self.synced,
            "appends": self.appends,
            "records": self.records,
            "syncs": self.syncs,
            "compactions": self.compactions,
            "bytes": self.size(),
            "allocated": self.alloc,
        }

    # -- reading --------------------------------------------------------------

    def replay(self, on_problem):
        """Yields each record (a list) in file order; calls on_problem(problem)
        for every bad region. Call it before the first append."""
        self.close()
        size = self.fs.size(self.path)
        if size <= 0:
            return
        f = self.fs.open(self.path, "rb")
        try:
            sc = Scanner(f, size)
            for item in sc.records():
                if item[0] == "rec":
                    self.last_offset = item[1]
                    yield item[3]
                else:
                    on_problem((item[3], item[1], item[2], item[4]))
            self.end = sc.end
            self.alloc = size
        finally:
            f.close()

    # -- writing --------------------------------------------------------------

    def _handle(self):
        if self._f is None:
            fs = self.fs
            if self.end is None and self.alloc >= len(MAGIC):
                for _ in self.replay(lambda p: None):  # finds the end of the data
                    pass
            if self.end is None or self.end < len(MAGIC):  # no file, or nothing valid in it
                self._f = fs.open(self.path, "wb")
                fs.write(self._f, MAGIC)
                fs.sync(self._f)
                fs.sync_dir(self.path)
                self.alloc = self.end = len(MAGIC)
            else:
                self._f = fs.open(self.path, "r+b")
            self._at = -1
        return self._f

    def _commit(self, data, sync):
        f = self._handle()
        end = self.end
        need = end + len(data)
        if self.prealloc and need > self.alloc:
            grow = self.prealloc
            while need > self.alloc + grow:
                grow += self.prealloc
            f.seek(self.alloc)
            self.fs.write(f, bytes(grow))
            self.alloc += grow
            self._at = -1
        if self._at != end:
            f.seek(end)
        self._at = -1  # unknown should the write fail
        self.fs.write(f, data)
        self._at = self.end = need
        if need > self.alloc:
            self.alloc = need
        if sync and self.synced:
            self.fs.sync(f)
            self.syncs += 1
        elif self.batched:
            self._dirty = True
        else:
            self.fs.flush(f)
        self.appends += 1

    def flush(self):
        """Hands batched frames to the OS (see `batched` above)."""
        if self._dirty:
            self._dirty = False
            if self._f is not None:
                self.fs.flush(self._f)

    def append(self, rec, sync=True):
        """Writes one record and (unless sync is False or the journal is
        unsynced) syncs it before returning. Returns the frame size."""
        data = frame(rec)
        self._commit(data, sync)
        self.records += 1
        return len(data)

    def append_many(self, recs, sync=True):
        """Writes several records in one frame (all or none survive a power
        cut) with one sync. Returns the frame size."""
        if len(recs) == 1:
            return self.append(recs[0], sync)
        out = bytearray(HEADER)
        cbor.head(out, 4, len(recs) + 1)
        out.append(K_BATCH)
        for rec in recs:
            cbor.dump_into(out, rec)
        _seal(out, 0)
        self._commit(out, sync)
        self.records += len(recs)
        return len(out)

    def compact(self, records):
        """Replaces the file with one holding exactly `records` (an iterable),
        crash-safe at every step."""
        self.close()
        fs = self.fs
        f = fs.open(self.tmp, "wb")
        total = 0
        try:
            out = bytearray(MAGIC)
            for rec in records:
                at = len(out)
                out.extend(b"\0" * HEADER)
                cbor.dump_into(out, rec)
                _seal(out, at)
                if len(out) >= _WRITE_CHUNK:
                    fs.write(f, out)
                    total += len(out)
                    out = bytearray()
            if out:
                fs.write(f, out)
                total += len(out)
            fs.sync(f)
        finally:
            fs.close(f)
        fs.rename(self.tmp, self.path)
        fs.sync_dir(self.path)
        self.alloc = self.end = total
        self.compactions += 1

    def close(self):
        self._dirty = False
        if self._f is not None:
            f = self._f
            self._f = None
            self.fs.close(f)
