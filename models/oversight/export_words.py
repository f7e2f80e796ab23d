"""The supervision tables as a person reads them in a spreadsheet: each column headed in the reader's
language, departments, categories and places by name, statuses in the desk's words, yes and no as
words. The JSON API keeps codes; only the files made for people are written this way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from appealflow.models.appeals.history import STAFF_STATUS_WORDS
from appealflow.models.appeals.intake import districts
from appealflow.models.city.department import Category, Department

COLUMN_WORDS: dict[str, tuple[str, str]] = {
    "department": ("部门", "Department"),
    "dispatched": ("派单数", "Dispatched"),
    "response_due": ("应签收数", "Response due"),
    "anonymous": ("匿名诉求数", "Anonymous"),
    "with_photos": ("附照片诉求数", "With photos"),
    "responded_on_time": ("按时签收数", "Accepted on time"),
    "rated": ("评价数", "Rated"),
    "solved": ("评为已解决", "Rated solved"),
    "satisfied": ("满意及基本满意", "Satisfied or fairly satisfied"),
    "replied": ("答复数", "Replied"),
    "replied_on_time": ("按时答复数", "Replied on time"),
    "open_late": ("在办超期数", "Open and late"),
    "returns": ("退回数", "Returns"),
    "reopens": ("重办数", "Reopenings"),
    "replies_in_period": ("期内答复数", "Replies in the period"),
    "backlog": ("在办数", "Backlog"),
    "overdue": ("超期数", "Overdue"),
    "response_rate": ("响应率", "Response rate"),
    "resolution_rate": ("解决率", "Resolution rate"),
    "satisfaction_rate": ("满意率", "Satisfaction rate"),
    "on_time_rate": ("按时办结率", "On-time rate"),
    "return_rate": ("退回率", "Return rate"),
    "reopen_rate": ("重办率", "Reopen rate"),
    "code": ("受理编号", "Code"),
    "appeal": ("受理编号", "Code"),
    "status": ("状态", "Status"),
    "category": ("类别", "Category"),
    "district": ("区", "District"),
    "street": ("街道", "Street"),
    "title": ("标题", "Title"),
    "resolve_due_at": ("办结时限", "Resolve by"),
    "hours_late": ("超期小时数", "Hours late"),
    "reopened": ("重办", "Reopened"),
    "appeals": ("诉求数", "Appeals"),
    "first": ("最早", "First"),
    "last": ("最近", "Last"),
    "id": ("消息编号", "Message id"),
    "event": ("事件", "Event"),
    "recipient": ("接收方", "Recipient"),
    "channel": ("渠道", "Channel"),
    "attempts": ("尝试次数", "Attempts"),
    "last_error": ("最后错误", "Last error"),
    "last_attempt_at": ("最后尝试", "Last attempt"),
    "created_at": ("创建时间", "Created"),
    "kind": ("待决事项", "Waiting decision"),
    "extra": ("申请延长", "Extension asked"),
    "reason": ("理由或标题", "Reason or title"),
    "since": ("起始时间", "Since"),
}
YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}
# Values of the undelivered list, as words.
VALUE_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "channel": {"email": ("电子邮件", "e-mail"), "sms": ("短信", "text message"), "bot": ("群机器人", "group bot"),
                "webhook": ("网络回调", "webhook"), "none": ("无", "none")},
    "recipient": {"requester": ("诉求人", "requester"), "department": ("承办部门", "department"),
                  "assisting": ("协办部门", "assisting department"), "supervisor": ("督办", "supervision"),
                  "assignee": ("办理人", "assignee"), "parent": ("上级部门", "parent department")},
    "kind": {"extension": ("延期申请", "extension request"), "disputed_return": ("退回争议", "disputed return")},
    "notification_status": {"failed": ("发送失败", "failed"), "undeliverable": ("无法送达", "undeliverable"),
                            "pending": ("待发送", "pending"), "sent": ("已发送", "sent")},
}


@dataclass
class ReaderNames:
    """Names by code, read once per export."""

    departments: dict[str, tuple[str, str]] = field(default_factory=dict)
    categories: dict[str, tuple[str, str]] = field(default_factory=dict)
    districts: dict[str, tuple[str, str]] = field(default_factory=dict)
    streets: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def read(cls, session: Session) -> ReaderNames:
        names = cls({d.code: (d.name_zh, d.name_en) for d in session.exec(select(Department))},
                    {c.code: (c.name_zh, c.name_en) for c in session.exec(select(Category))})
        for district in districts(session):
            names.districts[district["code"]] = (district["name_zh"] or district["code"],
                                                 district["name_en"] or district["code"])
            for street in district["streets"]:
                code = street["code"]
                names.streets[code] = (street["name_zh"] or code, street["name_en"] or code)
        return names


    def by_kind(self) -> dict[str, dict[str, dict[str, str]]]:
        """Category and place names for a page's script: {kind: {code: {name_zh, name_en}}}."""
        return {kind: {code: {"name_zh": zh, "name_en": en} for code, (zh, en) in found.items()}
                for kind, found in (("category", self.categories), ("district", self.districts),
                                    ("street", self.streets))}


def header(column: str, lang: str) -> str:
    zh, en = COLUMN_WORDS.get(column, (column, column))
    return zh if lang == "zh" else en


TIME_COLUMNS = {"resolve_due_at", "first", "last", "last_attempt_at", "created_at", "since"}


def _local(value, zone: ZoneInfo) -> str:
    """A time as the city writes it in a spreadsheet cell: local, to the minute."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def readable(rows: list[dict], names: ReaderNames, lang: str, zone: str = "Asia/Shanghai") -> list[dict]:
    """The rows with headers and values in `lang`, times local; numbers stay numbers."""
    which = 0 if lang == "zh" else 1
    city = ZoneInfo(zone)
    lookups = {"department": names.departments, "category": names.categories, "district": names.districts,
               "street": names.streets}
    out = []
    for row in rows:
        shown = {}
        for key, value in row.items():
            if key in TIME_COLUMNS and isinstance(value, str | datetime) and value:
                value = _local(value, city)
            elif key in lookups and isinstance(value, str):
                value = lookups[key].get(value, (value, value))[which]
            elif key == "status" and isinstance(value, str) and value in STAFF_STATUS_WORDS:
                value = STAFF_STATUS_WORDS[value][lang]
            elif key == "status" and isinstance(value, str) and value in VALUE_WORDS["notification_status"]:
                value = VALUE_WORDS["notification_status"][value][which]
            elif key in VALUE_WORDS and isinstance(value, str) and value in VALUE_WORDS[key]:
                value = VALUE_WORDS[key][value][which]
            elif isinstance(value, bool):
                value = YES_NO[lang][0 if value else 1]
            shown[header(key, lang)] = value
        out.append(shown)
    return out
