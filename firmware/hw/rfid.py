# RFID reader interface and the NXP PN532 driver over its UART (HSU).
#
# Interface (every reader, simulated ones too):
#   poll() -> None, a card UID as upper-case hex (once per presentation:
#             the card must be away for `absent_polls` polls before the same
#             UID is reported again), or EV_FAULT / EV_CLEARED. A UID never
#             equals an event name (those are not hex).
#   fault  -> None or F_READER_FAILED (no valid answer `fail_limit` times
#             in a row; the driver keeps re-initialising and clears it when
#             the chip answers again).
#
# Why the PN532: it is the reader on common charger front-panel modules
# (OpenEVSE's RFID option, many Elecrow/Waveshare boards); it reads the
# ISO 14443A cards charge cards are (MIFARE Classic/DESFire, NTAG) and gives
# their 4, 7 or 10 byte UID, which OCPP idTags carry as hex; and its HSU link
# is a plain UART at 115200 with length and data checksums on every frame,
# so one driver serves machine.UART and pyserial, and a noisy cable to the
# front panel is detected instead of misread.
#
# Protocol (PN532 User Manual UM0701-02, §6.2 frames, §7 commands):
#   host -> chip  00 00 FF LEN LCS D4 CMD params.. DCS 00
#   chip -> host  ACK 00 00 FF 00 FF 00, then 00 00 FF LEN LCS D5 CMD+1 data.. DCS 00
#   LCS = -LEN, DCS = -(sum of TFI and data), both mod 256
#   error frame   00 00 FF 01 FF 7F 81 00
# The chip sleeps after power-up in HSU mode: a long run of 0x55 then zeros
# wakes it, and SAMConfiguration must follow.
import binascii

from firmware.compat import const, ticks_add, ticks_diff, ticks_ms
from firmware.hw import EV_CLEARED, EV_FAULT, F_READER_FAILED

CMD_GET_FIRMWARE_VERSION = const(0x02)
CMD_SAM_CONFIGURATION = const(0x14)
CMD_RF_CONFIGURATION = const(0x32)
CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)

_TFI_HOST = const(0xD4)
_TFI_CHIP = const(0xD5)
_WAKEUP = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
ACK = b"\x00\x00\xff\x00\xff\x00"

# Commands the driver sends: (command, parameters)
_SAM = (CMD_SAM_CONFIGURATION, b"\x01\x14\x01")  # normal mode, 1 s virtual card timeout, IRQ
_FIRMWARE = (CMD_GET_FIRMWARE_VERSION, b"")
# RFConfiguration item 5 (MaxRetries): ATR 0xFF, PSL 1, passive activation 2
# tries, so InListPassiveTarget answers "no card" in a few ms instead of
# waiting forever.
_RETRIES = (CMD_RF_CONFIGURATION, b"\x05\xff\x01\x02")
_LIST = (CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")  # 1 target, 106 kbps type A
_INIT = (_SAM, _FIRMWARE, _RETRIES)

_RX_SIZE = const(64)


def build_frame(buf, cmd, params):
    """Write a host->chip information frame into buf; returns its length."""
    n = len(params)
    length = n + 2  # TFI + CMD + params
    buf[0] = 0
    buf[1] = 0
    buf[2] = 0xFF
    buf[3] = length
    buf[4] = (-length) & 0xFF
    buf[5] = _TFI_HOST
    buf[6] = cmd
    s = _TFI_HOST + cmd
    for i in range(n):
        b = params[i]
        buf[7 + i] = b
        s += b
    buf[7 + n] = (-s) & 0xFF
    buf[8 + n] = 0
    return 9 + n


def parse_frame(buf, n):
    """Look for one complete chip->host frame in buf[:n].

    Returns (kind, start, end): kind 0 = incomplete (need more bytes),
    1 = ACK, 2 = information frame whose TFI+data are buf[start:end],
    3 = error frame or bad checksum. Bytes before the start code are skipped.
    """
    i = 0
    while i + 2 < n and not (buf[i] == 0 and buf[i + 1] == 0 and buf[i + 2] == 0xFF):
        i += 1
    if i + 5 > n:
        return 0, 0, 0
    length = buf[i + 3]
    lcs = buf[i + 4]
    if length == 0 and lcs == 0xFF:
        return 1, 0, 0
    if (length + lcs) & 0xFF:
        return 3, 0, 0
    end = i + 5 + length
    if end + 1 > n:
        return 0, 0, 0
    s = 0
    for j in range(i + 5, end + 1):
        s += buf[j]
    if s & 0xFF:
        return 3, 0, 0
    if length == 1 and buf[i + 5] == 0x7F:
        return 3, 0, 0  # syntax error frame
    return 2, i + 5, end


class Pn532Reader:
    """uart       non-blocking UART-like (write, readinto), 115200 8N1
    poll_ms    pause between two card searches
    timeout_ms how long the chip may take to ACK and answer one command
    """

    def __init__(
        self,
        uart,
        poll_ms=200,
        timeout_ms=150,
        fail_limit=3,
        absent_polls=2,
        retry_ms=1000,
        ticks=ticks_ms,
    ):
        self.uart = uart
        self.poll_ms = poll_ms
        self.timeout_ms = timeout_ms
        self.fail_limit = fail_limit
        self.absent_polls = absent_polls
        self.retry_ms = retry_ms
        self._ticks = ticks
        self._tx = bytearray(16)
        self._rx = bytearray(_RX_SIZE)
        self._rxv = memoryview(self._rx)
        self._n = 0
        self.fault = None
        self.firmware = None  # (ic, version, revision) once read
        self.uid = None  # the card on the reader now, as hex
        self._absent = 0
        self._failures = 0
        self._step = 0  # index into _INIT; len(_INIT) = card search
        self._busy = False  # a command is out, waiting for its answer
        self._acked = False
        self._sent = 0
        self._next = ticks()  # when the next command may go out
        self._wake = True

    def poll(self):
        now = self._ticks()
        try:
            if not self._busy:
                if ticks_diff(now, self._next) < 0:
                    return None
                self._send(now)
                return None
            kind, start, end = self._receive()
        except OSError:  # the UART itself failed (e.g. a USB adapter unplugged)
            return self._failed(now)
        if kind == 0:
            if ticks_diff(now, self._sent) >= self.timeout_ms:
                return self._failed(now)
            return None
        if kind == 3:
            return self._failed(now)
        return self._answered(now, start, end)

    def _send(self, now):
        cmd, params = _INIT[self._step] if self._step < len(_INIT) else _LIST
        if self._wake:
            self.uart.write(_WAKEUP)
            self._wake = False
        self._n = 0
        self._discard()
        n = build_frame(self._tx, cmd, params)
        self.uart.write(memoryview(self._tx)[:n])
        self._cmd = cmd
        self._busy = True
        self._acked = False
        self._sent = now

    def _discard(self):
        while self.uart.readinto(self._rx):
            pass

    def _receive(self):
        """Read what arrived; returns (kind, start, end) like parse_frame,
        having consumed an ACK if one came first."""
        n = self.uart.readinto(self._rxv[self._n :])
        if n:
            self._n += n
        while True:
            kind, start, end = parse_frame(self._rx, self._n)
            if kind != 1:
                if kind == 0 and self._n >= _RX_SIZE:
                    return 3, 0, 0  # garbage filled the buffer
                return kind, start, end
            # drop the ACK and look at what follows it
            i = 0
            while not (self._rx[i] == 0 and self._rx[i + 1] == 0 and self._rx[i + 2] == 0xFF):
                i += 1
            rest = self._n - (i + 6)
            if rest > 0:
                self._rx[0:rest] = self._rx[i + 6 : self._n]
            self._n = rest if rest > 0 else 0
            self._acked = True

    def _answered(self, now, start, end):
        rx = self._rx
        self._busy = False
        if not self._acked or rx[start] != _TFI_CHIP or rx[start + 1] != self._cmd + 1:
            return self._failed(now)
        if self._step < len(_INIT):
            if self._cmd == CMD_GET_FIRMWARE_VERSION:
                if end - start < 6 or rx[start + 2] != 0x32:
                    return self._failed(now)  # not a PN532
                self.firmware = (rx[start + 2], rx[start + 3], rx[start + 4])
            self._step += 1
            self._next = now
            return None
        # A card search answered: the reader works.
        self._next = ticks_add(now, self.poll_ms)
        self._failures = 0
        if self.fault is not None:
            self.fault = None
            return EV_CLEARED  # a card now present is reported by the next search
        uid = self._target_uid(start, end)
        if uid is None:
            self._absent += 1
            if self._absent >= self.absent_polls:
                self.uid = None
            return None
        self._absent = 0
        if uid == self.uid:
            return None
        self.uid = uid
        return uid

    def _target_uid(self, start, end):
        # D5 4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1...]
        rx = self._rx
        if end - start < 3 or rx[start + 2] == 0:
            return None
        if end - start < 8:
            return None
        uid_len = rx[start + 7]
        if start + 8 + uid_len > end:
            return None
        return binascii.hexlify(bytes(rx[start + 8 : start + 8 + uid_len])).decode().upper()

    def _failed(self, now):
        self._busy = False
        self._failures += 1
        self._step = 0  # re-initialise: the chip may have reset or slept
        self._wake = True
        self._next = ticks_add(now, self.retry_ms if self._failures >= self.fail_limit else self.poll_ms)
        if self._failures >= self.fail_limit and self.fault is None:
            self.fault = F_READER_FAILED
            self.uid = None
            return EV_FAULT
        return None
