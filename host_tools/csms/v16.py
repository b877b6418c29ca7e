"""OCPP 1.6J handlers of the bench CSMS (charge point -> CSMS CALLs)."""
import json

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Package16
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from firmware.ocpp import errors as E
from host_tools.csms import common
from host_tools.csms.logs import get_logger
from host_tools.csms.session import OcppSession, acknowledge
from host_tools.csms.storage import digest

log = get_logger("v16")


def _id_tag_info(status, parent, expiry):
    """idTagInfo as sent (camelCase keys pass the package's snake_to_camel unchanged)."""
    info = {"status": status}
    if parent:
        info["parentIdTag"] = parent
    if expiry:
        info["expiryDate"] = expiry
    return info


class ChargePoint16(OcppSession, Package16):
    VERSION = E.V16
    ACTIONS = frozenset(a.value for a in Action)
    LEDGER_ACTIONS = frozenset(("StartTransaction", "StopTransaction", "MeterValues"))

    def before_accepted(self, action):
        # 1.6 names no CSMS answer for it (C16 §4.2.1 only binds the charge
        # point): process it, and count and log the violation.
        self.storage.count_boot_violation(self.id)
        log.warning("%s sent %s while its boot status is %s (C16 §4.2.1)", self.id, action, self.boot_status)
        return None

    def _charger(self):
        return self.storage.get_charger(self.id)

    @on(Action.boot_notification, skip_schema_validation=True)
    def on_boot_notification(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        charger = self._charger()
        status = charger["boot_policy"]
        interval = charger["heartbeat_interval"] if status == "Accepted" else charger["retry_interval"]
        self.storage.record_boot(self.id, self.VERSION, {
            "vendor": p.get("chargePointVendor"), "model": p.get("chargePointModel"),
            "serial_number": p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
            "firmware_version": p.get("firmwareVersion")}, status)
        self.boot_status = status
        return call_result.BootNotification(current_time=self.now_iso(), interval=interval, status=status)

    @on(Action.heartbeat, skip_schema_validation=True)
    def on_heartbeat(self, **_):
        self.storage.touch(self.id)
        self.storage.commit()
        return call_result.Heartbeat(current_time=self.now_iso())

    @on(Action.status_notification, skip_schema_validation=True)
    def on_status_notification(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        self.storage.set_connector_status(self.id, 0, p["connectorId"], p["status"], p["errorCode"],
                                          p.get("info"), p.get("vendorId"), p.get("vendorErrorCode"),
                                          p.get("timestamp"))
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        return call_result.Authorize(id_tag_info=_id_tag_info(*common.authorize(self.storage, self._charger(),
                                                                                   p["idTag"])))

    @on(Action.start_transaction, skip_schema_validation=True)
    def on_start_transaction(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        st = self.storage
        connector, id_tag, ts, meter_start = p["connectorId"], p["idTag"], p["timestamp"], p["meterStart"]
        dup = st.find_start(self.id, connector, id_tag, ts, meter_start)
        if dup is not None:
            # Re-sent after a lost answer: the same transactionId (C16 §3.7 retries).
            st.bump(dup["id"], "start_duplicates")
            response = json.loads(dup["start_response"])
            st.append_ledger(self.id, call_unique_id, "StartTransaction", p, "duplicate_start", dup["id"], response)
            st.commit()
            return call_result.StartTransaction(transaction_id=dup["id"], id_tag_info=response["idTagInfo"])
        info = _id_tag_info(*common.authorize(st, self._charger(), id_tag))
        tx_id = st.create_transaction(charger_id=self.id, ocpp_version=self.VERSION, evse_id=0,
                                      connector_id=connector, id_tag=id_tag, id_tag_status=info["status"],
                                      meter_start=meter_start, start_time=ts, start_message_id=call_unique_id,
                                      reservation_id=p.get("reservationId"))
        response = {"transactionId": tx_id, "idTagInfo": info}
        st.update_transaction(tx_id, start_response=json.dumps(response))
        st.append_ledger(self.id, call_unique_id, "StartTransaction", p, "started", tx_id, response)
        st.commit()
        self.server.transaction_started(self.id, tx_id)
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info=info)

    @on(Action.stop_transaction, skip_schema_validation=True)
    def on_stop_transaction(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        st = self.storage
        reported = p["transactionId"]
        id_tag = p.get("idTag")
        info = _id_tag_info(*common.authorize(st, self._charger(), id_tag)) if id_tag else None
        response = {"idTagInfo": info} if info else {}
        d = digest("StopTransaction", p)
        tx = st.get_transaction(reported) if reported != -1 else None
        if tx is not None and tx["charger_id"] != self.id:
            tx = None
        if tx is None:
            seen = st.seen(self.id, d)
            if seen is not None and seen["transaction_id"] is not None:
                tx = st.get_transaction(seen["transaction_id"])
        rows = common.flatten_meter_values(p.get("transactionData"))
        stop = {"meter_stop": p["meterStop"], "stop_time": p["timestamp"], "stop_reason": p.get("reason", "Local"),
                "stop_message_id": call_unique_id, "stop_id_tag": id_tag}
        if tx is None:
            # Its StartTransaction never reached us: -1 when the charge point
            # gave it up (C16E §3.18, the CSMS accepts it), else an id unknown
            # here. Either way the energy is kept as an orphan session.
            outcome = "stop_minus_one" if reported == -1 else "stop_unknown"
            tx_id = st.create_transaction(charger_id=self.id, ocpp_version=self.VERSION, status="stopped",
                                          orphan=1, tx_key=str(reported), id_tag=id_tag, **stop)
        elif tx["status"] == "stopped":
            tx_id = tx["id"]
            same = tx["meter_stop"] == p["meterStop"] and tx["stop_time"] == p["timestamp"]
            outcome = "duplicate_stop" if same else "conflicting_stop"
            st.bump(tx_id, "stop_duplicates")
            rows = ()
        else:
            tx_id = tx["id"]
            outcome = "stopped"
            st.update_transaction(tx_id, status="stopped", **stop)
        seq = st.append_ledger(self.id, call_unique_id, "StopTransaction", p, outcome, tx_id, response,
                               message_digest=d)
        if rows:
            st.add_meter_values(self.id, tx_id, 0, tx["connector_id"] if tx else None, rows, seq)
        st.commit()
        if outcome == "stopped":
            self.server.transaction_stopped(tx_id)
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        reported = p.get("transactionId")
        tx = self.storage.get_transaction(reported) if reported not in (None, -1) else None
        tx_id = tx["id"] if tx is not None and tx["charger_id"] == self.id else None
        self.store_meter_values(call_unique_id, p, tx_id, 0, p["connectorId"])
        return call_result.MeterValues()


def _data_transfer():
    return call_result.DataTransfer(status="UnknownVendorId")


acknowledge(ChargePoint16, (
    (Action.data_transfer, _data_transfer),
    (Action.diagnostics_status_notification, call_result.DiagnosticsStatusNotification),
    (Action.firmware_status_notification, call_result.FirmwareStatusNotification),
    (Action.security_event_notification, call_result.SecurityEventNotification),
    (Action.log_status_notification, call_result.LogStatusNotification),
    (Action.signed_firmware_status_notification, call_result.SignedFirmwareStatusNotification),
))
