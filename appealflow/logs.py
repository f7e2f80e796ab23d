"""Logs that keep their fields: one event per line, with every `extra={...}` field shown.

`logfmt` (the default) reads well in a terminal and greps well; `json` is for a log shipper. Code
that logs about an appeal passes `extra={"appeal": code}`, so every such line carries its tracking
code.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


def _logfmt_value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [f"time={stamp}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"event={_logfmt_value(record.getMessage())}"]
        parts += [f"{key}={_logfmt_value(value)}" for key, value in record_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
                 **record_fields(record)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


FORMATTERS = {"logfmt": LogfmtFormatter, "json": JsonFormatter}


def configure(level: str = "WARNING", fmt: str = "logfmt") -> None:
    """Route every logger (ours, RQ's, Prefect's, uvicorn's) through one structured handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(FORMATTERS[fmt]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
