"""The checks and cuts of the block path (`clfblock.py`) on one block's pieces: which rows have the
plainest shape, and their fields as Arrow columns, by byte position (`clfbytes.py`) and time
arithmetic (`clftime.py`). A row it does not vouch for is left to the other paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loglake.writer.kernels import cast, from_numpy, matches, take
from loglake.writer.parsers.clf import _REQUEST_RX
from loglake.writer.parsers.clfbytes import Piece, find_all, first_of, not_capital, not_digit, swar
from loglake.writer.parsers.clftime import utc_times
from loglake.writer.parsers.values import PARSED_TYPES

if TYPE_CHECKING:
    import numpy as np

#: Pieces between quotes of a plain line: `pre "request" status "referer" " " "agent" after`.
_PIECES = {"combined": 7, "common": 3}
#: Combined lines with one more quoted field after the agent (nginx's `"$http_x_forwarded_for"`
#: in many `log_format`s): their own block shape, as the tokenizer needs one count of pieces.
_TRAILING = 9


class Cut:
    """Checks every row of pieces for the plainest shape (`ok`) and finds its fields."""

    def __init__(self, np: Any, pieces: pa.Table, fmt: str, needles: list[bytes], ascii: bool = False) -> None:
        """`needles`: bytes whose lines go to the other paths (whitespace other than the space:
        see `clf.space_like`; escapes are `_Escapes`' to sort); `ascii`: the block is ASCII."""
        self.np, self.fmt, self.ascii = np, fmt, ascii
        self.pieces = [
            pieces.column(i).chunk(0) if pieces.num_rows else pa.array([], pa.string())
            for i in range(pieces.num_columns)
        ]
        self.p = [Piece(np, arr) for arr in self.pieces]
        self.lengths = lengths = sum((p.end - p.start for p in self.p), np.zeros(pieces.num_rows, np.int64))
        # A line's length is its pieces' plus the quotes between them; an empty line is a row of
        # empty pieces (so is a line of nothing but quotes: both go to split_lines).
        self.longest = int(lengths.max()) + len(self.p) - 1 if pieces.num_rows else 0
        self.shortest = int(lengths.min()) if pieces.num_rows else 1
        if not pieces.num_rows:
            self.ok = np.zeros(0, bool)
            return
        self.ok = self._pre_ok() & self._request_ok() & self._status_ok()
        for needle in needles:
            for p in self.p:
                at = (
                    np.flatnonzero(p.buf == needle[0])
                    if len(needle) == 1
                    else find_all(np, p.buf, p.buf.tobytes(), needle)
                )
                if len(at):
                    self.ok[np.searchsorted(p.end, at, side="right")] = False
        if fmt == "combined":
            between, after = self.p[4], self.p[6]
            self.ok &= (between.end - between.start == 1) & (between.at(between.start) == 32)
            # 7 pieces: the line may end at the agent's quote. 9 (`_TRAILING`): the quote after
            # the agent must be followed by a space, as `clf._SLOW` says (`""` drops the agent).
            ended = (after.end == after.start) if len(self.p) == _PIECES["combined"] else False
            self.ok &= ended | ((after.end > after.start) & (after.at(after.start) == 32))

    def _nth_spaces(self, spaces: np.ndarray, after: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `k` space positions at or after `after`, and the index of the first."""
        np = self.np
        i = np.searchsorted(spaces, after)
        return spaces[np.minimum(i[:, None] + np.arange(k), max(len(spaces) - 1, 0))], i

    def _pre_ok(self) -> np.ndarray:
        """`ip ident user [time] ` with three non-empty tokens (clf.py's `_PRE_RX`) and a valid time."""
        np, pre = self.np, self.p[0]
        head_end = pre.end - 29
        self.iso, valid = utc_times(np, pre.edge(-32, 32))
        found = self._head_in_window(pre, head_end)
        self.head, ok = found if found is not None else self._head_by_search(pre, head_end)
        return ok & (pre.end - pre.start >= 35) & valid

    def _head_in_window(self, pre: Piece, head_end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The three spaces of `ip ident user ` from a bit mask of the spaces in each line's first 32
        bytes: exactly three there, the last one the head's last byte. It costs a few operations
        per line instead of a search of every space in the piece (~1 ms a block). None when some
        head is longer (a long IPv6 address or user name), or numpy < 2 has no `bitwise_count`."""
        np, u = self.np, self.np.uint64
        length = head_end - pre.start
        if not hasattr(np, "bitwise_count") or (length > 32).any():
            return None
        bits = np.packbits(pre.edge(0, 32) == 32, axis=1, bitorder="little").view("<u4")[:, 0].astype(u)
        bits &= (u(1) << np.clip(length, 0, 32).astype(u)) - u(1)  # the head's bytes only
        rest = bits & (bits - u(1))  # without the lowest space
        # The offset of a mask's lowest set bit: the count of the ones below it.
        first = np.bitwise_count((bits & (~bits + u(1))) - u(1)).astype(np.int32)
        second = np.bitwise_count((rest & (~rest + u(1))) - u(1)).astype(np.int32)
        last = (bits >> np.clip(length - 1, 0, 63).astype(u)) & u(1)
        ok = (np.bitwise_count(bits) == 3) & (last == 1)
        ok &= (first > 0) & (second > first + 1) & (length - 1 > second + 1)  # three non-empty tokens
        return np.stack([pre.start + first, pre.start + second, head_end - 1], axis=1), ok

    def _head_by_search(self, pre: Piece, head_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_head_in_window` for heads of any length: the first three spaces from each line's start
        among every space of the piece, and exactly three before the time."""
        np = self.np
        spaces = pre.spaces()
        if len(spaces) == 0:
            return np.zeros((len(pre.start), 3), np.int32), np.zeros(len(pre.start), bool)
        s, first = self._nth_spaces(spaces, pre.start, 3)
        ok = np.searchsorted(spaces, head_end) - first == 3
        ok &= (s[:, 0] > pre.start) & (s[:, 1] > s[:, 0] + 1) & (s[:, 2] > s[:, 1] + 1) & (s[:, 2] == head_end - 1)
        return s, ok

    def _request_ok(self) -> np.ndarray:
        """`METHOD /path HTTP/d.d`, the method 1-8 capitals: what `_split_requests` cuts by splitting.
        Exactly two spaces: the first one (Arrow's `find_substring`, which stops there), one 9
        bytes before the end, and no other (`_only_spaces`). Each line's spaces searched among all
        of the piece's cost twice as much."""
        np, req = self.np, self.p[1]
        first = first_of(np, req.arr, " ")
        method_len = np.maximum(first, 0)
        r = np.stack([req.start + method_len, req.end - 9], axis=1)
        second = (r[:, 1] > r[:, 0]) & (req.at(r[:, 1]) == 32)  # after the first: within the value
        ok = (first >= 1) & (first <= 8) & (r[:, 1] > r[:, 0] + 1) & second
        ok &= self._only_spaces(req, (first >= 0).astype(np.int64) + second)
        sw = swar(np)
        method = req.edge(0, 8).view("<u8")[:, 0]
        ok &= (not_capital(np, method) & sw.first[np.clip(method_len, 0, 8)]) == 0
        proto = req.edge(-8, 8).view("<u8")[:, 0]
        ok &= (proto & sw.proto_mask) == sw.proto  # `HTTP/` and the `.`
        ok &= (not_digit(np, proto) & sw.proto_digits) == 0
        self.request = r
        self.odd = self._no_request_line(req, ok)
        return ok | self.odd

    def _no_request_line(self, req: Piece, plain: np.ndarray) -> np.ndarray:
        """Rows whose request is no `METHOD target [HTTP/x]` line at all (a scanner's probe, `-`,
        garbage): every path gives them no method, path or protocol, so the block path cuts them
        too, rather than leave each to the per-line parser (~10 us a line). The line-array path's
        regex (RE2) says which; a line with other whitespace than the space is left (`needles`),
        so its `[^ ]` and the per-line parser's `\\S` agree."""
        np = self.np
        odd = np.zeros(len(plain), bool)
        rest = np.flatnonzero(~plain)
        if len(rest):
            found = matches(take(req.arr, from_numpy(rest)), _REQUEST_RX)
            odd[rest[~found.to_numpy(zero_copy_only=False)]] = True
        return odd

    def _only_spaces(self, piece: Piece, known: np.ndarray) -> np.ndarray | bool:
        """Whether each value has no spaces but the `known` count of them: when the piece has no
        more spaces in all than are known, none has (one count over the piece); else each value's
        spaces are counted."""
        np = self.np
        if np.count_nonzero(piece.buf == 32) == int(known.sum()):
            return True
        owner = np.searchsorted(piece.end, piece.spaces(), side="right")
        return np.bincount(owner, minlength=len(known))[: len(known)] == known

    def _status_ok(self) -> np.ndarray:
        """` NNN bytes ` (combined) or ` NNN bytes[ anything]` (common), as `_STATUS_RX` says."""
        np, st = self.np, self.p[2]
        head = st.window(st.start, 24)  # ` NNN ` then up to 18 digits of bytes and the space after
        ok = (head[:, 0] == 32) & (head[:, 1] >= 49) & (head[:, 1] <= 53) & (head[:, 4] == 32)
        if self.fmt == "combined":
            size = st.end - st.start - 6
            ok &= st.at(st.end - 1) == 32
        else:
            spaces = st.spaces()
            nxt = (
                spaces[np.minimum(np.searchsorted(spaces, st.start + 6), max(len(spaces) - 1, 0))]
                if len(spaces)
                else st.end
            )
            size = np.where((nxt > st.start + 5) & (nxt < st.end), nxt, st.end) - st.start - 5
        self.dash = (size == 1) & (head[:, 5] == 45)
        # Bytes 2-3 (status) and 5..5+size (bytes) must be digits: eight at a time, word k holding
        # bytes 8k..8k+7 of the window.
        sw, words, ends = swar(np), head.view("<u8"), 5 + np.clip(size, 0, 18)
        digits = [not_digit(np, words[:, k]) & sw.first[np.clip(ends - 8 * k, 0, 8)] for k in range(3)]
        digits[0] &= sw.skip_five
        ok &= (not_digit(np, words[:, 0]) & sw.status_digits) == 0
        ok &= (size >= 1) & (size <= 18) & (((digits[0] | digits[1] | digits[2]) == 0) | self.dash)
        self.status = (head[:, 1:4].astype(np.int16) - 48) @ np.array([100, 10, 1], np.int16)
        self.bytes_span = (st.start + 5, st.start + 5 + np.clip(size, 0, 18))
        return ok

    def _protocol(self, ok: np.ndarray) -> pa.StringArray:
        """A plain request's last 8 bytes, as `_request_ok` cut them when it could. Other rows'
        are any 8 bytes (dropped by the caller): valid UTF-8 only in an ASCII block."""
        req, r = self.p[1], self.request
        last = req.cuts.get((-8, 8))
        if last is not None and (self.ascii or ok.all()) and not self.odd.any():
            return last.view(pa.string())
        return req.slices(ok & ~self.odd, r[:, 1] + 1, req.end, self.odd)

    def table(self, needed: list[str], line_of: np.ndarray) -> pa.Table:
        """The needed columns for every row (rows not `ok` hold garbage; the caller drops them)."""
        np, pre, req, ok = self.np, self.p[0], self.p[1], self.ok
        head, r = self.head, self.request
        cols: dict[str, pa.Array] = {}
        for name in needed:
            if name == "ts":
                offsets = np.arange(0, 20 * len(self.iso) + 1, 20, dtype=np.int32)
                cols[name] = pa.StringArray.from_buffers(len(self.iso), pa.py_buffer(offsets), pa.py_buffer(self.iso))
            elif name == "status":
                cols[name] = from_numpy(self.status)
            elif name == "bytes":
                lo, hi = self.bytes_span  # null also where not ok: garbage must not reach the cast
                cols[name] = cast(self.p[2].slices(ok, lo, hi, self.dash | ~ok), pa.int64())
            elif name == "client_ip":
                cols[name] = pre.slices(ok, pre.start, head[:, 0])
            elif name == "username":
                lo, hi = head[:, 1] + 1, head[:, 2]
                cols[name] = pre.slices(ok, lo, hi, (hi - lo == 1) & (pre.at(lo) == 45))
            elif name == "method":  # none for the rows of no request line (`odd`)
                cols[name] = req.slices(ok & ~self.odd, req.start, r[:, 0], self.odd)
            elif name == "path":
                cols[name] = req.slices(ok & ~self.odd, r[:, 0] + 1, r[:, 1], self.odd)
            elif name == "protocol":
                cols[name] = self._protocol(ok)
            else:  # request, referer, user_agent: whole pieces
                piece = {"request": req, "referer": self.p[3], "user_agent": self.p[5]}[name]
                cols[name] = piece.as_is(piece.is_dash())
        cols["_line"] = from_numpy(line_of)
        schema = pa.schema([(c, PARSED_TYPES[c]) for c in needed] + [("_line", pa.int32())])
        return pa.table([cols[c] for c in schema.names], schema=schema)
