import unittest

from firmware import compat
from tests.support import FakeClock


class TicksWrap:
    # MicroPython-style ticks that wrap at 2**30.
    def __init__(self, start):
        self.t = start

    def __call__(self):
        return self.t


class MonotonicTest(unittest.TestCase):
    def test_counts_forward_from_zero(self):
        clock = FakeClock(5000)
        mono = compat.Monotonic(clock)
        self.assertEqual(mono.now(), 0)
        clock.advance(1234)
        self.assertEqual(mono.now(), 1234)

    @unittest.skipUnless(compat.IS_MICROPYTHON, "ticks wrap only on MicroPython")
    def test_survives_tick_wrap(self):
        period = compat.ticks_add(0, -1) + 1  # 2**30 on devices, more on unix
        t = TicksWrap(period - 10)
        mono = compat.Monotonic(t)
        t.t = 15  # wrapped: 25 ms later
        self.assertEqual(mono.now(), 25)


class JsonTest(unittest.TestCase):
    def test_dumps_is_compact_and_keeps_unicode(self):
        self.assertEqual(compat.json_dumps([2, "a", {"k": 1}]), '[2,"a",{"k":1}]')
        self.assertEqual(compat.json_loads(compat.json_dumps("é")), "é")


class TypesTest(unittest.TestCase):
    def test_bool_is_not_int(self):
        self.assertFalse(compat.is_int(True))
        self.assertTrue(compat.is_int(3))
        self.assertTrue(compat.is_number(2.5))
        self.assertFalse(compat.is_number(False))


class WaitEventTest(unittest.TestCase):
    def test_set_before_the_time_runs_out(self):
        import asyncio

        async def main():
            ev = asyncio.Event()
            got = []

            async def setter():
                await asyncio.sleep(0.01)
                ev.set()

            t = asyncio.create_task(setter())
            got.append(await compat.wait_event(ev, 5000))
            await t
            got.append(await compat.wait_event(ev, 0))  # already set: at once
            ev.clear()
            got.append(await compat.wait_event(ev, 20))  # nobody sets it
            return got

        self.assertEqual(asyncio.run(main()), [True, True, False])
