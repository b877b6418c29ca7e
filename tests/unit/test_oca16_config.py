# OCTT 1.6 Charge Point cases: configuration, authorization cache and data
# transfer (Core profile), and the cases of profiles this charger leaves out.
# Each test is named after the case it mirrors.
import unittest

from tests.unit.cpkit import Bench, booted

# C16 §9.1: the required Core keys and their accessibility (R, RW, or either).
REQUIRED_CORE = {
    "AuthorizeRemoteTxRequests": None,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnSampledData": False,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
}


def keyed(conf):
    out = {}
    for kv in conf[2]["configurationKey"]:
        out[kv["key"]] = kv
    return out


class ConfigurationCases(unittest.TestCase):
    def test_TC_019_CS_retrieve_configuration(self):
        """Retrieve configuration"""
        b = booted(connectors=2)
        # Step 2: SupportedFeatureProfiles, no unknown keys.
        conf = b.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]}, "g1")
        self.assertEqual(conf[2].get("unknownKey", []), [])
        profiles = keyed(conf)["SupportedFeatureProfiles"]["value"].split(",")
        self.assertEqual(sorted(profiles), ["Core", "RemoteTrigger"])
        # Step 4: every required key of the supported profiles, with the right accessibility.
        conf = b.call("GetConfiguration", {}, "g2")
        self.assertNotIn("unknownKey", conf[2])
        got = keyed(conf)
        for key in REQUIRED_CORE:
            self.assertIn(key, got)
            if REQUIRED_CORE[key] is not None:
                self.assertEqual(got[key]["readonly"], REQUIRED_CORE[key], key)
        self.assertEqual(got["NumberOfConnectors"]["value"], "2")
        for kv in conf[2]["configurationKey"]:
            self.assertLessEqual(len(kv["key"]), 50)
            if "value" in kv:
                self.assertLessEqual(len(kv["value"]), 500)
        # A write-only key is listed without its value (J16 §6.2.2).
        b.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"}, "c1")
        conf = b.call("GetConfiguration", {"key": ["AuthorizationKey"]}, "g3")
        self.assertEqual(conf[2]["configurationKey"], [{"key": "AuthorizationKey", "readonly": False}])
        # Step 6: specific keys, an unknown one reported as such.
        conf = b.call("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]}, "g4")
        self.assertEqual(conf[2], {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}], "unknownKey": ["NoSuchKey"]})

    def test_TC_019_CS_more_keys_than_get_configuration_max_keys(self):
        """Retrieve configuration (more keys than GetConfigurationMaxKeys: OccurenceConstraintViolation, 1.6 spelling)"""
        b = booted()
        limit = b.cp.config.get("GetConfigurationMaxKeys")
        conf = b.call("GetConfiguration", {"key": ["K%d" % i for i in range(limit + 1)]}, "g1")
        self.assertEqual(conf[:3], [4, "g1", "OccurenceConstraintViolation"])
        conf = b.call("GetConfiguration", {"key": ["K%d" % i for i in range(limit)]}, "g2")
        self.assertEqual(len(conf[2]["unknownKey"]), limit)

    def test_TC_021_CS_change_set_configuration(self):
        """Change/set Configuration"""
        b = booted(overrides={"MeterValueSampleInterval": 60})
        conf = b.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "15"}, "c1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        conf = b.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]}, "g1")
        self.assertEqual(conf[2]["configurationKey"], [{"key": "MeterValueSampleInterval", "readonly": False, "value": "15"}])
        # Persisted, and in effect for the next transaction.
        self.assertEqual(b.store.state.config["MeterValueSampleInterval"], 15)
        b.charging()
        b.take()
        b.meter_run(15000)
        self.assertEqual(len(b.calls("MeterValues")), 1)

    def test_TC_040_1_CS_configuration_key_not_supported(self):
        """Configuration key - NotSupported"""
        b = booted()
        conf = b.call("ChangeConfiguration", {"key": "Testing", "value": "true"}, "c1")
        self.assertEqual(conf[2], {"status": "NotSupported"})

    def test_TC_040_2_CS_configuration_key_invalid_value(self):
        """Configuration key - Invalid value"""
        b = booted()
        for key, value in (("MeterValueSampleInterval", "-1"), ("HeartbeatInterval", "abc"), ("LocalPreAuthorize", "maybe"), ("MeterValuesSampledData", "Energy.Bogus")):
            conf = b.call("ChangeConfiguration", {"key": key, "value": value}, "c-" + key)
            self.assertEqual(conf[2], {"status": "Rejected"}, key)
        # A read-only key cannot be set: Rejected (C16 §5.3: failure to set).
        conf = b.call("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "4"}, "c2")
        self.assertEqual(conf[2], {"status": "Rejected"})
        conf = b.call("GetConfiguration", {"key": ["MeterValueSampleInterval", "NumberOfConnectors"]}, "g1")
        got = keyed(conf)
        self.assertEqual((got["MeterValueSampleInterval"]["value"], got["NumberOfConnectors"]["value"]), ("60", "1"))
        self.assertEqual(b.store.state.config, {})


class CacheAndDataTransferCases(unittest.TestCase):
    def test_TC_061_CS_clear_authorization_data_in_cache(self):
        """Clear Authorization Data in Authorization Cache"""
        b = booted(overrides={"AuthorizationCacheEnabled": True, "LocalPreAuthorize": True, "ConnectionTimeOut": 20})
        b.authorized("TAG1")
        # Step 1: Preparing; the idTag is now in the cache.
        self.assertEqual(b.status_frames(), [(1, "Preparing", "NoError")])
        self.assertIn("TAG1", b.cp.cache.entries)
        self.assertIn("TAG1", b.store.state.cache)
        b.take()
        # Step 3: Available again after ConnectionTimeOut.
        b.advance(20000)
        b.settle()
        self.assertEqual(b.status_frames(), [(1, "Available", "NoError")])
        b.take()
        conf = b.call("ClearCache", {}, "c1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        self.assertEqual(b.cp.cache.entries, {})
        self.assertEqual(b.store.state.cache, {})
        # Step 7: the same card now needs an Authorize.req.
        b.take()
        b.card("TAG1")
        self.assertEqual(b.actions(), ["Authorize"])

    def test_TC_061_CS_cached_id_skips_authorize_before_clearing(self):
        """Clear Authorization Data in Authorization Cache (before the clear, LocalPreAuthorize uses the cache)"""
        b = booted(overrides={"AuthorizationCacheEnabled": True, "LocalPreAuthorize": True, "ConnectionTimeOut": 20})
        b.authorized("TAG1")
        b.advance(20000)
        b.settle()
        b.take()
        b.card("TAG1")
        self.assertEqual(b.actions(), ["StatusNotification"])

    def test_cache_entry_journaled_once_per_idtaginfo(self):
        """A session's Authorize, StartTransaction and StopTransaction answers
        repeat one idTagInfo: the cache entry goes to the journal once; a
        changed idTagInfo is journaled again and survives a reboot."""
        from firmware.store import records as R
        from firmware.store.journal import Journal

        def auth_records():
            j = Journal(b.dir + "/journal.bin", sync=False)
            return [r for r in j.replay(lambda p: None) if r[0] == R.K_AUTH]

        b = booted(overrides={"AuthorizationCacheEnabled": True})
        b.charging("TAG1")
        b.card("TAG1")
        b.settle()
        self.assertEqual(b.payloads("StopTransaction")[0]["idTag"], "TAG1")
        self.assertEqual([r[1:3] for r in auth_records()], [["TAG1", ["Accepted", None, None, 1]]])
        b.cp._cache_put("TAG1", {"status": "Blocked"})
        self.assertEqual([r[2][0] for r in auth_records()], ["Accepted", "Blocked"])
        b.reboot()
        self.assertEqual(b.cp.cache.lookup("TAG1", None), ("Blocked", None))

    def test_TC_062_CS_data_transfer_to_a_charge_point(self):
        """Data Transfer to a Charge Point"""
        b = booted()
        conf = b.call("DataTransfer", {"vendorId": "org.openchargealliance.octt", "messageId": "x"}, "d1")
        self.assertEqual(conf[2], {"status": "UnknownVendorId"})
        b.cp.vendors["com.example"] = {"ping": lambda data: ("Accepted", "pong:" + data)}
        conf = b.call("DataTransfer", {"vendorId": "com.example", "messageId": "nope"}, "d2")
        self.assertEqual(conf[2], {"status": "UnknownMessageId"})
        conf = b.call("DataTransfer", {"vendorId": "com.example", "messageId": "ping", "data": "1"}, "d3")
        self.assertEqual(conf[2], {"status": "Accepted", "data": "pong:1"})


class SecurityExtensionCases(unittest.TestCase):
    # OCPP 1.6 security whitepaper cases the core already covers.

    def test_TC_073_CS_update_charge_point_password_for_basic_auth(self):
        """Update Charge Point Password for HTTP Basic Authentication"""
        b = booted()
        conf = b.call("ChangeConfiguration", {"key": "AuthorizationKey", "value": "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"}, "c1")
        self.assertEqual(conf[2], {"status": "Accepted"})
        # The answer goes out on the old connection; then the new key and a reconnect.
        self.assertEqual(b.settings[-2:], [("authorization_key", "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"), ("reconnect", None)])

    def test_TC_084_CS_downgrade_security_profile_rejected(self):
        """Downgrade security profile - Rejected"""
        b = booted(overrides={"SecurityProfile": 2})
        conf = b.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "1"}, "c1")
        self.assertEqual(conf[2], {"status": "Rejected"})
        self.assertNotIn(("reconnect", None), b.settings)


class ProfilesLeftOutCases(unittest.TestCase):
    def test_TC_042_1_CS_get_local_list_version_not_supported(self):
        """Get Local List Version (not supported)"""
        b = booted()
        conf = b.call("GetLocalListVersion", {}, "l1")
        self.assertEqual(conf[:3], [4, "l1", "NotSupported"])

    def test_TC_060_CS_remote_start_with_non_tx_profile_rejected(self):
        """Remote Start Transaction with Charging Profile - Rejected"""
        b = booted()
        profile = {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]},
        }
        conf = b.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1, "chargingProfile": profile}, "r1")
        self.assertEqual(conf[2], {"status": "Rejected"})
