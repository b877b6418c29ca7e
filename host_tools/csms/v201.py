"""OCPP 2.0.1 handlers of the bench CSMS (charging station -> CSMS CALLs)."""
import json

from ocpp.routing import on
from ocpp.v201 import ChargePoint as Package201
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from firmware.ocpp import errors as E
from host_tools.csms import common
from host_tools.csms.session import OcppSession, acknowledge
from host_tools.csms.storage import digest

_DUPLICATE = {"Started": "duplicate_start", "Ended": "duplicate_stop"}


class ChargePoint201(OcppSession, Package201):
    VERSION = E.V201
    ACTIONS = frozenset(a.value for a in Action)
    LEDGER_ACTIONS = frozenset(("TransactionEvent", "MeterValues"))

    def before_accepted(self, action):
        # B02.FR.09 (Pending) and B03.FR.07 (Rejected): a CALL other than
        # BootNotification, not triggered by TriggerMessage, gets SecurityError.
        self.storage.count_boot_violation(self.id)
        return E.E_SECURITY, "Not accepted: boot status is %s" % self.boot_status, {}

    def _id_token_info(self, id_token):
        status, parent, expiry = common.authorize(self.storage, self.storage.get_charger(self.id),
                                                  id_token["idToken"], v16=False)
        info = {"status": status}
        if parent:
            info["groupIdToken"] = {"idToken": parent, "type": "Central"}
        if expiry:
            info["cacheExpiryDateTime"] = expiry
        return info

    @on(Action.boot_notification, skip_schema_validation=True)
    def on_boot_notification(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        station = p["chargingStation"]
        charger = self.storage.get_charger(self.id)
        status = charger["boot_policy"]
        interval = charger["heartbeat_interval"] if status == "Accepted" else charger["retry_interval"]
        self.storage.record_boot(self.id, self.VERSION, {
            "vendor": station.get("vendorName"), "model": station.get("model"),
            "serial_number": station.get("serialNumber"), "firmware_version": station.get("firmwareVersion")},
            status)
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
        self.storage.set_connector_status(self.id, p["evseId"], p["connectorId"], p["connectorStatus"],
                                          timestamp=p["timestamp"])
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    def on_authorize(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        return call_result.Authorize(id_token_info=self._id_token_info(p["idToken"]))

    @on(Action.transaction_event, skip_schema_validation=True)
    def on_transaction_event(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        st = self.storage
        event = p["eventType"]
        info = p["transactionInfo"]
        key = info["transactionId"]
        d = digest("TransactionEvent", p)
        seen = st.seen(self.id, d)
        if seen is not None:
            # (camelCase results pass the package's snake_to_camel unchanged.)
        # The same event re-sent after a lost answer (same seqNo, same content).
            response = seen["response"] and json.loads(seen["response"]) or {}
            if seen["transaction_id"] is not None and event in _DUPLICATE:
                st.bump(seen["transaction_id"], "start_duplicates" if event == "Started" else "stop_duplicates")
            st.append_ledger(self.id, call_unique_id, "TransactionEvent", p, _DUPLICATE.get(event, "duplicate"),
                             seen["transaction_id"], response, message_digest=d)
            st.commit()
            return call_result.TransactionEvent(id_token_info=response.get("idTokenInfo"))
        response = {}
        if p.get("idToken"):
            response["idTokenInfo"] = self._id_token_info(p["idToken"])
        rows = common.flatten_meter_values(p.get("meterValue"))
        evse = p.get("evse") or {}
        tx = st.find_transaction_by_key(self.id, key)
        id_tag = p["idToken"]["idToken"] if p.get("idToken") else None
        started = False
        if tx is None:
            tx_id = st.create_transaction(
                charger_id=self.id, ocpp_version=self.VERSION, tx_key=key, evse_id=evse.get("id"),
                connector_id=evse.get("connectorId"), id_tag=id_tag,
                id_tag_status=response["idTokenInfo"]["status"] if id_tag else None,
                meter_start=common.energy_wh(rows, "Transaction.Begin") if event == "Started"
                else common.energy_wh(rows),
                start_time=p["timestamp"] if event == "Started" else None,
                start_message_id=call_unique_id, orphan=0 if event == "Started" else 1,
                remote_start_id=info.get("remoteStartId"), reservation_id=p.get("reservationId"))
            tx = st.get_transaction(tx_id)
            started = True
            outcome = "started" if event == "Started" else "updated"
        else:
            tx_id = tx["id"]
            outcome = "updated"
            changes = {}
            if id_tag and not tx["id_tag"]:
                changes.update(id_tag=id_tag, id_tag_status=response["idTokenInfo"]["status"])
            if evse.get("id") and tx["evse_id"] is None:
                changes.update(evse_id=evse["id"], connector_id=evse.get("connectorId"))
            if changes:
                st.update_transaction(tx_id, **changes)
        stopped = False
        if event == "Ended":
            if tx["status"] == "stopped":
                outcome = "conflicting_stop"
                st.bump(tx_id, "stop_duplicates")
            else:
                outcome = "stopped" if not (started and tx["orphan"]) else "stop_unknown"
                meter_stop = common.energy_wh(rows, "Transaction.End")
                if meter_stop is None:
                    meter_stop = common.energy_wh(rows)
                st.update_transaction(tx_id, status="stopped", meter_stop=meter_stop, stop_time=p["timestamp"],
                                      stop_reason=info.get("stoppedReason", "Local"), stop_message_id=call_unique_id,
                                      stop_id_tag=id_tag)
                stopped = True
        seq = st.append_ledger(self.id, call_unique_id, "TransactionEvent", p, outcome, tx_id, response,
                               message_digest=d)
        if rows:
            st.add_meter_values(self.id, tx_id, evse.get("id") or tx["evse_id"],
                                evse.get("connectorId") or tx["connector_id"], rows, seq)
        st.commit()
        if started and event == "Started":
            self.server.transaction_started(self.id, tx_id)
        if stopped:
            self.server.transaction_stopped(tx_id)
        return call_result.TransactionEvent(id_token_info=response.get("idTokenInfo"))

    @on(Action.meter_values, skip_schema_validation=True)
    def on_meter_values(self, call_unique_id, **_):
        p = self.payload_of(call_unique_id)
        self.store_meter_values(call_unique_id, p, None, p["evseId"], None)
        return call_result.MeterValues()


def _data_transfer():
    return call_result.DataTransfer(status="UnknownVendorId")


acknowledge(ChargePoint201, (
    (Action.data_transfer, _data_transfer),
    (Action.notify_event, call_result.NotifyEvent),
    (Action.notify_report, call_result.NotifyReport),
    (Action.security_event_notification, call_result.SecurityEventNotification),
    (Action.firmware_status_notification, call_result.FirmwareStatusNotification),
    (Action.log_status_notification, call_result.LogStatusNotification),
))
