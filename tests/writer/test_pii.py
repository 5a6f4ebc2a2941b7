"""Location from the IP and personal data protected before it touches disk (issue #8)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.config import load_config
from loglake.generate import write_log
from loglake.writer.geo import GeoLookup
from tests.conftest import ELASTIC, REPO, real_file, run_cli
from tests.helpers import EXAMPLES, spool_rows

PII = str(REPO / "examples" / "pii.toml")
KEY = {"LOGLAKE_PII_KEY": "k" * 32}


def _all_strings_in_lake(data_dir: Path) -> set[str]:
    """Every string value of every Parquet file, decoded (compressed pages hide them from grep)."""
    out: set[str] = set()
    for f in (data_dir / "lake").rglob("*.parquet"):
        t = pq.read_table(f)
        for col in t.itercolumns():
            if str(col.type) == "string":
                out.update(v for v in col.to_pylist() if v is not None)
    return out


def _raw_bytes_everywhere(data_dir: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file() and p.suffix != ".parquet")


def test_no_raw_user_name_or_full_ip_anywhere_under_the_data_dir(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "access.log"
    write_log(log, 5000, seed=3)
    with open(log, "ab") as f:  # a bad line with a user name and an IP: dead-lettered, encrypted
        f.write(b'203.0.113.99 - user777 [31/Feb/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    text = log.read_text()
    users = set(re.findall(r" - (user\d+) \[", text))
    ips = {ip for ip in re.findall(r"^(\S+) ", text, re.M) if not ip.endswith(".0")}
    assert len(users) > 100 and len(ips) > 100
    for args in (["write", str(log)], ["rollover"]):
        proc = run_cli([*args, "--config", PII], data_dir, **KEY)
        assert proc.returncode == 0, proc.stderr
    values = _all_strings_in_lake(data_dir)
    assert values and not (values & users) and not (values & ips)
    raw = _raw_bytes_everywhere(data_dir)
    assert not re.search(rb"user\d+", raw), "a raw user name reached disk"
    leaked = [ip for ip in ips if re.search(rb"(?<![\d.])" + re.escape(ip.encode()) + rb"(?![\d])", raw)]
    assert not leaked, leaked[:5]
    shown = run_cli(["dead-letter", "show", "--config", PII], data_dir, **KEY)
    assert shown.returncode == 0 and "user777" in shown.stdout  # the operator with the key sees it
    report = run_cli(
        ["report", "logins-by-country", "--since", "3650d", "--format", "json", "--config", PII], data_dir, **KEY
    )
    assert report.returncode == 0, report.stderr
    logged_in = re.findall(r" - user\d+ \[[^]]+\] \"POST /login ", text)
    assert sum(r["logins"] for r in json.loads(report.stdout)) == len(logged_in) > 0


def test_same_user_same_pseudonym_on_two_hosts(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text('8.8.8.8 - alice [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    names = []
    for host in ("one", "two"):
        data = tmp_path / host
        assert run_cli(["write", str(log), "--config", PII], data, LOGLAKE_HOST_ID=host, **KEY).returncode == 0
        names.append(spool_rows(data)[0]["username"])
    assert names[0] == names[1] and re.fullmatch(r"[0-9a-f]{32}", names[0])
    other = run_cli(["write", str(log), "--config", PII], tmp_path / "three", LOGLAKE_PII_KEY="z" * 32)
    assert other.returncode == 0 and spool_rows(tmp_path / "three")[0]["username"] != names[0]
    manifest = json.loads(next((tmp_path / "one" / "spool" / "_batches").glob("*.json")).read_text())
    assert re.fullmatch(r"[0-9a-f]{12}", manifest["pii_key_id"]) and "k" * 32 not in json.dumps(manifest)


def test_encrypt_then_reveal_and_a_wrong_key_fails(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "enc.toml"
    cfg.write_text(
        '[tables.access_log]\ncolumns = ["ts", "username", "path"]\n'
        '[tables.access_log.transforms]\nusername = "encrypt"\n'
        'path = { op = "redact", pattern = "token=[^&]*", replacement = "token=REDACTED" }\n'
    )
    log = tmp_path / "a.log"
    log.write_text(
        '8.8.8.8 - alice [17/May/2015:10:05:03 +0000] "GET /x?token=s3cr3t&a=1 HTTP/1.1" 200 1 "-" "x"\n'
        '8.8.8.8 - alice [17/May/2015:10:05:04 +0000] "GET /y HTTP/1.1" 200 1 "-" "x"\n'
    )
    assert run_cli(["write", str(log), "--config", str(cfg)], data_dir, **KEY).returncode == 0
    rows = spool_rows(data_dir)
    assert rows[0]["path"] == "/x?token=REDACTED&a=1"
    assert rows[0]["username"] == rows[1]["username"] and rows[0]["username"].startswith("enc:")  # groups in SQL
    out = run_cli(["reveal", "--column", "username", rows[0]["username"], "--config", str(cfg)], data_dir, **KEY)
    assert out.returncode == 0 and out.stdout.strip() == "alice"
    wrong = run_cli(
        ["reveal", "--column", "username", rows[0]["username"], "--config", str(cfg)],
        data_dir,
        LOGLAKE_PII_KEY="w" * 32,
    )
    assert wrong.returncode == 1 and "cannot decrypt" in wrong.stderr and "Traceback" not in wrong.stderr


def test_check_config_rejects_bad_transforms_all_at_once(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[tables.access_log]\ncolumns = ["ts", "username", "client_ip"]\n'
        '[tables.access_log.transforms]\nusername = "hash"\nclient_ip = "scramble"\n'
        'path = "hash"\nreferer = { op = "truncate_ip", ipv4_prefix = 99 }\n'
    )
    proc = run_cli(["check-config", "--config", str(cfg)], data_dir)
    assert proc.returncode == 2
    for needle in ("LOGLAKE_PII_KEY", "unknown transform 'scramble'", "no column 'path'", "ipv4_prefix"):
        assert needle in proc.stderr, (needle, proc.stderr)
    ok = run_cli(["check-config", "--config", PII], data_dir, **KEY)
    assert ok.returncode == 0, ok.stderr
    unset = run_cli(["check-config", "--config", PII], data_dir)
    assert unset.returncode == 2 and "LOGLAKE_PII_KEY" in unset.stderr


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),
        ("1.0.16.1", "JP"),
        ("83.149.9.216", "RU"),
        ("2001:4860:4860::8888", "US"),
        ("2a00:1450:4001::1", "IE"),
        ("10.1.2.3", None),
        ("192.168.0.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("fe80::1", None),
        ("proxy.example.com", None),
        ("-", None),
    ],
)
def test_country_of_known_allocations(ip: str, country: str | None, tmp_path: Path) -> None:
    import pyarrow as pa

    (tmp_path / "none.toml").write_text("")
    cfg = load_config(tmp_path / "none.toml", environ={"LOGLAKE_DATA_DIR": str(tmp_path)})
    geo = GeoLookup(cfg.geoip, {"country"})
    out = geo.apply(pa.table({"client_ip": [ip, ip]}))
    assert out["country"].to_pylist() == [country, country]


def test_elastic_sample_is_mostly_us_traffic(tmp_path: Path, data_dir: Path) -> None:
    sample = real_file(ELASTIC)
    for args in (["write", str(sample)], ["rollover"]):
        assert run_cli([*args, "--config", PII], data_dir, **KEY).returncode == 0
    q = "select country, count(*) as n from access_log group by 1 order by 2 desc limit 3"
    proc = run_cli(["query", q, "--format", "json", "--config", PII], data_dir, **KEY)
    assert proc.returncode == 0, proc.stderr
    top = [(r["country"], r["n"]) for r in json.loads(proc.stdout)]
    from collections import Counter

    from iptocc import country_code

    ips = [line.split(" ", 1)[0] for line in sample.read_text().splitlines()]  # the full IPs, before truncation
    assert top == Counter(country_code(ips)).most_common(3) and top[0][0] == "US"


def test_city_region_and_asn_from_a_user_mmdb(tmp_path: Path, data_dir: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    city = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    city.insert_network(
        IPSet(["1.1.1.0/24"]),
        {
            "country": {"iso_code": "AU"},
            "city": {"names": {"en": "Sydney"}},
            "subdivisions": [{"names": {"en": "NSW"}}],
        },
    )
    city.to_db_file(str(tmp_path / "city.mmdb"))
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    asn.insert_network(
        IPSet(["1.1.1.0/24"]), {"autonomous_system_number": 13335, "autonomous_system_organization": "CLOUDFLARENET"}
    )
    asn.to_db_file(str(tmp_path / "asn.mmdb"))
    cfg = tmp_path / "geo.toml"
    cfg.write_text(
        f'[geoip]\nmmdb = "{tmp_path / "city.mmdb"}"\nasn_mmdb = "{tmp_path / "asn.mmdb"}"\n'
        '[tables.access_log]\ncolumns = ["ts", "client_ip", "country", "city", "region", "asn", "as_org"]\n'
    )
    log = tmp_path / "a.log"
    log.write_text(
        '1.1.1.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n'
        '8.8.8.8 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n'
        '10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n'
    )
    proc = run_cli(["write", str(log), "--config", str(cfg)], data_dir)
    assert proc.returncode == 0, proc.stderr
    rows = {r["client_ip"]: r for r in spool_rows(data_dir)}
    got = {c: rows["1.1.1.7"][c] for c in ("country", "city", "region", "asn", "as_org")}
    assert got == {"country": "AU", "city": "Sydney", "region": "NSW", "asn": 13335, "as_org": "CLOUDFLARENET"}
    assert rows["8.8.8.8"]["country"] == "US" and rows["8.8.8.8"]["city"] is None  # not in the file: iptocc
    assert all(rows["10.0.0.1"][c] is None for c in ("country", "city", "asn"))
    missing = tmp_path / "nommdb.toml"
    missing.write_text('[tables.access_log]\ncolumns = ["ts", "city"]\n')
    bad = run_cli(["check-config", "--config", str(missing)], data_dir)
    assert bad.returncode == 2 and "geoip.mmdb" in bad.stderr


@pytest.mark.parametrize("prefix", [8, 16, 20, 24, 32])
def test_vectorized_truncation_equals_ipaddress(prefix: int) -> None:
    import pyarrow as pa

    from loglake.writer.transforms import ColumnTransform

    values = ["83.149.9.216", "8.8.8.8", "2001:4860:4860::8888", "host.example.com", None, "10.0.0.255"]
    values += ["255.255.255.255", "1.2.3", "01.2.3.4", "256.1.1.1", "::ffff:1.2.3.4", "0.0.0.0", "1.2.3.4 "]
    t = ColumnTransform("client_ip", "truncate_ip", {"ipv4_prefix": prefix})
    got = t.apply(pa.array(values, pa.string())).to_pylist()
    assert got == [None if v is None else t._one(v) for v in values]


_GROUP = st.one_of(st.just(0), st.just(0xFFFF), st.integers(0, 15), st.integers(0, 0xFFFF))


@st.composite
def _ipv6_text(draw: st.DrawFn) -> str:
    """An IPv6 address spelled any way a log may hold it (runs of zeros likely), sometimes damaged."""
    import ipaddress

    n = sum(draw(_GROUP) << (16 * k) for k in range(8))
    a, tail = ipaddress.IPv6Address(n), str(ipaddress.IPv4Address(n & 0xFFFFFFFF))
    groups = a.exploded.split(":")
    text = draw(
        st.sampled_from(
            [str(a), a.exploded, str(a).upper(), ":".join(groups[:6]) + ":" + tail, "::" + tail, "::ffff:" + tail]
        )
    )
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", ":", ".", "0", "g", "%eth0", " ", "::"])) + text[at + 1 :]
    return text


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(text=_ipv6_text(), prefix=st.integers(0, 128))
def test_ipv6_truncation_equals_ipaddress(text: str, prefix: int) -> None:
    """The inet_pton/inet_ntop path spells every network as `ipaddress` does, or steps aside."""
    from loglake.writer.transforms import ColumnTransform, truncate_ip

    t = ColumnTransform("client_ip", "truncate_ip", {"ipv6_prefix": prefix})
    assert t._one(text) == truncate_ip(text, 24, prefix)


def test_ipv6_truncation_takes_the_c_library_path() -> None:
    """Client IPv6 addresses are mostly distinct: the fast path must really take them."""
    from loglake.writer import transforms

    assert transforms._NTOP_AGREES
    assert transforms._truncate_v6("2001:db8:85a3:8d3:1319:8a2e:370:7348", 48) == "2001:db8:85a3::"
    assert transforms._truncate_v6("::ffff:1.2.3.4", 128) is None  # ntop would spell it ::ffff:1.2.3.4
