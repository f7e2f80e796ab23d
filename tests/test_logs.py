"""Log lines keep the fields code passes with them, so an appeal's tracking code is on its lines."""

import json
import logging

from appealflow.logs import JsonFormatter, LogfmtFormatter


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.getLogger("appealflow.test").makeRecord(
        "appealflow.test", logging.WARNING, __file__, 1, message, (), None, extra=extra)
    return record


def test_logfmt_lines_carry_every_extra_field_quoted_where_needed():
    line = LogfmtFormatter().format(_record("recording dispatch failed", appeal="261127-K7Q9XMA", reason="no rule"))
    assert "level=warning" in line and 'event="recording dispatch failed"' in line
    assert "appeal=261127-K7Q9XMA" in line and 'reason="no rule"' in line


def test_json_lines_are_one_object_with_the_fields():
    entry = json.loads(JsonFormatter().format(_record("delivery failed", appeal="261127-K7Q9XMA", channel="sms")))
    assert entry["event"] == "delivery failed" and entry["appeal"] == "261127-K7Q9XMA" and entry["channel"] == "sms"
