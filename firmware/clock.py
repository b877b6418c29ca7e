# UTC time without the platform's calendar: epoch milliseconds <-> RFC 3339.
#
# Bare-metal MicroPython ports may count from 2000 and lack timezone support,
# so the civil-date arithmetic is done here (days_from_civil / civil_from_days,
# the proleptic Gregorian algorithms), identically on both runtimes.


def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


_last = [None, ""]  # the second formatted last and its "YYYY-MM-DDTHH:MM:SS."


def iso8601(epoch_ms):
    """2026-11-25T15:56:40.123Z: UTC, milliseconds, as OCPP messages carry it."""
    secs, ms = divmod(int(epoch_ms), 1000)
    if secs != _last[0]:
        days, rem = divmod(secs, 86400)
        y, mo, d = civil_from_days(days)
        hh, rem = divmod(rem, 3600)
        mm, ss = divmod(rem, 60)
        _last[1] = "%04d-%02d-%02dT%02d:%02d:%02d." % (y, mo, d, hh, mm, ss)
        _last[0] = secs
    return "%s%03dZ" % (_last[1], ms)


def _digits(s, i, n):
    v = 0
    for k in range(i, i + n):
        c = ord(s[k]) - 48
        if c < 0 or c > 9:
            raise ValueError
        v = v * 10 + c
    return v


def parse_iso8601(s):
    """Epoch milliseconds of an RFC 3339 date-time, or None if it is not one.

    Accepts 'T' or 't' or ' ' between date and time, a fraction of any length,
    and 'Z' or a ±hh:mm offset. A time without an offset is read as UTC: some
    CSMSs send that, and refusing the clock would leave the charger at 1970.
    """
    try:
        if len(s) < 19 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":" or s[16] != ":":
            return None
        y = _digits(s, 0, 4)
        mo = _digits(s, 5, 2)
        d = _digits(s, 8, 2)
        hh = _digits(s, 11, 2)
        mi = _digits(s, 14, 2)
        ss = _digits(s, 17, 2)
        if not (1 <= mo <= 12 and 1 <= d <= 31 and hh <= 23 and mi <= 59 and ss <= 60):
            return None
        i = 19
        ms = 0
        n = len(s)
        if i < n and s[i] == ".":
            j = i + 1
            while j < n and "0" <= s[j] <= "9":
                j += 1
            if j == i + 1:
                return None
            frac = s[i + 1 : j] + "00"
            ms = _digits(frac, 0, 3)
            i = j
        off = 0
        if i < n:
            c = s[i]
            if c in "Zz" and i + 1 == n:
                pass
            elif c in "+-" and i + 6 == n and s[i + 3] == ":":
                off = (_digits(s, i + 1, 2) * 60 + _digits(s, i + 4, 2)) * 60000
                if c == "-":
                    off = -off
            else:
                return None
        days = days_from_civil(y, mo, d)
        if civil_from_days(days) != (y, mo, d):
            return None  # 2026-02-30 and the like
        return ((days * 86400 + hh * 3600 + mi * 60 + min(ss, 59)) * 1000) + ms - off
    except (ValueError, IndexError):
        return None
