# The authorization cache (C16 §3.5.1): idTagInfo remembered from Authorize,
# StartTransaction and StopTransaction answers, used for LocalPreAuthorize and
# LocalAuthorizeOffline. Bounded; the entry used least recently goes first.
from firmware.clock import parse_iso8601

ACCEPTED = "Accepted"


class AuthCache:
    def __init__(self, size=64):
        self.size = size
        self.entries = {}  # idTag -> [status, expiry_epoch_ms or None, parentIdTag or None, last_use]
        self.clock = 0  # use counter: MicroPython dicts keep no order

    def put(self, id_tag, info):
        """Remember an idTagInfo; returns the entry to persist, or None if
        the cache held this idTagInfo already: only its use is refreshed, as
        a lookup does (a session's Authorize, Start and Stop answers repeat
        one idTagInfo: one journal record, not three)."""
        expiry = info.get("expiryDate")
        entry = [info.get("status"), parse_iso8601(expiry) if expiry else None, info.get("parentIdTag"), 0]
        old = self.entries.get(id_tag)
        if old is not None and old[0] == entry[0] and old[1] == entry[1] and old[2] == entry[2]:
            self._touch(old)
            return None
        self._touch(entry)
        self.entries[id_tag] = entry
        if len(self.entries) > self.size:
            oldest = None
            for k in self.entries:
                if oldest is None or self.entries[k][3] < self.entries[oldest][3]:
                    oldest = k
            del self.entries[oldest]
        return entry

    def load(self, id_tag, entry):
        self.entries[id_tag] = entry
        self.clock = max(self.clock, entry[3])

    def lookup(self, id_tag, wall_ms):
        """(status, parentIdTag) if cached, else None. Expired = 'Expired'."""
        e = self.entries.get(id_tag)
        if e is None:
            return None
        self._touch(e)
        status = e[0]
        if status == ACCEPTED and e[1] is not None and wall_ms is not None and wall_ms > e[1]:
            status = "Expired"
        return status, e[2]

    def clear(self):
        self.entries = {}

    def _touch(self, entry):
        self.clock += 1
        entry[3] = self.clock
