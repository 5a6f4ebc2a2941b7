"""Per-column protection of personal data, applied in the writer before anything reaches the spool.

    [tables.access_log.transforms]
    username = "hash"                                       # HMAC-SHA256, 32 hex chars
    client_ip = "truncate_ip"                               # /24 (IPv4), /48 (IPv6)
    referer = "encrypt"                                     # AES-SIV: `loglake reveal` gives it back
    path = { op = "redact", pattern = "token=[^&]*", replacement = "token=REDACTED" }
    user_agent = "drop"                                     # never written

`hash` and `encrypt` use the key named by `[pii]` (an environment variable or a file, never a
config value or an argument). Both are deterministic, so equal values still group and join in SQL,
and stable across hosts and restarts with the same key. The key's id (a hash of it, not the key)
goes into every batch manifest and Parquet file, so a key rotation is visible. Work is per distinct
value per block: web logs repeat user names and addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loglake.errors import ConfigError, LoglakeError, NotInstalledError
from loglake.writer.kernels import pc

if TYPE_CHECKING:
    from loglake.config import Config, PiiConfig

OPS = ("hash", "encrypt", "truncate_ip", "drop", "redact")
_CACHE_SIZE = 200_000
#: IPv4 prefixes truncated by string surgery: how many leading octets stay.
_V4_KEEP = {8: 1, 16: 2, 24: 3, 32: 4}
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_RX = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
_KEYED = ("hash", "encrypt")
ENC_PREFIX = "enc:"


def _spec(value: Any) -> dict[str, Any]:
    return {"op": value} if isinstance(value, str) else dict(value) if isinstance(value, dict) else {"op": value}


# ---- the key ----------------------------------------------------------------------------------
def load_key(pii: PiiConfig, environ: dict[str, str] | None = None) -> bytes:
    """The PII key's bytes, from `key_file` if set, else the variable `key_env`."""
    env = os.environ if environ is None else environ
    if pii.key_file:
        try:
            key = open(pii.key_file, "rb").read().strip()  # noqa: SIM115
        except OSError as e:
            raise ConfigError([f"pii.key_file: cannot read {pii.key_file!r}: {e.strerror}"]) from e
    else:
        key = env.get(pii.key_env, "").encode()
    if len(key) < 16:
        where = f"file {pii.key_file!r}" if pii.key_file else f"environment variable {pii.key_env}"
        raise ConfigError([f"pii: the key ({where}) is unset or shorter than 16 bytes"])
    return key


def key_id(key: bytes) -> str:
    """Names a key without revealing it: recorded in manifests and Parquet metadata."""
    return hashlib.sha256(b"loglake key id\0" + key).hexdigest()[:12]


def _subkey(key: bytes, purpose: bytes, size: int) -> bytes:
    return hashlib.sha512(b"loglake " + purpose + b"\0" + key).digest()[:size]


class Sealer:
    """Deterministic authenticated encryption (AES-SIV), the column name as associated data."""

    def __init__(self, key: bytes) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESSIV
        except ImportError as e:
            raise NotInstalledError("encrypt needs the cryptography package: pip install cryptography") from e
        self._siv = AESSIV(_subkey(key, b"encrypt", 64))

    def seal(self, data: bytes, column: str) -> str:
        token = self._siv.encrypt(data, [column.encode()])
        return ENC_PREFIX + base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def open(self, value: str, column: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        if not value.startswith(ENC_PREFIX):
            raise LoglakeError(f"{value[:40]!r} is not a value loglake encrypted (no {ENC_PREFIX!r} prefix)")
        raw = value[len(ENC_PREFIX) :]
        try:
            token = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            return self._siv.decrypt(token, [column.encode()])
        except (InvalidTag, ValueError) as e:
            raise LoglakeError(f"cannot decrypt {value[:40]!r}: wrong key, wrong column, or damaged value") from e


# ---- the transforms ---------------------------------------------------------------------------
@dataclass
class ColumnTransform:
    column: str
    op: str
    params: dict[str, Any]
    key: bytes = b""

    def __post_init__(self) -> None:
        if self.op == "hash":  # the keyed state once; each value copies it (4x cheaper than hmac.new)
            self._mac = hmac.new(_subkey(self.key, b"hash", 32), digestmod=hashlib.sha256)
        elif self.op == "encrypt":
            self._sealer = Sealer(self.key)
        elif self.op == "truncate_ip":
            self._v4 = int(self.params.get("ipv4_prefix", 24))
            self._v6 = int(self.params.get("ipv6_prefix", 48))
        self._cache: dict[str, str | None] = {}  # values repeat across blocks too

    def apply(self, arr: pa.Array) -> pa.Array:
        if self.op == "redact":
            return pc.replace_substring_regex(arr, self.params["pattern"], str(self.params.get("replacement", "")))
        if self.op == "truncate_ip" and self._v4 in _V4_KEEP:
            return self._truncate_vectorized(arr)
        return self._per_distinct(arr)

    def _per_distinct(self, arr: pa.Array) -> pa.Array:
        encoded = pc.dictionary_encode(arr)
        cache = self._cache
        values = []
        for v in encoded.dictionary.to_pylist():
            if v not in cache:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[v] = self._one(v)
            values.append(cache[v])
        return pa.array(values, pa.string()).take(encoded.indices)

    def _truncate_vectorized(self, arr: pa.Array) -> pa.Array:
        """Dotted-quad IPv4 (nearly every web log line) is truncated by a regex inside Arrow at a
        /8, /16, /24 or /32; IPv6, host names and odd spellings go through `ipaddress`. Addresses
        repeat, so the work runs over the block's distinct values, spread back with one `take`."""
        encoded = pc.dictionary_encode(arr)
        return self._truncate_distinct(encoded.dictionary).take(encoded.indices)

    def _truncate_distinct(self, arr: pa.Array) -> pa.Array:
        v4 = pc.match_substring_regex(arr, _V4_RX)
        keep = _V4_KEEP[self._v4]
        cut = pc.replace_substring_regex(arr, rf"^((?:[0-9]+\.){{{keep}}})[0-9.]*$", r"\1") if keep < 4 else arr
        if keep < 4:
            cut = pc.binary_join_element_wise(cut, pa.scalar(".".join(["0"] * (4 - keep))), "")
        if pc.all(pc.fill_null(v4, True)).as_py():
            return cut
        other = pc.if_else(v4, pa.scalar(None, pa.string()), arr)
        return pc.if_else(pc.fill_null(v4, False), cut, self._per_distinct(other))

    def _one(self, value: str) -> str | None:
        if self.op == "hash":
            mac = self._mac.copy()
            mac.update(value.encode())
            return mac.hexdigest()[:32]
        if self.op == "encrypt":
            return self._sealer.seal(value.encode(), self.column)
        if ":" in value and _NTOP_AGREES:
            fast = _truncate_v6(value, self._v6)
            if fast is not None:
                return fast
        return truncate_ip(value, self._v4, self._v6)


def truncate_ip(value: str, v4: int, v6: int) -> str | None:
    """The network address of `value` at a /`v4` or /`v6` prefix, as `ipaddress` spells it; None
    for a host name (it cannot be truncated, and may identify) or anything else not an address."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    prefix = v4 if ip.version == 4 else v6
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def _truncate_v6(value: str, prefix: int) -> str | None:
    """`truncate_ip` of an IPv6 address through the C library's `inet_pton`/`inet_ntop`: 6 us a
    distinct value through `apply`, against 52 us with `ipaddress`, and client IPv6 addresses are
    mostly distinct, so no cache helps. None where the two could differ: a scope (`%eth0`), text
    `inet_pton` refuses, or a network in `::/80`, which `inet_ntop` spells with a dotted IPv4 tail
    (`::ffff:1.2.3.4`)."""
    if "%" in value:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET6, value)
    except (OSError, ValueError):
        return None
    bits = int.from_bytes(packed, "big") >> (128 - prefix) << (128 - prefix) if prefix else 0
    if bits >> 48 == 0:
        return None
    return socket.inet_ntop(socket.AF_INET6, bits.to_bytes(16, "big"))


def _ntop_agrees() -> bool:
    """Whether this C library spells addresses as `ipaddress` does (the longest run of two or more
    zero groups compressed, the first of equal runs, lower case): checked once, at import, so a
    library that spells them otherwise keeps `ipaddress`."""
    cases = ("1:0:0:2:0:0:0:3", "1:0:0:2:0:0:3:4", "1:0:2:3:4:5:6:7", "ABCD:EF01::", "2001:db8:0:0:1:0:0:1")
    try:
        return all(_truncate_v6(c, 128) == str(ipaddress.ip_address(c)) for c in cases)
    except (OSError, AttributeError):  # no IPv6 support in this socket module
        return False


_NTOP_AGREES = _ntop_agrees()


class TableTransforms:
    """The transforms of one table, applied to the rows routed to it."""

    def __init__(self, spec: dict[str, Any], key: bytes) -> None:
        self.items = []
        for column, value in spec.items():
            s = _spec(value)
            if s["op"] != "drop":  # dropped columns never reach the table (config.py)
                self.items.append(ColumnTransform(column, s["op"], s, key if s["op"] in _KEYED else b""))

    def apply(self, rows: pa.Table) -> pa.Table:
        for t in self.items:
            if t.column in rows.column_names and rows.num_rows:
                i = rows.schema.get_field_index(t.column)
                rows = rows.set_column(i, t.column, t.apply(rows[t.column].combine_chunks()))
        return rows


def needs_key(cfg: Config) -> bool:
    keyed = any(_spec(v)["op"] in _KEYED for t in cfg.tables for v in t.transforms.values())
    return keyed or cfg.pii.encrypt_dead_letters


def validate_transforms(cfg: Config, environ: dict[str, str] | None = None) -> list[str]:
    """Every problem with the transforms at once: unknown ops, bad parameters, columns a table
    lacks, a missing key, or `encrypt` without its package."""
    p: list[str] = []
    for t in cfg.tables:
        for column, value in t.transforms.items():
            where = f"tables.{t.name}.transforms.{column}"
            s = _spec(value)
            op = s.get("op")
            if op not in OPS:
                p.append(f"{where}: unknown transform {op!r} (known: {', '.join(OPS)})")
                continue
            if op != "drop" and column not in t.columns:
                p.append(f"{where}: the table has no column {column!r}")
            extra = set(s) - {"op", *_PARAMS[op]}
            if extra:
                p.append(f"{where}: unknown parameter(s) {', '.join(sorted(extra))} for {op}")
            p.extend(f"{where}: {m}" for m in _check_params(op, s))
    if needs_key(cfg):
        try:
            load_key(cfg.pii, environ)
        except ConfigError as e:
            p.extend(e.problems)
        if _uses(cfg, "encrypt") or cfg.pii.encrypt_dead_letters:
            try:
                import cryptography  # noqa: F401
            except ImportError:
                p.append("pii: encrypt needs the cryptography package (pip install cryptography)")
    return p


_PARAMS = {
    "hash": (),
    "encrypt": (),
    "drop": (),
    "truncate_ip": ("ipv4_prefix", "ipv6_prefix"),
    "redact": ("pattern", "replacement"),
}


def _uses(cfg: Config, op: str) -> bool:
    return any(_spec(v)["op"] == op for t in cfg.tables for v in t.transforms.values())


def _check_params(op: str, s: dict[str, Any]) -> list[str]:
    out = []
    if op == "truncate_ip":
        for name, top in (("ipv4_prefix", 32), ("ipv6_prefix", 128)):
            v = s.get(name, 0)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
                out.append(f"{name} must be an integer from 0 to {top}")
    if op == "redact":
        pattern = s.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            out.append("redact needs a pattern (an RE2 regular expression)")
        else:
            try:
                pc.replace_substring_regex(pa.array([""]), pattern, "")
            except pa.ArrowInvalid as e:
                out.append(f"pattern does not compile: {e}")
        if not isinstance(s.get("replacement", ""), str):
            out.append("replacement must be a string")
    return out
