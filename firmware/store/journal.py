# The append-only journal file: everything the agent must not lose.
#
# File  = MAGIC, then frames. MAGIC is b"OCJ" and the format version (1).
# Frame = SYNC (0xA5), body length (2 bytes, big-endian, 1..65535),
#         CRC-32 of the two length bytes and the body (4 bytes, big-endian),
#         body (one CBOR item: a record, a list whose first item is its kind).
#
# append() returns only after the frame is written and synced (compat.fsync:
# fsync(2) on CPython and on the MicroPython unix port, a flush of the
# littlefs/FAT cache to flash on bare-metal ports), so the caller acts on a
# record only once it is durable. append_many() puts several records into one
# frame (a K_BATCH record), so they land together or not at all, with one sync.
#
# replay() yields the records in order. A frame that does not check out (no
# SYNC byte, impossible length, CRC mismatch, body not CBOR) starts a bad
# region; the reader looks for the next SYNC byte at which a whole frame checks
# out and carries on from there, so one bad record costs only itself. A bad
# region that runs to the end of the file is a torn tail (a write cut short).
# Each region is reported once as a problem tuple (code, offset, length, text).
# The owner of the journal then rewrites it with compact(), so new frames are
# never glued to garbage and the next boot starts clean (Store.load does this).
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
    """Reads frames from an open file; sans-policy, shared with the dump tool.

    next() returns ("rec", offset, body) for each valid frame and
    ("bad", offset, length, cause) for each bad region, then None at the end.
    """

    def __init__(self, f, size):
        self.f = f
        self.size = size
        self.pos = 0
        self._hdr = bytearray(HEADER)

    def start(self):
        """Checks MAGIC; returns a "bad" item if the header is wrong, else None."""
        head = self.f.read(len(MAGIC))
        if head == MAGIC:
            self.pos = len(MAGIC)
            return None
        self.pos = 0
        self.f.seek(0)
        if len(head) < len(MAGIC) and MAGIC.startswith(head):
            # A file cut while its header was written: nothing was ever in it.
            self.pos = len(head)
            return ("bad", 0, len(head), P_TORN) if head else None
        return None if self.size == 0 else ("magic", 0, 0, P_MAGIC)

    def _read_frame(self, at):
        # (body, None) for a valid frame at `at`, else (None, cause).
        f = self.f
        hdr = self._hdr
        f.seek(at)
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
        return body, None

    def next(self):
        at = self.pos
        if at >= self.size:
            return None
        body, cause = self._read_frame(at)
        if body is not None:
            self.pos = at + HEADER + len(body)
            return ("rec", at, body)
        # Bad region: find the next offset where a whole frame checks out.
        good = self._resync(at + 1)
        self.pos = good
        if good >= self.size:
            cause = P_TORN
        elif cause == P_TORN:
            cause = P_FRAME  # it claimed more bytes than the file holds, yet frames follow
        return ("bad", at, good - at, cause)

    def _resync(self, start):
        f = self.f
        size = self.size
        pos = start
        while pos < size:
            f.seek(pos)
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
    def __init__(self, path, sync=True, fs=None):
        self.path = path
        self.tmp = path + ".new"
        self.fs = fs or Files()
        self.synced = sync
        self._f = None
        self.appends = 0
        self.records = 0
        self.syncs = 0
        self.compactions = 0
        self.last_offset = -1  # offset of the frame of the record replay() yielded last
        self._recover_tmp()
        self.bytes = self.size_on_disk()

    def _recover_tmp(self):
        fs = self.fs
        if fs.size(self.tmp) < 0:
            return
        if fs.size(self.path) < 0:
            fs.rename(self.tmp, self.path)
            fs.sync_dir(self.path)
        else:
            fs.remove(self.tmp)

    def size_on_disk(self):
        n = self.fs.size(self.path)
        return n if n > 0 else 0

    def size(self):
        """Bytes in the file, as written through this object."""
        return self.bytes

    def stats(self):
        return {
            "synced": self.synced,
            "appends": self.appends,
            "records": self.records,
            "syncs": self.syncs,
            "compactions": self.compactions,
            "bytes": self.bytes,
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
            for item in read_records(f, size):
                if item[0] == "rec":
                    self.last_offset = item[1]
                    yield item[3]
                else:
                    on_problem((item[3], item[1], item[2], item[4]))
        finally:
            f.close()

    # -- writing --------------------------------------------------------------

    def _handle(self):
        if self._f is None:
            fs = self.fs
            fresh = fs.size(self.path) <= 0
            self._f = fs.open(self.path, "ab")
            if fresh:
                fs.write(self._f, MAGIC)
                self.bytes = len(MAGIC)
                fs.sync(self._f)
                fs.sync_dir(self.path)
        return self._f

    def _commit(self, data, sync):
        f = self._handle()
        self.fs.write(f, data)
        self.bytes += len(data)
        if sync and self.synced:
            self.fs.sync(f)
            self.syncs += 1
        else:
            self.fs.flush(f)
        self.appends += 1

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
        self.bytes = total
        self.compactions += 1

    def close(self):
        if self._f is not None:
            f = self._f
            self._f = None
            self.fs.close(f)


def read_records(f, size, loads=cbor.loads):
    """Reads a journal file: yields ("rec", offset, length, record) for each
    record (those of a batch share its frame) and ("bad", offset, length,
    code, text) for each damaged region. loads decodes a body (the dump tool
    passes cbor2's) and raises ValueError on bad data."""
    sc = Scanner(f, size)
    bad = sc.start()
    if bad is not None:
        yield ("bad", bad[1], bad[2], bad[3], PROBLEM_NAMES[bad[3]])
    while True:
        item = sc.next()
        if item is None:
            return
        if item[0] != "rec":
            at, n, code = item[1], item[2], item[3]
            f.seek(at)
            head = f.read(n if n < 16 else 16)
            text = PROBLEM_NAMES[code] + "; starts " + "".join("%02x" % b for b in head)
            yield ("bad", at, n, code, text)
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
