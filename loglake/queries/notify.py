"""Telling someone: a rule that starts or stops firing runs a command and/or POSTs to a webhook.

Only changes of state are sent (firing, resolved, and error when a rule could not be evaluated),
never a repeat while a rule stays in one, and
the last known state is kept in `state/alerts.json` so a restarted `alert --watch` does not page
again for an alert already sent. The webhook token comes from an environment variable or a file,
never from the config value, and travels only over https (or to localhost).
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from loglake.config import AlertingConfig, Config
from loglake.errors import ConfigError
from loglake.fsutil import atomic_write_json, private_dir, read_json
from loglake.queries.alerts import Verdict


class NotifyError(Exception):
    """A command or webhook failed; the transition is retried at the next evaluation."""


def _token(a: AlertingConfig) -> str:
    if a.webhook_token_file:
        try:
            return Path(a.webhook_token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError([f"alerting.webhook_token_file: cannot read {a.webhook_token_file}: {e.strerror}"]) from e
    return os.environ.get(a.webhook_token_env, "")


class Notifier:
    def __init__(self, cfg: Config) -> None:
        self.a = cfg.alerting
        self.token = _token(self.a) if self.a.webhook_url else ""

    def send(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, default=str).encode()
        if self.a.command:
            self._run_command(body)
        if self.a.webhook_url:
            self._post(body)

    def _run_command(self, body: bytes) -> None:
        try:
            done = subprocess.run(
                shlex.split(self.a.command), input=body, capture_output=True, timeout=self.a.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NotifyError(f"alerting.command failed: {e}") from e
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-200:]
            raise NotifyError(f"alerting.command exited {done.returncode}: {tail}")

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "loglake-alert"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.a.webhook_url, data=body, headers=headers, method="POST")
        context = ssl.create_default_context(cafile=self.a.ca_bundle or None)
        try:
            with urllib.request.urlopen(request, timeout=self.a.timeout, context=context) as response:
                if response.status >= 300:
                    raise NotifyError(f"webhook answered {response.status}")
        except OSError as e:  # URLError, HTTPError, TLS and timeouts are all OSErrors
            raise NotifyError(f"webhook {self.a.webhook_url.split('?')[0]}: {e}") from e


class AlertState:
    """Each rule's last reported state (persisted: ok, firing, or error = could not be evaluated),
    and the transitions a new round makes: `firing`, `error` (with the reason), `resolved`."""

    _EVENT: ClassVar[dict[str, str]] = {"firing": "firing", "error": "error", "ok": "resolved"}

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            saved = read_json(path)
            states = saved.get("states") or {r: "firing" if f else "ok" for r, f in saved.get("firing", {}).items()}
            self.states: dict[str, str] = {str(r): str(s) for r, s in states.items()}
        except (OSError, ValueError, AttributeError):
            self.states = {}

    def transitions(self, verdicts: list[Verdict]) -> list[dict[str, Any]]:
        events = []
        for v in verdicts:
            before = self.states.get(v.rule, "ok")
            if v.state != before:
                at = datetime.now(UTC).isoformat()
                events.append({"state": self._EVENT[v.state], "previous": before, "at": at, **v.as_dict()})
        return events

    def mark(self, event: dict[str, Any]) -> None:
        self.states[event["rule"]] = "ok" if event["state"] == "resolved" else event["state"]
        private_dir(self.path.parent)
        firing = {r: s == "firing" for r, s in self.states.items()}  # the file's older form, still read
        atomic_write_json(self.path, {"states": self.states, "firing": firing, "at": time.time()})


__all__ = ["AlertState", "Notifier", "NotifyError"]
