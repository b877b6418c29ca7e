"""Hardware faults end to end: the emulator (host board: the real drivers on
simulated pins, the meter over Modbus RTU through a pty from pymodbus) against
a CSMS written on the `ocpp` package. Each fault is injected from the bench
console, and the test checks the StatusNotification frames the CSMS received,
the sessions the agent stopped or refused, and the clearing.

C16 §7.6 (ChargePointErrorCode), §4.9 (an error code with a status other than
Faulted is a warning), firmware/hw/status.py (which faults are Faulted)."""

import pytest

from tests.integration.agentkit import ThreadLoop, emulator, until, wait_event
from tests.integration.ocpp_csms import Csms, wait_connected

CP = "CP-FAULTS"
TAG = "04A2B3C4D5"  # known to the CSMS; a card UID, so it goes through the PN532
OTHER_CARD = "0A0B0C0D"
REFUSED_AT_START = "0B0B0B0B"  # Authorize Accepted, StartTransaction.conf Invalid


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    tl = ThreadLoop()
    csms = tl.run(Csms([TAG, OTHER_CARD, REFUSED_AT_START], refused_at_start=[REFUSED_AT_START]).start())
    args = ["--csms", csms.url, "--id", CP, "--state-dir", str(tmp / "state"), "--console", "tcp:127.0.0.1:0",
            "--set", "MeterValueSampleInterval=1"]  # fmt: skip
    proc = emulator(args, str(tmp / "emulator.log"))
    try:
        con = proc.console(proc.console_url())
        tl.run(wait_connected(csms, CP))
        until(lambda: con.cmd("status")["boot"] == "accepted", what="the boot")
        yield tl, csms, con, proc
    finally:
        proc.stop()
        tl.run(csms.stop())
        tl.close()


@pytest.fixture
def cp(bench):
    """Each test starts with no fault, no EV and connector 1 Available."""
    tl, csms, con, proc = bench
    for fault in ("weld", "meter", "lock", "reader"):
        con.cmd("clear " + fault)
    set_plug(con, False)

    def idle():
        c = con.cmd("status")["connectors"][0]
        return c["status"] == "Available" and c["errorCode"] == "NoError" and "transaction" not in c

    until(idle, what="an idle connector")
    con.events.clear()
    try:
        yield tl, csms, con
    except BaseException:
        print(proc.tail())
        raise


def set_plug(con, plugged):
    """Plug or unplug the simulated EV and wait until the agent has seen it:
    the pilot driver wants two agreeing samples, so a quick unplug-plug
    would otherwise be no unplug at all."""
    con.cmd("plug" if plugged else "unplug")
    until(lambda: con.cmd("status")["connectors"][0]["plugged"] is plugged, what="the pilot reading plugged=%s" % plugged)


def start_session(csms, con):
    """Plug, card, charge: returns the StartTransaction the CSMS received."""
    m = csms.mark()
    set_plug(con, True)
    con.cmd("card " + TAG)
    start = csms.wait_for("StartTransaction", after=m, idTag=TAG)
    con.cmd("charge")
    csms.wait_for("StatusNotification", after=m, connectorId=1, status="Charging")
    return start


def _energies(meter_values):
    out = []
    for mv in meter_values:
        for sv in mv["meterValue"][0]["sampledValue"]:
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                out.append(float(sv["value"]))
    return out


def tx_id(csms):
    return csms.started[-1]


def test_weld_faults_the_idle_connector_refuses_sessions_and_clears(cp):
    tl, csms, con = cp
    m = csms.mark()
    con.cmd("fault weld")  # contacts closed while commanded open
    csms.wait_for("StatusNotification", after=m, connectorId=1, status="Faulted", errorCode="PowerSwitchFailure")
    set_plug(con, True)
    con.cmd("card " + TAG)
    wait_event(con, "card_rejected", idTag=TAG)
    assert tl.run(csms.remote_start(CP, TAG)) == "Rejected"
    assert csms.after(m, "StartTransaction") == [] and csms.after(m, "Authorize") == []
    m2 = csms.mark()
    con.cmd("clear weld")  # the auxiliary contact reads open again
    csms.wait_for("StatusNotification", after=m2, connectorId=1, status="Preparing", errorCode="NoError")
    con.cmd("card " + TAG)  # now a session starts
    csms.wait_for("StartTransaction", after=m2, idTag=TAG)
    con.cmd("stop")
    csms.wait_for("StopTransaction", after=m2, reason="Local")


def test_weld_at_the_end_of_a_session_faults_instead_of_finishing(cp):
    tl, csms, con = cp
    start_session(csms, con)
    con.cmd("fault weld")  # welded shut while carrying current: seen when it must open
    m = csms.mark()
    assert tl.run(csms.remote_stop(CP, tx_id(csms))) == "Accepted"
    stop = csms.wait_for("StopTransaction", after=m, reason="Remote")
    assert stop["transactionId"] == tx_id(csms)
    csms.wait_for("StatusNotification", after=m, connectorId=1, status="Faulted", errorCode="PowerSwitchFailure")
    assert csms.statuses(after=m, connector=1)[-1] == (1, "Faulted", "PowerSwitchFailure")
    assert (1, "Available", "NoError") not in csms.statuses(after=m)
    assert tl.run(csms.remote_start(CP, TAG)) == "Rejected"  # no new session until cleared
    m2 = csms.mark()
    con.cmd("clear weld")
    set_plug(con, False)
    csms.wait_for("StatusNotification", after=m2, connectorId=1, status="Available", errorCode="NoError")


def test_weld_while_a_session_is_suspended_stops_it(cp):
    tl, csms, con = cp
    # StopTransactionOnInvalidId false: a session the CSMS refuses after the
    # fact goes on, SuspendedEVSE with the contactor open (C16 §4.8).
    con.cmd("set StopTransactionOnInvalidId false")
    try:
        m = csms.mark()
        set_plug(con, True)
        con.cmd("card " + REFUSED_AT_START)
        csms.wait_for("StartTransaction", after=m, idTag=REFUSED_AT_START)
        con.cmd("charge")
        csms.wait_for("StatusNotification", after=m, connectorId=1, status="SuspendedEVSE")
        m2 = csms.mark()
        con.cmd("fault weld")  # the open contactor's contacts weld shut: seen at once
        csms.wait_for("StatusNotification", after=m2, connectorId=1, status="Faulted", errorCode="PowerSwitchFailure")
        stop = csms.wait_for("StopTransaction", after=m2, reason="Other")
        assert stop["transactionId"] == tx_id(csms)
        assert tl.run(csms.remote_start(CP, TAG)) == "Rejected"
    finally:
        con.cmd("set StopTransactionOnInvalidId true")


def test_meter_loss_stops_the_session_refuses_new_ones_and_never_sends_stale_values(cp):
    tl, csms, con = cp
    start_session(csms, con)
    m0 = csms.mark()
    until(lambda: [e for e in _energies(csms.after(m0, "MeterValues")) if e >= 1], what="energy flowing")
    sent = _energies(csms.after(m0, "MeterValues"))
    cut = con.cmd("fault meter")["sim"]  # the RS-485 line goes quiet
    m = csms.mark()
    csms.wait_for("StatusNotification", after=m, connectorId=1, status="Faulted", errorCode="PowerMeterFailure")
    stop = csms.wait_for("StopTransaction", after=m, reason="Other")
    # meterStop is the last reading the meter gave: no older than what was
    # sampled, no newer than the register at the cut (the simulated meter
    # only counts when it is read), never an estimate.
    assert max(sent) <= stop["meterStop"] <= cut["energy_wh"] + 0.5
    # After the cut, only samples taken before the first failed read (one
    # meter period, plus the sample interval) may go out; none after the stop.
    after_cut = csms.after(m, "MeterValues")
    assert len(after_cut) <= 2
    calls = csms.calls[m:]
    stop_at = [i for i, c in enumerate(calls) if c[1] == "StopTransaction"][0]
    assert [c for c in calls[stop_at:] if c[1] == "MeterValues"] == []
    assert all(e <= stop["meterStop"] for e in _energies(after_cut))
    # Refused while the meter is lost: no billing without a meter.
    set_plug(con, False)
    set_plug(con, True)
    con.cmd("card " + TAG)
    wait_event(con, "card_rejected", idTag=TAG)
    assert tl.run(csms.remote_start(CP, TAG)) == "Rejected"
    assert csms.after(m, "StartTransaction") == []
    m2 = csms.mark()
    con.cmd("clear meter")
    csms.wait_for("StatusNotification", after=m2, connectorId=1, status="Preparing", errorCode="NoError")


def test_lock_failure_faults_the_connector_and_no_session_starts(cp):
    tl, csms, con = cp
    m = csms.mark()
    con.cmd("fault lock")  # the actuator does not move
    set_plug(con, True)
    con.cmd("card " + TAG)
    wait_event(con, "start_failed", why="connector lock failed")
    csms.wait_for("StatusNotification", after=m, connectorId=1, status="Faulted", errorCode="ConnectorLockFailure")
    assert csms.after(m, "StartTransaction") == []
    assert con.cmd("status")["connectors"][0]["relay"] is False  # never energised
    m2 = csms.mark()
    con.cmd("clear lock")
    set_plug(con, False)  # the failed insertion is over
    csms.wait_for("StatusNotification", after=m2, connectorId=1, status="Available", errorCode="NoError")
    set_plug(con, True)
    con.cmd("card " + TAG)  # the lock works again: a session starts
    csms.wait_for("StartTransaction", after=m2, idTag=TAG)
    con.cmd("stop")
    csms.wait_for("StopTransaction", after=m2, reason="Local")


def test_reader_failure_is_a_warning_on_connector_0_cards_ignored_remote_start_works(cp):
    tl, csms, con = cp
    m = csms.mark()
    con.cmd("fault reader")  # the PN532 stops answering
    csms.wait_for("StatusNotification", after=m, connectorId=0, status="Available", errorCode="ReaderFailure")
    set_plug(con, True)
    assert con.cmd("card " + OTHER_CARD)["via"] == "reader"
    # The card is taken away after a moment; until then nothing reads it.
    until(lambda: con.cmd("plug")["sim"]["card"] is None, what="the card taken away")
    assert csms.after(m, "Authorize") == []
    assert [e for e in con.events if e["event"] in ("authorized", "card_rejected")] == []
    assert tl.run(csms.remote_start(CP, TAG)) == "Accepted"
    csms.wait_for("StartTransaction", after=m, idTag=TAG)
    assert (1, "Faulted") not in [s[:2] for s in csms.statuses(after=m)]
    m2 = csms.mark()
    con.cmd("clear reader")
    csms.wait_for("StatusNotification", after=m2, connectorId=0, status="Available", errorCode="NoError")
    con.cmd("card " + TAG)  # cards are read again: the owner's card ends the session
    csms.wait_for("StopTransaction", after=m2, reason="Local", idTag=TAG)
