"""Structured logs: one JSON object per line on stderr.

Every record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``pid`` and ``msg``, plus the
``extra`` fields a call passes (``event``, ``method``, ``peer``, ``model``, ...). Tracebacks go
into ``exc`` and only into the log, never to clients.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Send the ``eventsp.services`` logger to ``stream`` (stderr) as JSON lines."""
    logger = logging.getLogger("eventsp.services")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger
