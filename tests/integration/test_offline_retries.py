"""Retries of transaction-related messages (C16 §3.7; §4.8 and §4.10 for a
missing StartTransaction.conf / StopTransaction.conf; C16E §3.18 for -1)
with the real agent and its journal against a Central System on the `ocpp`
package, on an injected clock: every try is checked at the millisecond it
is due and one millisecond before.

OCTT 1.6 has no case for these rules; the scenarios follow the 2.0.1 cases
TC_E_50_CS (retry until the attempts are spent) and TC_E_51_CS (success
before the last attempt) with 1.6 messages and keys:
TransactionMessageAttempts 3, TransactionMessageRetryInterval 60 s, so tries
at 0 s, 60 s and 180 s after the first failure's try, then given up.
"""
import asyncio

from tests.integration.offline_kit import FIRST_TX_ID, Csms, Rig, payload
from tests.integration.test_offline_flows import booted, charging

NO_SAMPLES = {"MeterValueSampleInterval": 0}


def run(coro):
    asyncio.run(coro)


async def answered(csms, rig, action, n):
    """The n-th CALL of action has arrived and its answer (or its swallowing)
    has been taken in by the agent."""
    calls = await csms.wait_calls(action, n)
    msg_id = calls[n - 1]["msg"][1]
    await csms.wait(lambda: csms.answer_to(msg_id) is not None or msg_id in csms.swallowed)
    if msg_id not in csms.swallowed:
        await rig.settle()
    return calls[n - 1]


def tries(rig, action):
    """CALL frames of action the agent's core produced so far (seen as they are made)."""
    return rig.frames("tx", action)


def test_callerror_retried_with_growing_gaps_then_parked(tmp_path):
    """A StopTransaction answered with CALLERROR every time: tries at
    t0, t0+60 s, t0+180 s, each with a fresh messageId and the same payload;
    after the third it leaves the send queue, parked in the journal for
    export, and what was queued behind it goes at once."""

    async def main():
        csms, rig = await booted(tmp_path, NO_SAMPLES)
        await charging(csms, rig)
        csms.errors["StopTransaction"] = 99
        rig.present()
        t0 = rig.mono.t
        await answered(csms, rig, "StopTransaction", 1)
        for due in (60000, 180000):
            n = len(tries(rig, "StopTransaction"))
            rig.at(t0 + due - 1)
            assert len(tries(rig, "StopTransaction")) == n, "retried before TransactionMessageRetryInterval x %d" % n
            rig.at(t0 + due)
            assert len(tries(rig, "StopTransaction")) == n + 1
            await answered(csms, rig, "StopTransaction", n + 1)
        parked = await rig.wait_event("message_parked", action="StopTransaction")
        rig.advance(3600 * 1000, step_ms=60000)
        calls = csms.calls("StopTransaction")
        assert len(calls) == 3 and len(tries(rig, "StopTransaction")) == 3
        assert [c["fake"] for c in calls] == [t0, t0 + 60000, t0 + 180000]
        assert len(set(c["msg"][1] for c in calls)) == 3  # a fresh messageId per try
        assert all(payload(c) == payload(calls[0]) for c in calls)
        assert payload(calls[0])["transactionId"] == FIRST_TX_ID
        # Parked, never lost: exportable with the transactionId it would carry.
        (seq, action, exported, local, attempts), = rig.agent.txq.parked()
        assert (seq, action, attempts) == (parked["seq"], "StopTransaction", 3)
        assert exported["transactionId"] == FIRST_TX_ID and exported["meterStop"] == payload(calls[0])["meterStop"]
        assert rig.agent.console_queue({})["parked"] == 1
        assert rig.agent.store.state.order == []
        # The queue is not blocked: the next session's Start goes at once.
        rig.unplug()
        await charging(csms, rig)
        assert payload(csms.calls("StartTransaction")[-1])["connectorId"] == 1
        await rig.stop()
        # The parked Stop survives a restart of the agent.
        await rig.start()
        assert [p[0] for p in rig.agent.txq.parked()] == [seq]
        await rig.stop()
        await csms.stop()

    run(main())


def test_callerror_then_success_before_the_last_attempt(tmp_path):
    """A MeterValues answered with CALLERROR once: the second try, 60 s
    later with a fresh messageId, is accepted; the samples behind it wait
    for it and then follow in order."""

    async def main():
        csms, rig = await booted(tmp_path, {"MeterValueSampleInterval": 10})
        await charging(csms, rig)
        t_start = rig.mono.t
        csms.errors["MeterValues"] = 1
        rig.at(t_start + 10000)
        await answered(csms, rig, "MeterValues", 1)
        rig.advance(50000, step_ms=1000)  # five more samples queue behind the failed one
        assert len(tries(rig, "MeterValues")) == 1
        rig.at(t_start + 10000 + 60000)
        await csms.wait_calls("MeterValues", 8)  # samples at 10 s ... 70 s, the first one twice
        await rig.settle()
        calls = csms.calls("MeterValues")
        first, retry = calls[0], calls[1]
        assert payload(first) == payload(retry) and first["msg"][1] != retry["msg"][1]
        assert retry["fake"] == t_start + 70000
        stamps = [payload(c)["meterValue"][0]["timestamp"] for c in calls[1:]]
        assert stamps == sorted(stamps) and len(set(stamps)) == 7
        assert rig.agent.txq.parked() == [] and rig.agent.store.state.order == []
        assert rig.agent.txq.counters["retried"] == 1
        await rig.stop()
        await csms.stop()

    run(main())


def test_no_answer_times_out_retries_then_stop_carries_minus_one(tmp_path):
    """StartTransaction never answered on a live connection: each try times
    out after MessageTimeout (30 s) and counts as a failed try (C16 §4.8);
    tries at t0, t0+90 s (30 s + 60 s), t0+240 s (+30 s + 120 s); given up
    at t0+270 s. The StopTransaction queued meanwhile then goes with
    transactionId -1 (C16E §3.18)."""

    async def main():
        csms, rig = await booted(tmp_path, NO_SAMPLES)
        csms.no_answer["StartTransaction"] = 3
        rig.plug_and_charge()
        await answered(csms, rig, "StartTransaction", 1)
        t0 = csms.calls("StartTransaction")[0]["fake"]
        # Try 1 times out at t0+30 s; try 2 is due 60 s later.
        rig.at(t0 + 89999)
        assert len(tries(rig, "StartTransaction")) == 1
        rig.at(t0 + 90000)
        assert len(tries(rig, "StartTransaction")) == 2
        await answered(csms, rig, "StartTransaction", 2)
        rig.present()  # the driver ends the session meanwhile: its Stop queues behind the Start
        # Try 2 times out at t0+120 s; try 3 is due 120 s later.
        rig.at(t0 + 239999)
        assert len(tries(rig, "StartTransaction")) == 2 and csms.calls("StopTransaction") == []
        rig.at(t0 + 240000)
        assert len(tries(rig, "StartTransaction")) == 3
        await answered(csms, rig, "StartTransaction", 3)
        rig.at(t0 + 270000 - 1)
        assert csms.calls("StopTransaction") == []
        rig.at(t0 + 270000)  # the third try times out: given up
        parked = await rig.wait_event("message_parked", action="StartTransaction")
        stop = payload((await csms.wait_calls("StopTransaction", 1))[0])
        assert stop["transactionId"] == -1 and stop["reason"] == "Local"
        starts = csms.calls("StartTransaction")
        assert [c["fake"] for c in starts] == [t0, t0 + 90000, t0 + 240000]
        assert len(set(c["msg"][1] for c in starts)) == 3
        assert csms.swallowed == [c["msg"][1] for c in starts]
        assert rig.agent.txq.counters["timeouts"] == 3
        assert rig.agent.txq.counters["duplicates_possible"] == 2  # the CSMS may have had each try
        assert [p[1] for p in rig.agent.txq.parked()] == ["StartTransaction"] and parked["seq"] == rig.agent.txq.parked()[0][0]
        await rig.stop()
        await csms.stop()

    run(main())


def test_offline_spends_no_tries_and_a_cut_gives_the_try_back(tmp_path):
    """A failed try, then the CSMS goes away for an hour: no try is spent
    offline. Back online the retry goes at once (its wait is over); its
    connection is cut with the CALL in flight, which gives that try back:
    the resend after reconnecting (fresh messageId) is still the second
    try, and a CALLERROR to it leads to a third try 120 s later."""

    async def main():
        csms, rig = await booted(tmp_path, NO_SAMPLES)
        await charging(csms, rig)
        csms.errors["StopTransaction"] = 1
        rig.present()
        await answered(csms, rig, "StopTransaction", 1)
        await csms.stop()
        await rig.wait_offline()
        frames = len(tries(rig, "StopTransaction"))
        rig.advance(3600 * 1000, step_ms=30000)
        assert len(tries(rig, "StopTransaction")) == frames
        csms.hold["StopTransaction"] = asyncio.Event()  # never set: no answer on this connection
        await csms.start()
        await rig.wait_online()
        await csms.wait_calls("StopTransaction", 2)
        del csms.hold["StopTransaction"]
        csms.errors["StopTransaction"] = 1
        await csms.cut()
        await rig.wait_offline()
        await rig.wait_online()
        third = await answered(csms, rig, "StopTransaction", 3)
        t = third["fake"]
        rig.at(t + 120000 - 1)
        assert len(csms.calls("StopTransaction")) == 3
        rig.at(t + 120000)
        await answered(csms, rig, "StopTransaction", 4)
        calls = csms.calls("StopTransaction")
        assert len(set(c["msg"][1] for c in calls)) == 4
        assert all(payload(c) == payload(calls[0]) for c in calls)
        assert rig.agent.txq.parked() == [] and rig.agent.store.state.order == []
        assert rig.agent.txq.counters["disconnects"] == 1
        await rig.stop()
        await csms.stop()

    run(main())
