"""Location from the client IP, computed in the writer before any transform touches the IP.

`country` comes from iptocc, whose wheel embeds the Regional Internet Registries' allocation data
(MIT/Apache-2.0, refreshed with each release): it is the country an address block is *registered*
to, which agrees with commercial geolocation for ~95% of IPv4 addresses. With a MaxMind or DB-IP
`.mmdb` (`geoip.mmdb`, `geoip.asn_mmdb`), country comes from that database and city, region, asn and
as_org are filled where it has them. Private, loopback and unparseable addresses (and host names)
give NULL, never an error. Work is per distinct IP per block (web logs repeat addresses), with an
LRU cache across blocks for the `.mmdb` readers.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Any

import pyarrow as pa

from loglake.config import GeoConfig
from loglake.errors import ConfigError, NotInstalledError
from loglake.schema import FIELD_TYPES, GEO_COLUMNS
from loglake.writer.kernels import pc


def _public(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


class GeoLookup:
    """Adds the wanted geo columns to a parse result, from its `client_ip`."""

    def __init__(self, cfg: GeoConfig, wanted: set[str]) -> None:
        self.wanted = [c for c in GEO_COLUMNS if c in wanted]
        self.cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.cache_size = cfg.cache_size
        self.city = _open_mmdb(cfg.mmdb, "geoip.mmdb") if cfg.mmdb else None
        self.asn = _open_mmdb(cfg.asn_mmdb, "geoip.asn_mmdb") if cfg.asn_mmdb else None

    def apply(self, table: pa.Table) -> pa.Table:
        """`table` with the wanted columns appended, also when it has no rows (a block of only bad
        lines): every table downstream selects its columns from it."""
        if not self.wanted:
            return table
        if table.num_rows == 0:
            for col in self.wanted:
                table = table.append_column(col, pa.array([], FIELD_TYPES[col]))
            return table
        encoded = pc.dictionary_encode(table["client_ip"].combine_chunks())
        distinct = encoded.dictionary.to_pylist()
        found = self._country_only(distinct) if self.city is None and self.asn is None else self._mmdb(distinct)
        for col in self.wanted:
            values = pa.array([f.get(col) for f in found], FIELD_TYPES[col])
            table = table.append_column(col, values.take(encoded.indices))
        return table

    @staticmethod
    def _country_only(distinct: list[str | None]) -> list[dict[str, Any]]:
        """One batch call. The RIRs allocate no special-purpose range (private, loopback,
        link-local, documentation, CGNAT, multicast) to a country, so iptocc answers None for
        them by itself: no per-address check is needed here (tests/writer/test_pii.py)."""
        from iptocc import country_code

        return [{"country": cc} for cc in country_code([ip or "" for ip in distinct])]

    def _mmdb(self, distinct: list[str | None]) -> list[dict[str, Any]]:
        out = []
        for ip in distinct:
            if not ip:
                out.append({})
                continue
            hit = self.cache.get(ip)
            if hit is None:
                hit = self._lookup(ip) if _public(ip) else {}
                self.cache[ip] = hit
                if len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
            else:
                self.cache.move_to_end(ip)
            out.append(hit)
        return out

    def _lookup(self, ip: str) -> dict[str, Any]:
        got: dict[str, Any] = {}
        rec = self.city.get(ip) if self.city is not None else None
        if isinstance(rec, dict):
            got["country"] = (rec.get("country") or rec.get("registered_country") or {}).get("iso_code")
            got["city"] = ((rec.get("city") or {}).get("names") or {}).get("en")
            subs = rec.get("subdivisions") or []
            got["region"] = ((subs[0].get("names") or {}).get("en")) if subs else None
            _asn_fields(rec, got)
        if self.asn is not None:
            arec = self.asn.get(ip)
            if isinstance(arec, dict):
                _asn_fields(arec, got)
        if got.get("country") is None:
            from iptocc import country_code

            got["country"] = country_code(ip)
        return got


def _asn_fields(rec: dict[str, Any], got: dict[str, Any]) -> None:
    if "autonomous_system_number" in rec:
        got["asn"] = int(rec["autonomous_system_number"])
    if "autonomous_system_organization" in rec:
        got["as_org"] = str(rec["autonomous_system_organization"])


def _open_mmdb(path: str, key: str) -> Any:
    try:
        import maxminddb
    except ImportError as e:
        raise NotInstalledError(f"{key} needs the maxminddb reader: pip install 'loglake[geoip]'") from e
    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise ConfigError([f"{key}: cannot open {path!r}: {e}"]) from e


def validate_geo(cfg: GeoConfig, wanted: set[str]) -> list[str]:
    """Columns that no configured database can fill (checked by `check-config`)."""
    p = []
    if wanted & {"city", "region"} and not cfg.mmdb:
        p.append("geoip.mmdb: columns city/region need a MaxMind or DB-IP City .mmdb file")
    if wanted & {"asn", "as_org"} and not (cfg.asn_mmdb or cfg.mmdb):
        p.append("geoip.asn_mmdb: columns asn/as_org need an ASN .mmdb file")
    return p
