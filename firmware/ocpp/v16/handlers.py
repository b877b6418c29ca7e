# CSMS-initiated calls of the Core and RemoteTrigger profiles (OCPP 1.6).
#
# One function per action, `on_<action>(cp, payload) -> response payload`.
# The payload has been validated against the schema already (rpc.Endpoint);
# refusals the response schema can express are CALLRESULTs (J16 §4.2.2).
# Profiles this charger does not implement are simply absent: their actions
# are known to the schema table and so answered NotSupported.
from firmware.ocpp import rpc
from firmware.ocpp.errors import OcppError, E_OCCURRENCE
from firmware.ocpp.v16 import chargepoint as cpm

ACCEPTED = {"status": "Accepted"}
REJECTED = {"status": "Rejected"}


def on_change_availability(cp, p):
    # C16 §5.2: Scheduled when a transaction runs; kept across reboots (§4.9).
    cid = p["connectorId"]
    operative = p["type"] == "Operative"
    if cid < 0 or cid >= len(cp.connectors):
        return REJECTED
    targets = cp.connectors[1:] if cid == 0 else [cp.connectors[cid]]
    scheduled = False
    if cid == 0:
        cp.cp_operative = operative
        cp.store.set_availability(0, operative)
        cp._mark_status(0)
    for c in targets:
        if c.tx is not None and not operative:
            c.scheduled = False
            scheduled = True
            cp.store.set_availability(c.id, False)  # applies after a reboot too
        else:
            # A new request replaces a scheduled one; persisting it again
            # undoes the Inoperative already written for after a reboot.
            was = c.scheduled
            c.scheduled = None
            if c.operative != operative or cid == 0 or was is not None:
                cp._set_available(c, operative)
    return {"status": "Scheduled" if scheduled else "Accepted"}


def on_change_configuration(cp, p):
    key = p["key"]
    status, value, reason = cp.config.change(key, p["value"])
    if reason is not None:
        cp._event("config_rejected", {"key": key, "status": status, "reason": reason})
        return {"status": status}
    cp.store.set_config(key, value)
    _APPLY.get(key, _apply_nothing)(cp, key, value)
    cp._event("config_changed", {"key": key})
    return {"status": status}


def _apply_nothing(cp, key, value):
    pass


def _apply_timer(cp, key, value):
    if key == "ClockAlignedDataInterval":
        cp._schedule_aligned(cp.now)
    elif key == "MeterValueSampleInterval":
        for c in cp.connectors[1:]:
            if c.tx is not None:
                c.next_sample = cp.now + value * 1000 if value > 0 else None
    elif key == "MessageTimeout" and cp.ep is not None:
        cp.ep.timeout_ms = value * 1000


def _apply_setting(cp, key, value):
    # The new key/profile is used on a new connection, opened after this
    # answer went out (SEC16 A01: reconnect with the new AuthorizationKey).
    name = _SETTING_NAMES[key]
    cp.later.append((cpm.A_SETTING, name, value))
    if key != "WebSocketPingInterval":
        cp.later.append((cpm.A_RECONNECT,))


_SETTING_NAMES = {
    "WebSocketPingInterval": "ping_interval",
    "AuthorizationKey": "authorization_key",
    "SecurityProfile": "security_profile",
}
def _apply_queue(cp, key, value):
    cp.txq.configure(cp.config.get("TransactionMessageAttempts"), cp.config.get("TransactionMessageRetryInterval"))


_APPLY = {
    "TransactionMessageAttempts": _apply_queue,
    "TransactionMessageRetryInterval": _apply_queue,
    "ClockAlignedDataInterval": _apply_timer,
    "MeterValueSampleInterval": _apply_timer,
    "MessageTimeout": _apply_timer,
    "WebSocketPingInterval": _apply_setting,
    "AuthorizationKey": _apply_setting,
    "SecurityProfile": _apply_setting,
}


def on_get_configuration(cp, p):
    keys = p.get("key")
    limit = cp.config.get("GetConfigurationMaxKeys")
    if keys and len(keys) > limit:
        raise OcppError(E_OCCURRENCE, "more than GetConfigurationMaxKeys (%d) keys" % limit)
    known, unknown = cp.config.listing(keys)
    out = {"configurationKey": known}
    if unknown:
        out["unknownKey"] = unknown
    return out


def on_clear_cache(cp, p):
    cp.cache.clear()
    cp.store.set_auth(None, None)
    return ACCEPTED


def on_data_transfer(cp, p):
    # C16 §5.5: UnknownVendorId / UnknownMessageId.
    vendor = cp.vendors.get(p["vendorId"])
    if vendor is None:
        return {"status": "UnknownVendorId"}
    fn = vendor.get(p.get("messageId"))
    if fn is None:
        return {"status": "UnknownMessageId"}
    status, data = fn(p.get("data"))
    out = {"status": status}
    if data is not None:
        out["data"] = data
    return out


def on_remote_start_transaction(cp, p):
    # C16 §5.11: Accepted means the charger will try to start; with
    # AuthorizeRemoteTxRequests the idTag is authorized like a local start.
    if cp.boot != cpm.BOOT_ACCEPTED:
        return REJECTED  # Pending: no remote start/stop (C16 §4.2.1)
    cid = p.get("connectorId")
    if cid is not None and (cid < 1 or cid >= len(cp.connectors)):
        return REJECTED
    profile = p.get("chargingProfile")
    if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
        return REJECTED  # only a TxProfile may come with it (C16 §5.11)
    c = cp._pick_connector(cid)
    if c is None:
        return REJECTED
    id_tag = p["idTag"]
    if cp.config.get("AuthorizeRemoteTxRequests"):
        cp._authorize(id_tag, c.id, "remote", cp.now)
    else:
        cp._authorized(id_tag, c.id, "remote", "Accepted", None)
    return ACCEPTED


def on_remote_stop_transaction(cp, p):
    # C16 §5.12: a remote stop is a local stop with reason Remote.
    if cp.boot != cpm.BOOT_ACCEPTED:
        return REJECTED
    tx_id = p["transactionId"]
    for c in cp.connectors[1:]:
        if c.tx is not None and cp.store.state.transaction_id(c.tx.local_id) == tx_id:
            cp._stop(c, "Remote", cp.now, None)
            cp._unlock_after_stop(c)
            cp._status_changed(c, cp.now)
            return ACCEPTED
    return REJECTED


def on_reset(cp, p):
    # C16 §5.14: stop every transaction (reason SoftReset/HardReset) before
    # resetting; a soft reset waits for them to be delivered, a hard one
    # does not (they are persisted and sent after the reboot, C16E §3.36).
    hard = p["type"] == "Hard"
    reason = "HardReset" if hard else "SoftReset"
    for c in cp.connectors[1:]:
        if c.tx is not None:
            cp._stop(c, reason, cp.now, None)
            cp._status_changed(c, cp.now)
    cp.reset = [hard, cp.now + (0 if hard else cpm.SOFT_RESET_DRAIN_MS)]
    cp._event("reset_requested", {"type": p["type"]})
    return ACCEPTED


def on_unlock_connector(cp, p):
    # C16 §5.17: a running transaction is stopped first (UnlockCommand).
    cid = p["connectorId"]
    if cid < 1 or cid >= len(cp.connectors) or not cp.connectors[cid].has_lock:
        return {"status": "NotSupported"}
    c = cp.connectors[cid]
    c.held_by = None
    if c.tx is not None:
        cp._stop(c, "UnlockCommand", cp.now, None)
        cp._status_changed(c, cp.now)
    elif c.starting:
        # A start under way (cable locking, contactor closing): called off,
        # or a transaction would begin on a cable just released.
        cp.abort_start(c)
    cp.unlocks[cid] = (cp.ep.current_id, cp.now + cpm.UNLOCK_WAIT_MS)
    cp.later.append((cpm.A_LOCK, cid, False))
    return rpc.DEFER


_TRIGGERABLE = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification")


def on_trigger_message(cp, p):
    # C16 §5.17 (TriggerMessage): answer first, then send the message.
    what = p["requestedMessage"]
    cid = p.get("connectorId")
    if cid is not None and (cid < 0 or cid >= len(cp.connectors)):
        return REJECTED
    if what not in _TRIGGERABLE:
        return {"status": "NotImplemented"}  # Diagnostics/Firmware status: no FirmwareManagement
    if what == "StatusNotification":
        for i in ([cid] if cid is not None else range(len(cp.connectors))):
            cp.triggered.append((what, i, None, None))
    elif what == "MeterValues":
        # Accepted promises the message (C16 §5.17); without a fresh meter
        # reading there is nothing to send, so the answer is Rejected
        # ("will not be sent", C16 §7.46 TriggerMessageStatus).
        ready = [i for i in ([cid] if cid else range(1, len(cp.connectors))) if cp.meter_values_now(i, cp.now)]
        if not ready:
            return REJECTED
        for i in ready:
            cp.triggered.append((what, i, "Trigger", None))
    else:
        cp.triggered.append((what, cid, None, None))
    return ACCEPTED


HANDLERS = {
    "ChangeAvailability": on_change_availability,
    "ChangeConfiguration": on_change_configuration,
    "ClearCache": on_clear_cache,
    "DataTransfer": on_data_transfer,
    "GetConfiguration": on_get_configuration,
    "RemoteStartTransaction": on_remote_start_transaction,
    "RemoteStopTransaction": on_remote_stop_transaction,
    "Reset": on_reset,
    "UnlockConnector": on_unlock_connector,
    "TriggerMessage": on_trigger_message,
}


def bind(cp):
    """{action: fn(payload)} for one charge point."""
    out = {}
    for action in HANDLERS:
        out[action] = _bound(HANDLERS[action], cp)
    return out


def _bound(fn, cp):
    return lambda payload: fn(cp, payload)
