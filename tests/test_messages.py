"""Who hears what is the domain's; the words are notifications'. Every message renders in Chinese and
English, times in the city's zone, with nothing left untranslated or unfilled."""

import ast
import re
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appealflow.models.appeal import Appeal
from appealflow.models.audience import WHO_HEARS, Audience, Event, messages_for, when
from appealflow.models.department import Department
from appealflow.notifications.messages import LANGUAGES, render, render_in, templates

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")
# What each event's callers put in its facts, beyond the appeal's own (see models/workbench.py,
# models/dispatch.py, models/escalation.py).
EVENT_FACTS = {
    Event.triaged: {},
    Event.dispatched: {"accept_due": "2026-12-04T01:00:00+00:00", "resolve_due": "2026-12-11T09:00:00+00:00"},
    Event.information_requested: {"question": "请提供具体门牌号"},
    Event.replied: {"result": "已修复"},
    Event.merged: {"parent": "261127-ABCDEFG"},
    Event.invalidated: {"reason": "重复提交"},
    Event.returned: {"reason": "不属本部门职责", "returned_by": {"zh": "市住房局", "en": "Housing Bureau"}},
    Event.extension_decided: {"decision": "approved", "extra": "3d"},
    Event.assist_requested: {"reason": "需要协助"},
    **{e: {"clock": "resolve", "due": "2026-12-04T09:00:00+00:00"}
       for e in (Event.escalation_warning, Event.escalation_breach, Event.escalation_severe)},
}


def _department(code: str, parent: str | None = None) -> Department:
    return Department(code=code, name_zh=f"{code}局", name_en=f"{code} bureau", kind="bureau",
                      parent_code=parent, notify=[f"mailto:{code}@example.test"])


DEPARTMENTS = {d.code: d for d in (_department("hotline_centre"), _department("housing", parent="city"),
                                   _department("city"), _department("water"))}
APPEAL = Appeal(id=7, code="261127-K7Q9XMA", channel="web", appeal_type="complaint", priority="normal",
                title="楼上漏水 <b>", text="…", district="shinan", street="badaguan", status="accepted",
                department_code="housing", requester_email="r@example.test", received_at=datetime.now(UTC),
                updated_at=datetime.now(UTC))


def test_no_domain_module_imports_an_adapter():
    for path in (ROOT / "models").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not re.match(r"appealflow\.(notifications|api|flows|workers)\b", name), (path, name)


def test_both_languages_have_every_message_with_the_same_fields():
    for event, audiences in WHO_HEARS.items():
        for audience in audiences:
            fields = {}
            for language in LANGUAGES:
                template = templates(language)[event.value][audience.value]
                fields[language] = {f for part in template.values()
                                    for _, f, _, _ in string.Formatter().parse(part) if f}
                if language == "zh":
                    assert CJK.search(template["subject"]) and CJK.search(template["body"]), (event, audience)
            assert fields["zh"] == fields["en"], (event, audience)


@pytest.mark.parametrize("event", list(Event))
def test_every_message_renders_from_the_facts_its_callers_give(event):
    messages = messages_for(event, APPEAL, key="v3", departments=DEPARTMENTS, facts=EVENT_FACTS[event],
                            assisting=("water",), helper="water")
    assert {m.audience for m in messages} == set(WHO_HEARS[event])
    for message in messages:
        for language in LANGUAGES:
            subject, body = render_in(language, event.value, message.audience.value, message.facts,
                                      zone="Asia/Shanghai")
            assert "{" not in subject + body and "None" not in body
        if message.audience == Audience.requester:
            assert message.targets == ("mailto:r@example.test",)
        else:
            assert "r@example.test" not in str(message.facts)  # no personal data to departments


def test_times_are_written_in_the_citys_zone_as_people_write_them():
    facts = messages_for(Event.dispatched, APPEAL, key="v1", departments=DEPARTMENTS, handling="housing",
                         facts={"accept_due": when(datetime(2026, 12, 4, 1, 0, tzinfo=UTC)),
                                "resolve_due": when(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))})[-1].facts
    subject, body = render("dispatched", "requester", facts, language="zh", zone="Asia/Shanghai")
    assert subject == "您的诉求 261127-K7Q9XMA 已派至housing局"
    assert "12月4日 17:00" in body and "4 Dec 17:00" in body  # English beside the Chinese
    _, english_only = render("dispatched", "requester", facts, language="en", zone="Asia/Shanghai")
    assert "4 Dec 17:00" in english_only and not CJK.search(english_only.replace(APPEAL.title, ""))
