"""Storage of the bench CSMS behind a small interface; SQLite by default.

Everything the OCPP handlers and the HTTP API keep goes through `Storage`
methods taking and returning plain dicts (camelCase keys are never stored).
The SQL is plain SQL-92 with `?` parameters and one connection, so another
DB-API database can take over by subclassing `SqlStorage` with its own
`connect()` and, where its dialect differs, `SCHEMA`.

Tables: chargers, connectors (status and error code per EVSE/connector; 1.6
connectors use evse_id 0), id_tags (per charger, '*' for every charger),
transactions (sessions), meter_values (one row per sampled value), and
ledger: an append-only record of every transaction message received, with
its messageId, the transaction it touched and its outcome (see OUTCOMES).
"""
import hashlib
import json
import sqlite3

from host_tools.csms.logs import utc_now_iso

# Ledger outcomes. Harnesses reconcile on these.
OUTCOMES = (
    "started",                 # StartTransaction / TransactionEvent Started opened a transaction
    "duplicate_start",         # same connector+idTag+timestamp+meterStart again: same transactionId
    "stopped",                 # StopTransaction / TransactionEvent Ended closed a transaction
    "duplicate_stop",          # stop of an already stopped transaction, same meterStop and time
    "conflicting_stop",        # stop of an already stopped transaction, other meterStop or time
    "stop_unknown",            # stop of a transactionId never seen: kept as an orphan session
    "stop_minus_one",          # stop with transactionId -1 (C16E §3.18): kept as an orphan session
    "updated",                 # TransactionEvent Updated
    "meter_values",            # MeterValues stored
    "duplicate",               # the same message (same payload) seen before: not stored again
    "invalid",                 # failed validation; answered with a CALLERROR
    "fault",                   # answered (or not) by fault injection without processing
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS chargers (
    id TEXT PRIMARY KEY,
    ocpp_version TEXT,
    vendor TEXT, model TEXT, serial_number TEXT, firmware_version TEXT,
    boot_policy TEXT NOT NULL DEFAULT 'Accepted',
    heartbeat_interval INTEGER NOT NULL DEFAULT 60,
    retry_interval INTEGER NOT NULL DEFAULT 10,
    boot_status TEXT,
    boot_count INTEGER NOT NULL DEFAULT 0,
    password TEXT,
    authorize_unknown INTEGER NOT NULL DEFAULT 0,
    connected INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT, last_seen TEXT, last_boot TEXT, boot_violations INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS connectors (
    charger_id TEXT NOT NULL,
    evse_id INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status TEXT, error_code TEXT, info TEXT, vendor_id TEXT, vendor_error_code TEXT,
    timestamp TEXT, updated_at TEXT,
    PRIMARY KEY (charger_id, evse_id, connector_id)
);
CREATE TABLE IF NOT EXISTS id_tags (
    charger_id TEXT NOT NULL,
    id_tag TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id_tag TEXT,
    expiry_date TEXT,
    PRIMARY KEY (charger_id, id_tag)
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charger_id TEXT NOT NULL,
    ocpp_version TEXT,
    evse_id INTEGER, connector_id INTEGER,
    tx_key TEXT,
    id_tag TEXT, id_tag_status TEXT,
    meter_start NUMERIC, start_time TEXT, start_message_id TEXT,
    meter_stop NUMERIC, stop_time TEXT, stop_reason TEXT, stop_message_id TEXT, stop_id_tag TEXT,
    status TEXT NOT NULL,
    owner TEXT, remote_start_id INTEGER, reservation_id INTEGER,
    orphan INTEGER NOT NULL DEFAULT 0,
    start_duplicates INTEGER NOT NULL DEFAULT 0,
    stop_duplicates INTEGER NOT NULL DEFAULT 0,
    start_response TEXT,
    stop_requested_at TEXT, created_at TEXT, updated_at TEXT
);
CREATE INDEX IF NOT EXISTS transactions_by_charger ON transactions (charger_id, status);
CREATE INDEX IF NOT EXISTS transactions_by_key ON transactions (charger_id, tx_key);
CREATE INDEX IF NOT EXISTS transactions_by_start
    ON transactions (charger_id, connector_id, id_tag, start_time, meter_start);
CREATE TABLE IF NOT EXISTS meter_values (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charger_id TEXT NOT NULL,
    transaction_id INTEGER,
    evse_id INTEGER, connector_id INTEGER,
    timestamp TEXT, value, measurand TEXT, phase TEXT, unit TEXT, multiplier INTEGER,
    context TEXT, location TEXT, format TEXT, signed TEXT,
    ledger_seq INTEGER
);
CREATE INDEX IF NOT EXISTS meter_values_by_tx ON meter_values (transaction_id);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    charger_id TEXT NOT NULL,
    message_id TEXT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    digest TEXT,
    transaction_id INTEGER,
    outcome TEXT NOT NULL,
    fault TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS ledger_by_digest ON ledger (charger_id, digest);
"""

_CHARGER_SETTINGS = ("boot_policy", "heartbeat_interval", "retry_interval", "password", "authorize_unknown")


def digest(action, payload):
    """Digest of a message's action and payload, independent of key order."""
    text = action + json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _row(cursor, row):
    return {d[0]: row[i] for i, d in enumerate(cursor.description)}


class Storage:
    """The interface the handlers and the API use (SqlStorage implements it):

    chargers: ensure_charger, get_charger, list_chargers, update_charger,
      record_boot, set_connected, mark_all_disconnected, touch,
      count_boot_violation
    connectors: set_connector_status, list_connectors
    id tags: set_id_tags, list_id_tags, find_id_tag
    transactions: create_transaction, update_transaction, bump,
      get_transaction, find_transaction_by_key, find_start, list_transactions,
      active_transactions
    meter values: add_meter_values, meter_values
    ledger: seen, append_ledger, ledger, ledger_counts
    units of work: commit, rollback_if_open, close
    Rows are dicts keyed by column name.
    """


class SqlStorage(Storage):
    SCHEMA = SCHEMA

    def __init__(self, path):
        self.path = path
        self.db = self.connect(path)
        self.db.row_factory = _row
        self.db.executescript(self.SCHEMA)
        self.db.commit()

    def connect(self, path):
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------
    def _one(self, sql, args=()):
        return self.db.execute(sql, args).fetchone()

    def _all(self, sql, args=()):
        return self.db.execute(sql, args).fetchall()

    def _write(self, sql, args=()):
        cur = self.db.execute(sql, args)
        self.db.commit()
        return cur

    def commit(self):
        self.db.commit()

    def rollback_if_open(self):
        """Undo writes left uncommitted (by a handler that failed); True if any."""
        if self.db.in_transaction:
            self.db.rollback()
            return True
        return False

    def close(self):
        self.db.close()

    # -- chargers -------------------------------------------------------
    def ensure_charger(self, charger_id, defaults=None):
        """The charger's row, created with `defaults` (settings) if new."""
        row = self.get_charger(charger_id)
        if row is not None:
            return row
        values = {"id": charger_id, "first_seen": utc_now_iso()}
        for k, v in (defaults or {}).items():
            if k in _CHARGER_SETTINGS and v is not None:
                values[k] = v
        cols = sorted(values)
        self._write("INSERT INTO chargers (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
                    [values[c] for c in cols])
        return self.get_charger(charger_id)

    def get_charger(self, charger_id):
        return self._one("SELECT * FROM chargers WHERE id = ?", (charger_id,))

    def list_chargers(self):
        return self._all("SELECT * FROM chargers ORDER BY id")

    def update_charger(self, charger_id, **fields):
        cols = sorted(fields)
        if not cols:
            return
        self._write("UPDATE chargers SET %s WHERE id = ?" % ", ".join("%s = ?" % c for c in cols),
                    [fields[c] for c in cols] + [charger_id])

    def record_boot(self, charger_id, version, info, status):
        """A BootNotification answered with `status`; info: vendor, model, serial_number,
        firmware_version."""
        now = utc_now_iso()
        self.db.execute(
            "UPDATE chargers SET ocpp_version = ?, vendor = ?, model = ?, serial_number = ?, "
            "firmware_version = ?, boot_status = ?, boot_count = boot_count + 1, last_boot = ?, "
            "last_seen = ? WHERE id = ?",
            (version, info.get("vendor"), info.get("model"), info.get("serial_number"),
             info.get("firmware_version"), status, now, now, charger_id))
        self.db.commit()

    def set_connected(self, charger_id, connected, version=None):
        now = utc_now_iso()
        if version is not None:
            self._write("UPDATE chargers SET connected = ?, ocpp_version = ?, last_seen = ? WHERE id = ?",
                        (1 if connected else 0, version, now, charger_id))
        else:
            self._write("UPDATE chargers SET connected = ?, last_seen = ? WHERE id = ?",
                        (1 if connected else 0, now, charger_id))

    def mark_all_disconnected(self):
        """At start-up: no charger is connected yet."""
        self._write("UPDATE chargers SET connected = 0 WHERE connected <> 0")

    def touch(self, charger_id):
        self.db.execute("UPDATE chargers SET last_seen = ? WHERE id = ?", (utc_now_iso(), charger_id))

    def count_boot_violation(self, charger_id):
        self._write("UPDATE chargers SET boot_violations = boot_violations + 1 WHERE id = ?", (charger_id,))

    # -- connectors -----------------------------------------------------
    def set_connector_status(self, charger_id, evse_id, connector_id, status, error_code=None, info=None,
                             vendor_id=None, vendor_error_code=None, timestamp=None):
        self.db.execute(
            "INSERT OR REPLACE INTO connectors (charger_id, evse_id, connector_id, status, error_code, info, "
            "vendor_id, vendor_error_code, timestamp, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (charger_id, evse_id, connector_id, status, error_code, info, vendor_id, vendor_error_code,
             timestamp, utc_now_iso()))
        self.db.commit()

    def list_connectors(self, charger_id):
        return self._all("SELECT * FROM connectors WHERE charger_id = ? ORDER BY evse_id, connector_id",
                         (charger_id,))

    # -- id tags --------------------------------------------------------
    def set_id_tags(self, charger_id, tags, replace=True):
        """tags: [{"id_tag", "status", "parent_id_tag", "expiry_date"}]; charger '*' = every charger."""
        if replace:
            self.db.execute("DELETE FROM id_tags WHERE charger_id = ?", (charger_id,))
        for t in tags:
            self.db.execute(
                "INSERT OR REPLACE INTO id_tags (charger_id, id_tag, status, parent_id_tag, expiry_date) "
                "VALUES (?, ?, ?, ?, ?)",
                (charger_id, t["id_tag"], t["status"], t.get("parent_id_tag"), t.get("expiry_date")))
        self.db.commit()

    def list_id_tags(self, charger_id):
        return self._all("SELECT id_tag, status, parent_id_tag, expiry_date FROM id_tags "
                         "WHERE charger_id = ? ORDER BY id_tag", (charger_id,))

    def find_id_tag(self, charger_id, id_tag):
        """The charger's own entry for `id_tag`, else the '*' entry, else None."""
        row = self._one("SELECT * FROM id_tags WHERE charger_id = ? AND id_tag = ?", (charger_id, id_tag))
        if row is None:
            row = self._one("SELECT * FROM id_tags WHERE charger_id = '*' AND id_tag = ?", (id_tag,))
        return row

    # -- transactions ---------------------------------------------------
    def create_transaction(self, **fields):
        now = utc_now_iso()
        fields.setdefault("status", "active")
        fields["created_at"] = fields["updated_at"] = now
        cols = sorted(fields)
        cur = self.db.execute(
            "INSERT INTO transactions (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
            [fields[c] for c in cols])
        return cur.lastrowid

    def update_transaction(self, tx_id, **fields):
        fields["updated_at"] = utc_now_iso()
        cols = sorted(fields)
        self.db.execute("UPDATE transactions SET %s WHERE id = ?" % ", ".join("%s = ?" % c for c in cols),
                        [fields[c] for c in cols] + [tx_id])

    def bump(self, tx_id, column):
        if column not in ("start_duplicates", "stop_duplicates"):
            raise ValueError(column)
        self.db.execute("UPDATE transactions SET %s = %s + 1 WHERE id = ?" % (column, column), (tx_id,))

    def get_transaction(self, tx_id):
        return self._one("SELECT * FROM transactions WHERE id = ?", (tx_id,))

    def find_transaction_by_key(self, charger_id, tx_key):
        return self._one("SELECT * FROM transactions WHERE charger_id = ? AND tx_key = ?", (charger_id, tx_key))

    def find_start(self, charger_id, connector_id, id_tag, start_time, meter_start):
        """The transaction a StartTransaction with these fields already opened, or None."""
        return self._one(
            "SELECT * FROM transactions WHERE charger_id = ? AND connector_id = ? AND id_tag = ? "
            "AND start_time = ? AND meter_start = ? AND orphan = 0 ORDER BY id LIMIT 1",
            (charger_id, connector_id, id_tag, start_time, meter_start))

    def list_transactions(self, charger_id=None, status=None, owner=None, after_id=0, limit=1000):
        where, args = ["id > ?"], [after_id]
        for col, val in (("charger_id", charger_id), ("status", status), ("owner", owner)):
            if val is not None:
                where.append("%s = ?" % col)
                args.append(val)
        sql = "SELECT * FROM transactions WHERE " + " AND ".join(where)
        return self._all(sql + " ORDER BY id LIMIT ?", args + [limit])

    def active_transactions(self, charger_id):
        return self.list_transactions(charger_id=charger_id, status="active")

    # -- meter values ---------------------------------------------------
    def add_meter_values(self, charger_id, transaction_id, evse_id, connector_id, rows, ledger_seq=None):
        """rows: dicts with timestamp, value, measurand, phase, unit, multiplier, context,
        location, format, signed."""
        self.db.executemany(
            "INSERT INTO meter_values (charger_id, transaction_id, evse_id, connector_id, timestamp, value, "
            "measurand, phase, unit, multiplier, context, location, format, signed, ledger_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(charger_id, transaction_id, evse_id, connector_id, r.get("timestamp"), r.get("value"),
              r.get("measurand"), r.get("phase"), r.get("unit"), r.get("multiplier"), r.get("context"),
              r.get("location"), r.get("format"), r.get("signed"), ledger_seq) for r in rows])

    def meter_values(self, transaction_id):
        return self._all("SELECT timestamp, value, measurand, phase, unit, multiplier, context, location, "
                         "format, signed, evse_id, connector_id FROM meter_values WHERE transaction_id = ? "
                         "ORDER BY id", (transaction_id,))

    # -- ledger ---------------------------------------------------------
    def seen(self, charger_id, message_digest):
        """The first ledger entry of a message with this digest, or None."""
        return self._one("SELECT * FROM ledger WHERE charger_id = ? AND digest = ? ORDER BY seq LIMIT 1",
                         (charger_id, message_digest))

    def append_ledger(self, charger_id, message_id, action, payload, outcome, transaction_id=None,
                      response=None, fault=None, message_digest=None):
        cur = self.db.execute(
            "INSERT INTO ledger (received_at, charger_id, message_id, action, payload, digest, transaction_id, "
            "outcome, fault, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now_iso(), charger_id, message_id, action, json.dumps(payload, separators=(",", ":")),
             message_digest, transaction_id, outcome, fault,
             None if response is None else json.dumps(response, separators=(",", ":"))))
        return cur.lastrowid

    def ledger(self, charger_id=None, since_seq=0, limit=100000):
        sql = "SELECT * FROM ledger WHERE seq > ?"
        args = [since_seq]
        if charger_id is not None:
            sql += " AND charger_id = ?"
            args.append(charger_id)
        rows = self._all(sql + " ORDER BY seq LIMIT ?", args + [limit])
        for r in rows:
            r["payload"] = json.loads(r["payload"])
            if r["response"] is not None:
                r["response"] = json.loads(r["response"])
        return rows

    def ledger_counts(self, charger_id=None):
        """{outcome: count} over the ledger (of one charger)."""
        sql = "SELECT outcome, COUNT(*) AS n FROM ledger"
        args = ()
        if charger_id is not None:
            sql += " WHERE charger_id = ?"
            args = (charger_id,)
        return {r["outcome"]: r["n"] for r in self._all(sql + " GROUP BY outcome", args)}


class SqliteStorage(SqlStorage):
    """SQLite file (or ":memory:"), WAL journal: a commit survives the process."""

    def connect(self, path):
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        return db


def open_storage(path):
    """The default storage for a database path (SQLite)."""
    return SqliteStorage(path)

