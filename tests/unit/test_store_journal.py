import os
import unittest

from firmware.store import journal as J
from tests.store_helpers import (
    ALL,
    HALF,
    NONE,
    CrashFiles,
    PowerCut,
    read_bytes,
    remove_tree,
    scratch_dir,
    write_bytes,
)

RECORDS = [
    [3, 1, 1, "TAG-0001", 12000, 1714557600],
    [1, 1, 0, b"\xa3\x00\x01\x0c\x68TAG-0001\x0d\x19\x2e\xe0", 1, 0],
    [5, 1, 12345.5, 1714557660],
    [2, 1],
    [8, "HeartbeatInterval", 300],
    [7, 0, False],
]


def replay(path, fs=None):
    problems = []
    recs = list(J.Journal(path, fs=fs).replay(problems.append))
    return recs, problems


class JournalCase(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.path = self.dir + "/journal"

    def tearDown(self):
        remove_tree(self.dir)

    def write(self, recs, **kw):
        j = J.Journal(self.path, **kw)
        for r in recs:
            j.append(r)
        j.close()
        return j

    def frame_offsets(self):
        # Offsets of each frame in a file written from RECORDS.
        out = []
        at = len(J.MAGIC)
        for r in RECORDS:
            out.append(at)
            at += len(J.frame(r))
        out.append(at)
        return out


class AppendReplayTest(JournalCase):
    def test_missing_file_replays_nothing(self):
        self.assertEqual(replay(self.path), ([], []))

    def test_records_come_back_in_order(self):
        self.write(RECORDS)
        self.assertEqual(replay(self.path), (RECORDS, []))

    def test_file_layout_is_magic_then_frames(self):
        self.write(RECORDS[:1])
        data = read_bytes(self.path)
        self.assertEqual(data[:4], b"OCJ\x01")
        self.assertEqual(data[4], 0xA5)
        n = (data[5] << 8) | data[6]
        self.assertEqual(len(data), 4 + 7 + n)
        from firmware.compat import crc32
        from firmware.store import cbor

        crc = (data[7] << 24) | (data[8] << 16) | (data[9] << 8) | data[10]
        self.assertEqual(crc, crc32(data[11:], crc32(data[5:7])) & 0xFFFFFFFF)
        self.assertEqual(cbor.loads(data[11:]), RECORDS[0])

    def test_append_many_is_one_frame_and_one_sync(self):
        j = J.Journal(self.path)
        j.append(RECORDS[0])
        syncs = j.syncs
        j.append_many(RECORDS[1:])
        self.assertEqual(j.syncs, syncs + 1)
        self.assertEqual(j.appends, 2)
        self.assertEqual(j.records, len(RECORDS))
        j.close()
        self.assertEqual(replay(self.path), (RECORDS, []))

    def test_appends_continue_an_existing_file(self):
        self.write(RECORDS[:2])
        self.write(RECORDS[2:])
        self.assertEqual(replay(self.path), (RECORDS, []))

    def test_stats_say_whether_records_are_synced(self):
        j = self.write(RECORDS)
        s = j.stats()
        self.assertTrue(s["synced"])
        self.assertEqual(s["syncs"], len(RECORDS))
        self.assertEqual(s["bytes"], len(read_bytes(self.path)))
        os.remove(self.path)
        j = self.write(RECORDS, sync=False)
        s = j.stats()
        self.assertFalse(s["synced"])
        self.assertEqual(s["syncs"], 0)
        self.assertEqual(replay(self.path), (RECORDS, []))

    def test_oversized_record_is_refused_and_nothing_written(self):
        j = J.Journal(self.path)
        j.append(RECORDS[0])
        with self.assertRaises(ValueError):
            j.append([1, 2, b"x" * 70000])
        j.close()
        self.assertEqual(replay(self.path), (RECORDS[:1], []))


class PreallocTest(JournalCase):
    def test_file_grows_in_zeroed_steps_and_frames_fill_them(self):
        j = J.Journal(self.path, prealloc=256)
        sizes = []
        for r in RECORDS * 4:
            j.append(r)
            sizes.append(len(read_bytes(self.path)))
        j.close()
        self.assertEqual(sizes[0], 4 + 256)
        self.assertTrue(all(s % 256 == 4 for s in sizes))
        self.assertLess(j.stats()["bytes"], j.stats()["allocated"])
        self.assertEqual(replay(self.path), (RECORDS * 4, []))

    def test_a_reopened_journal_continues_after_its_last_frame(self):
        j = J.Journal(self.path, prealloc=4096)
        j.append_many(RECORDS[:3])
        j.close()
        j = J.Journal(self.path, prealloc=4096)
        for r in RECORDS[3:]:
            j.append(r)  # no replay first: it finds its end by itself
        j.close()
        self.assertEqual(replay(self.path), (RECORDS, []))
        self.assertEqual(len(read_bytes(self.path)), 4 + 4096)

    def test_a_frame_larger_than_the_step_still_fits(self):
        j = J.Journal(self.path, prealloc=64)
        big = [1, 1, 0, b"x" * 300, None, 0]
        j.append(big)
        j.append(RECORDS[0])
        j.close()
        self.assertEqual(replay(self.path), ([big, RECORDS[0]], []))


class DamageTest(JournalCase):
    def test_every_torn_tail_keeps_everything_before_it(self):
        self.write(RECORDS)
        data = read_bytes(self.path)
        offs = self.frame_offsets()
        last = offs[-2]
        for cut in range(last + 1, len(data)):
            write_bytes(self.path, data[:cut])
            recs, problems = replay(self.path)
            self.assertEqual(recs, RECORDS[:-1], cut)
            self.assertEqual([(p[0], p[1], p[2]) for p in problems], [(J.P_TORN, last, cut - last)], cut)

    def test_a_file_cut_inside_its_header_is_an_empty_journal(self):
        for cut in range(1, 4):
            write_bytes(self.path, J.MAGIC[:cut])
            recs, problems = replay(self.path)
            self.assertEqual(recs, [])
            self.assertEqual([p[0] for p in problems], [J.P_TORN])

    def test_zeros_after_the_last_record_are_free_space(self):
        # What a preallocating journal leaves, and what ext4 may leave after a
        # cut: not damage; the next frames overwrite the zeros.
        self.write(RECORDS[:3])
        size = len(read_bytes(self.path))
        with open(self.path, "ab") as f:
            f.write(bytes(4096))
        self.assertEqual(replay(self.path), (RECORDS[:3], []))
        j = J.Journal(self.path)
        list(j.replay(self.fail))
        self.assertEqual(j.stats()["bytes"], size)
        for r in RECORDS[3:]:
            j.append(r)
        j.close()
        self.assertEqual(replay(self.path), (RECORDS, []))
        self.assertEqual(len(read_bytes(self.path)), size + 4096)

    def test_a_file_of_zeros_is_started_afresh(self):
        write_bytes(self.path, bytes(512))
        recs, problems = replay(self.path)
        self.assertEqual((recs, [p[0] for p in problems]), ([], [J.P_MAGIC]))
        self.write(RECORDS)
        self.assertEqual(replay(self.path), (RECORDS, []))

    def test_garbage_at_the_end_is_a_torn_tail_and_never_written_over(self):
        self.write(RECORDS[:3])
        size = len(read_bytes(self.path))
        with open(self.path, "ab") as f:
            f.write(b"\xa5\x00\x30" + bytes(100))
        problems = []
        j = J.Journal(self.path)
        self.assertEqual(list(j.replay(problems.append)), RECORDS[:3])
        self.assertEqual([(p[0], p[1], p[2]) for p in problems], [(J.P_TORN, size, 103)])
        for r in RECORDS[3:]:
            j.append(r)
        j.close()
        recs, problems = replay(self.path)
        self.assertEqual(recs, RECORDS)
        self.assertEqual([(p[0], p[1], p[2]) for p in problems], [(J.P_CRC, size, 103)])

    def test_any_flipped_bit_costs_only_its_own_record(self):
        self.write(RECORDS)
        data = read_bytes(self.path)
        offs = self.frame_offsets()
        victim = 2
        start, end = offs[victim], offs[victim + 1]
        for pos in range(start, end):
            for bit in range(8):
                bad = bytearray(data)
                bad[pos] ^= 1 << bit
                write_bytes(self.path, bad)
                recs, problems = replay(self.path)
                where = "byte %d bit %d" % (pos, bit)
                self.assertEqual(recs, RECORDS[:victim] + RECORDS[victim + 1 :], where)
                self.assertEqual(len(problems), 1, where)
                code, at, n, text = problems[0]
                self.assertIn(code, (J.P_CRC, J.P_FRAME), where)
                self.assertEqual((at, n), (start, end - start), where)

    def test_problem_text_names_the_place(self):
        self.write(RECORDS)
        data = bytearray(read_bytes(self.path))
        at = self.frame_offsets()[1]
        data[at + 9] ^= 0x10
        write_bytes(self.path, data)
        problems = replay(self.path)[1]
        text = J.problem_text(problems[0])
        self.assertIn("bad checksum at byte %d" % at, text)
        self.assertIn("starts a5", text)

    def test_a_valid_frame_with_a_non_record_body_is_skipped(self):
        j = J.Journal(self.path)
        j.append(RECORDS[0])
        for body in (b"\xff", b"\x01", b"\x80", b"\x81\x61\x61"):
            out = bytearray(J.HEADER) + body
            J._seal(out, 0)
            j._commit(out, True)
        j.append(RECORDS[1])
        j.close()
        recs, problems = replay(self.path)
        self.assertEqual(recs, RECORDS[:2])
        self.assertEqual([p[0] for p in problems], [J.P_CBOR] * 4)

    def test_a_bad_file_header_is_reported_and_frames_are_still_read(self):
        self.write(RECORDS)
        data = bytearray(read_bytes(self.path))
        data[0:4] = b"JUNK"
        write_bytes(self.path, data)
        recs, problems = replay(self.path)
        self.assertEqual(recs, RECORDS)
        self.assertEqual([p[0] for p in problems], [J.P_MAGIC, J.P_FRAME])

    def test_new_frames_after_a_torn_tail_are_found(self):
        # Even without the repair that Store.load does, a frame appended after
        # garbage is found again (the reader re-synchronises on SYNC + CRC).
        self.write(RECORDS[:3])
        data = read_bytes(self.path)
        write_bytes(self.path, data[:-5])
        self.write(RECORDS[3:])
        recs, problems = replay(self.path)
        self.assertEqual(recs, RECORDS[:2] + RECORDS[3:])
        self.assertEqual([p[0] for p in problems], [J.P_CRC])


class Crc32Test(unittest.TestCase):
    def test_the_fallback_matches_binascii(self):
        from firmware.compat import crc32, crc32_py

        for data in (b"", b"a", b"123456789", bytes(range(256)) * 3):
            self.assertEqual(crc32_py(data), crc32(data) & 0xFFFFFFFF)
            self.assertEqual(crc32_py(data[5:], crc32_py(data[:5])), crc32(data) & 0xFFFFFFFF)
        self.assertEqual(crc32_py(b"123456789"), 0xCBF43926)


class CompactionTest(JournalCase):
    def test_compaction_replaces_the_file(self):
        self.write(RECORDS)
        j = J.Journal(self.path)
        j.compact(iter(RECORDS[2:4]))
        self.assertEqual(j.compactions, 1)
        self.assertEqual(j.size(), len(read_bytes(self.path)))
        j.append(RECORDS[0])
        j.close()
        self.assertEqual(replay(self.path), (RECORDS[2:4] + RECORDS[:1], []))
        self.assertFalse(self.path + ".new" in [self.dir + "/" + n for n in os.listdir(self.dir)])

    def test_compaction_writes_large_states_in_pieces(self):
        many = [[5, i, i * 10, 1714557600 + i] for i in range(2000)]
        self.write(RECORDS)
        j = J.Journal(self.path)
        j.compact(iter(many))
        self.assertEqual(replay(self.path), (many, []))

    def test_stale_new_file_is_removed_on_open(self):
        self.write(RECORDS)
        write_bytes(self.path + ".new", b"OCJ\x01\xa5\x00")
        self.assertEqual(replay(self.path), (RECORDS, []))
        self.assertEqual(os.listdir(self.dir), ["journal"])

    def test_complete_new_file_without_the_old_one_is_adopted(self):
        # A FAT rename cut between unlinking the target and renaming the source.
        self.write(RECORDS[:2])
        os.rename(self.path, self.path + ".new")
        self.assertEqual(replay(self.path), (RECORDS[:2], []))
        self.assertEqual(os.listdir(self.dir), ["journal"])


class PowerCutTest(JournalCase):
    """A cut at every step of append and compaction, with every way a cut
    write can land, never loses a synced record nor leaves a record half-read."""

    def cut_runs(self, operation, reset):
        # Runs operation(fs) with the power cut at every step in turn, each
        # time from the state reset() sets up; yields after each cut.
        reset()
        dry = CrashFiles()
        operation(dry)
        self.assertGreater(dry.steps, 1)
        for at in range(1, dry.steps + 1):
            for torn in (NONE, HALF, ALL):
                reset()
                try:
                    operation(CrashFiles(at, torn))
                    self.fail("no cut at step %d" % at)
                except PowerCut:
                    pass
                yield at, torn

    prealloc = 0

    def test_cut_during_the_first_append(self):
        def op(fs):
            j = J.Journal(self.path, fs=fs, prealloc=self.prealloc)
            try:
                j.append(RECORDS[0])
            finally:
                j.close()

        def reset():
            if self.path.split("/")[-1] in os.listdir(self.dir):
                os.remove(self.path)

        for at, torn in self.cut_runs(op, reset):
            recs, problems = replay(self.path)
            self.assertIn(recs, ([], RECORDS[:1]), (at, torn))
            self.assertTrue(all(p[0] == J.P_TORN for p in problems), (at, torn, problems))

    def test_cut_during_later_appends(self):
        self.write(RECORDS[:2], prealloc=self.prealloc)
        base = read_bytes(self.path)

        def op(fs):
            j = J.Journal(self.path, fs=fs, prealloc=self.prealloc)
            try:
                j.append(RECORDS[2])
                j.append_many(RECORDS[3:])
            finally:
                j.close()

        for at, torn in self.cut_runs(op, lambda: write_bytes(self.path, base)):
            recs, problems = replay(self.path)
            self.assertIn(recs, (RECORDS[:2], RECORDS[:3], RECORDS), (at, torn))
            self.assertTrue(all(p[0] == J.P_TORN for p in problems), (at, torn, problems))

    def test_cut_during_compaction(self):
        self.write(RECORDS)
        base = read_bytes(self.path)
        live = [[5, i, i, i] for i in range(700)]  # more than one write chunk

        def op(fs):
            J.Journal(self.path, fs=fs).compact(iter(live))

        for at, torn in self.cut_runs(op, lambda: write_bytes(self.path, base)):
            recs, problems = replay(self.path)
            self.assertEqual(problems, [], (at, torn))
            self.assertTrue(recs == RECORDS or recs == live, (at, torn))
            self.assertEqual(os.listdir(self.dir), ["journal"], (at, torn))


class PreallocPowerCutTest(PowerCutTest):
    prealloc = 40  # small steps, so the appends cross them
