"""Logs that don't live in files: `loglake serve` (HTTP), `loglake send`, and `LoglakeHandler`."""
