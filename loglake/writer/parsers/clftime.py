"""CLF times (`[17/May/2015:10:05:03 +0000] `) to ISO UTC strings, by arithmetic on their bytes.

Used by the block path (`clfblock.py`): most real lines have a distinct second, so the Arrow path's
convert-each-distinct-value trick saves little there, and a parser per value costs far more than a
few vectorized integer operations on the digits. The rules are `clf._convert_stamps`' rules.
"""

from __future__ import annotations

from typing import Any

from loglake.writer.parsers.clf import _MONTHS as CLF_MONTHS
from loglake.writer.parsers.clfbytes import not_digit

#: A stamp window is the last 32 bytes of a line's head: three bytes of whatever comes before the
#: stamp (`_AT`), then the stamp: `d` a digit, `M` a month letter, `s` the zone's sign.
_AT = 3
_TIME = b"???[dd/MMM/dddd:dd:dd:dd sdddd] "
_MONTHS = tuple(m.encode("ascii") for m in CLF_MONTHS)
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: 253402300800 is 10000-01-01T00:00:00Z: later, like before 1970, is damage, not traffic.
_END = 253402300800


def _masks(word: int) -> tuple[int, int, int]:
    """(literal mask, literal value, bit 7 of each digit byte) of template word `word`."""
    lit_mask = lit_val = digits = 0
    for k, c in enumerate(_TIME[8 * word : 8 * word + 8]):
        if c == ord("d"):
            digits |= 0x80 << (8 * k)
        elif c not in b"Ms?":
            lit_mask |= 0xFF << (8 * k)
            lit_val |= c << (8 * k)
    return lit_mask, lit_val, digits


_WORDS = [_masks(w) for w in range(4)]


def _shape_ok(np: Any, stamp: Any) -> Any:
    """The 29 template bytes, checked eight at a time (SWAR on 64-bit words)."""
    words = stamp.view("<u8")  # (n, 4)
    ok = np.ones(len(stamp), bool)
    for i, (lit_mask, lit_val, digits) in enumerate(_WORDS):
        w = words[:, i]
        ok &= (w & np.uint64(lit_mask)) == np.uint64(lit_val)
        ok &= (not_digit(np, w) & np.uint64(digits)) == 0
    return ok & ((stamp[:, _AT + 22] == 43) | (stamp[:, _AT + 22] == 45))


def _month(np: Any, stamp: Any) -> tuple[Any, Any]:
    """Month numbers 1..12 and whether the three letters were a month name at all."""
    words = stamp.view("<u8")  # the letters are bytes 7..9: the last of word 0, the first two of word 1
    code = ((words[:, 0] >> np.uint64(56)) | ((words[:, 1] & np.uint64(0xFFFF)) << np.uint64(8))).astype(np.int32)
    codes = np.array([m[0] | (m[1] << 8) | (m[2] << 16) for m in _MONTHS], np.int32)
    order = np.argsort(codes)
    i = np.minimum(np.searchsorted(codes[order], code), 11)
    return order[i] + 1, codes[order][i] == code


def utc_times(np: Any, stamp: Any) -> tuple[Any, Any]:
    """`stamp` is an (n, 32) uint8 matrix whose bytes 3..31 should be a CLF time. Returns the
    ISO UTC forms, an (n, 20) uint8 matrix of `YYYY-MM-DDTHH:MM:SSZ`, and which rows are valid:
    the exact shape, a real calendar day, hour/minute/second in range, 1970 to 9999 in UTC."""
    ok = _shape_ok(np, stamp)
    month, named = _month(np, stamp)

    def num(*cols: int) -> Any:
        value = stamp[:, _AT + cols[0]].astype(np.int32) - 48
        for c in cols[1:]:
            value = value * 10 + stamp[:, _AT + c] - 48
        return value

    day, year, hour, minute, second = num(1, 2), num(8, 9, 10, 11), num(13, 14), num(16, 17), num(19, 20)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = np.array(_DAYS_IN_MONTH, np.int32)[month] + ((month == 2) & leap)
    ok &= named & (day >= 1) & (day <= dim) & (hour <= 23) & (minute <= 59) & (second <= 59)
    zone_h, zone_m = num(23, 24), num(25, 26)
    sign_byte = stamp[:, _AT + 22]
    utc = (sign_byte == 43) & (zone_h == 0) & (zone_m == 0)
    # A UTC time's ISO form is the same digits, reordered; only the other zones need arithmetic,
    # and only on their own rows (one zoned probe must not make a whole block pay for it).
    iso = _reordered(np, stamp, month)
    ok &= ~utc | (year >= 1970)
    zoned = np.flatnonzero(ok & ~utc)
    if len(zoned):
        zone_h, zone_m, sign_byte = zone_h[zoned], zone_m[zoned], sign_byte[zoned]
        good = (zone_h <= 23) & (zone_m <= 59)  # `+9000` is no zone (Python's %z agrees)
        sign = np.where(sign_byte == 45, -1, 1).astype(np.int64)
        days = _days_from_civil(*(v[zoned].astype(np.int64) for v in (year, month, day)))
        secs = days * 86400 + hour[zoned] * 3600 + minute[zoned] * 60 + second[zoned]
        secs -= sign * (zone_h * 3600 + zone_m * 60)
        good &= (secs >= 0) & (secs < _END)
        ok[zoned] = good
        iso[zoned] = _format(np, np.where(good, secs, 0))
    if not ok.all():
        iso[~ok] = np.frombuffer(b"1970-01-01T00:00:00Z", np.uint8)  # ASCII, whatever the bytes were
    return iso, ok


#: `-MM-` of month m as a little-endian word.
_MONTH_WORDS = [0] + [int.from_bytes(b"-%02d-" % m, "little") for m in range(1, 13)]


def _reordered(np: Any, stamp: Any, month: Any) -> Any:
    """The ISO forms of UTC stamps, which are their digits reordered: built four bytes at a time,
    each output word from at most two words of the stamp (slices of the byte matrix, one byte
    column at a time, cost ~4x as much)."""
    u, w = np.uint32, stamp.view("<u4")  # w[:, k]: window bytes 4k..4k+3; the stamp starts at 3
    out = np.empty((len(stamp), 5), u)
    out[:, 0] = (w[:, 2] >> u(24)) | (w[:, 3] << u(8))  # yyyy: bytes 11..14
    out[:, 1] = np.array(_MONTH_WORDS, u)[month]  # -MM-
    out[:, 2] = (w[:, 1] & u(0xFFFF)) | u(ord("T") << 16) | (w[:, 4] << u(24))  # ddTh: bytes 4, 5, 16
    out[:, 3] = (w[:, 4] >> u(8)) | (w[:, 5] << u(24))  # h:mm: bytes 17..20
    out[:, 4] = (w[:, 5] >> u(8)) | u(ord("Z") << 24)  # :ssZ: bytes 21..23
    return out.view(np.uint8)


def _format(np: Any, secs: Any) -> Any:
    y, m, d = _civil_from_days(np, secs // 86400)
    sod = secs % 86400
    out = np.empty((len(secs), 20), np.uint8)
    out[:] = np.frombuffer(b"0000-00-00T00:00:00Z", np.uint8)
    at = 0
    for value, width in ((y, 4), (m, 2), (d, 2), (sod // 3600, 2), (sod // 60 % 60, 2), (sod % 60, 2)):
        for k in range(width):
            out[:, at + k] = 48 + value // 10 ** (width - 1 - k) % 10
        at += width + 1
    return out


def _days_from_civil(y: Any, m: Any, d: Any) -> Any:
    """Days since 1970-01-01 (Howard Hinnant's algorithm, valid for every Gregorian date)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + 9 - 12 * (m > 2)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_from_days(np: Any, z: Any) -> tuple[Any, Any, Any]:
    z = z + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (m <= 2), m, d
