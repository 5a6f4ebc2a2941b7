"""Poison values over HTTP: `serve` dead-letters them like the file writer (202, never a 500), and
with encrypted dead letters its answers and manifests name the check, never the value."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.ingest.test_serve import Server, make_certs
from tests.writer.test_poison_values import KEY, LONG, _clear_text_under, _clf


def test_serve_dead_letters_poison_values_and_keeps_them_out_of_manifests(tmp_path: Path, data_dir: Path) -> None:
    key = tmp_path / "pii.key"
    key.write_text(KEY, encoding="utf-8")
    key.chmod(0o600)
    config = tmp_path / "loglake.toml"
    config.write_text(f'[pii]\nkey_file = "{key}"\nencrypt_dead_letters = true\n', encoding="utf-8")
    srv = Server(tmp_path, data_dir, make_certs(tmp_path), "--config", str(config))
    try:
        body = "\n".join([_clf(size=LONG), _clf(size="carol@example.com"), _clf()]) + "\n"
        code, answer = srv.post(body.encode())
        assert code == 202, answer
        assert answer["rows"] == {"access_log": 1}
        assert answer["dead_lettered"] == [
            {"line": 1, "reason": "invalid_bytes"},
            {"line": 2, "reason": "invalid_bytes"},
        ]
        nd = b'{"ts": "2020-01-01T00:00:00Z", "status": 1e400}\n{"ts": "2020-01-01T00:00:00Z", "bytes": 1' + b"0" * 5000
        code, answer = srv.post(nd + b"}\n", Content_Type="application/x-ndjson")
        assert code == 202, answer
        assert [d["reason"] for d in answer["dead_lettered"]] == ["invalid_status", "invalid_json"]
    finally:
        rc, err = srv.stop()
    assert rc == 0, err
    assert "carol" not in err and _clear_text_under(data_dir, b"carol") == []
    shown = run_cli(["dead-letter", "show", "--config", str(config)], data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "invalid_bytes: 'carol@example.com'" in shown.stdout
