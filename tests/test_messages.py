"""Who hears what is the domain's; the words are notifications'. Every message renders in Chinese and
English, times in the city's zone, with nothing left untranslated or unfilled."""

import re
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.city.department import Department
from appealflow.models.clocks.deadlines import Deadlines
from appealflow.models.routing.dispatch import dispatch_facts
from appealflow.models.telling.audience import WHO_HEARS, Assignee, Audience, Event, messages_for, when
from appealflow.notifications.messages import (
    LANGUAGES,
    QR_CID,
    Links,
    render,
    render_in,
    render_message,
    templates,
)

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")
# What each event's callers put in its facts, beyond the appeal's own (see models/appeals/workbench.py,
# models/routing/dispatch.py, models/clocks/escalation.py).
DUES = {"accept_due": "2026-12-04T01:00:00+00:00", "resolve_due": "2026-12-11T09:00:00+00:00"}
EVENT_FACTS = {
    Event.received: {},
    Event.triaged: {},
    Event.dispatched: DUES,
    Event.transferred: DUES,
    Event.reopened: DUES,
    Event.reopened_to_supervisor: {},
    Event.closed: {"satisfaction": "basically_satisfied"},
    Event.withdrawn: {"reason": "已自行解决"},
    Event.information_added: {},
    Event.information_requested: {"question": "请提供具体门牌号"},
    Event.replied: {"result": "已修复"},
    Event.merged: {"parent": "261127-ABCDEFG"},
    Event.invalidated: {"reason": "重复提交"},
    Event.returned: {"reason": "不属本部门职责", "returned_by": {"zh": "市住房局", "en": "Housing Bureau"}},
    Event.extension_decided: {"decision": "approved", "extra": "3d"},
    Event.assist_requested: {"reason": "需要协助"},
    Event.assigned: {"assigned_by": "head.housing", "resolve_due": "2026-12-11T09:00:00+00:00"},
    Event.reply_returned: {"reason": "请写明维修日期"},
    **{e: {"clock": "resolve", "due": "2026-12-04T09:00:00+00:00"}
       for e in (Event.escalation_warning, Event.escalation_breach, Event.escalation_severe)},
}


def _department(code: str, parent: str | None = None) -> Department:
    return Department(code=code, name_zh=f"{code}局", name_en=f"{code} bureau", kind="bureau",
                      parent_code=parent, notify=[f"mailto:{code}@example.test"])


ASSIGNEE = Assignee("handler.housing", "王芳", ("mailto:wang.fang@example.test",))
LINKS = Links.of("261127-K7Q9XMA", public_url="http://127.0.0.1:8000", signing_key=b"k")
DEPARTMENTS = {d.code: d for d in (_department("hotline_centre"), _department("housing", parent="city"),
                                   _department("city"), _department("water"))}
APPEAL = Appeal(id=7, code="261127-K7Q9XMA", channel="web", appeal_type="complaint", priority="normal",
                title="楼上漏水 <b>", text="…", district="shinan", street="badaguan", status="accepted",
                category_code="water_supply_interruption",
                department_code="housing", requester_email="r@example.test", received_at=datetime.now(UTC),
                updated_at=datetime.now(UTC))


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
                            assisting=("water",), helper="water", assignee=ASSIGNEE)
    assert {m.audience for m in messages} == set(WHO_HEARS[event])
    for message in messages:
        for language in LANGUAGES:
            subject, body = render_in(language, message.event.value, message.audience.value, message.facts,
                                      zone="Asia/Shanghai", links=LINKS)
            assert "{" not in subject + body and "None" not in body
            if language == "en":  # nothing left untranslated in an English message but what people typed
                typed = subject + body
                for value in message.facts.values():
                    typed = typed.replace(value, "") if isinstance(value, str) else typed
                assert not CJK.search(typed), (event, subject, body)
            if message.audience == Audience.requester:
                assert LINKS.link in body, (event, body)  # every requester message opens the appeal
                assert (LINKS.rating_link in body) == (event == Event.replied)
            else:
                assert LINKS.workbench_link in body and LINKS.link not in body  # the token is the requester's
            rendered = render_message(message.event.value, message.audience.value, message.facts,
                                      language=language, zone="Asia/Shanghai", links=LINKS, qr=True)
            assert "楼上漏水 &lt;b&gt;" in rendered.html and "<b>" not in rendered.html  # escaped, real HTML
            assert rendered.html.startswith("<!DOCTYPE html>") and f'src="cid:{QR_CID}"' in rendered.html
            assert [cid for cid, _ in rendered.images] == [QR_CID] and rendered.images[0][1].startswith(b"\x89PNG")
        if message.audience == Audience.requester:
            assert message.targets == ("mailto:r@example.test",)
        else:
            assert "r@example.test" not in str(message.facts)  # no personal data to departments


def test_times_are_written_in_the_citys_zone_as_people_write_them():
    facts = messages_for(Event.dispatched, APPEAL, key="v1", departments=DEPARTMENTS, handling="housing",
                         facts={"accept_due": when(datetime(2026, 12, 4, 1, 0, tzinfo=UTC)),
                                "resolve_due": when(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))})[-1].facts
    subject, body = render("dispatched", "requester", facts, language="zh", zone="Asia/Shanghai", links=LINKS)
    assert subject == "您的诉求 261127-K7Q9XMA 已派至housing局"
    assert "12月4日 17:00" in body and "4 Dec 17:00" in body  # English beside the Chinese
    # The department reads the category and the place by name, in its language, never their codes.
    deadlines = Deadlines(accept_due_at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC), contact_due_at=None,
                          resolve_due_at=datetime(2026, 12, 11, 9, 0, tzinfo=UTC))
    department = messages_for(Event.dispatched, APPEAL, key="v1", departments=DEPARTMENTS, handling="housing",
                              facts=dispatch_facts(APPEAL.category_code, deadlines))[0]
    _, told = render("dispatched", department.audience.value, department.facts, zone="Asia/Shanghai", links=LINKS)
    assert "分类：供水与停水。地点：市南区八大关街道。" in told
    assert "Location: Badaguan Subdistrict, Shinan District" in told
    assert "water_supply_interruption" not in told and "shinan" not in told
    _, english_only = render("dispatched", "requester", facts, language="en", zone="Asia/Shanghai", links=LINKS)
    assert "4 Dec 17:00" in english_only and not CJK.search(english_only.replace(APPEAL.title, ""))
