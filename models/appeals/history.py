"""The history as staff read it: every event one sentence in the reader's language, saying who did
what, with the facts that matter to staff (where routing sent it and how sure it was, the assisting
departments by name, deadlines in the city's time). Staff words only: never the citizen's "you".

The requester's own timeline is `tracking.tracking_view`, an allow-list of public facts; this one is
for staff, and only the workbench shows it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from appealflow.models.appeals.appeal import AppealEvent
from appealflow.models.appeals.tracking import local_time
from appealflow.models.city.department import Category, Department
from appealflow.models.city.people import StaffUser

LANGUAGES = ("zh", "en")

# What staff call each status: the desk's words, not the requester's journey (tracking.STATUS_WORDS).
STAFF_STATUS_WORDS: dict[str, dict[str, str]] = {
    "received": {"zh": "待分派", "en": "Received"},
    "triage": {"zh": "待人工分派", "en": "Awaiting dispatch"},
    "dispatched": {"zh": "待签收", "en": "To accept"},
    "accepted": {"zh": "已签收", "en": "Accepted"},
    "in_progress": {"zh": "办理中", "en": "In progress"},
    "waiting_requester": {"zh": "待诉求人补充", "en": "Waiting for the requester"},
    "reviewing": {"zh": "答复待审核", "en": "Reply awaiting review"},
    "replied": {"zh": "已答复待评价", "en": "Replied, awaiting rating"},
    "returned": {"zh": "已退回待改派", "en": "Returned, to re-dispatch"},
    "arbitration": {"zh": "督办协调中", "en": "With a supervisor"},
    "reopened": {"zh": "重办", "en": "Reopened"},
    "merged": {"zh": "已合并", "en": "Merged"},
    "closed": {"zh": "已办结", "en": "Closed"},
}

ROLE_WORDS: dict[str, dict[str, str]] = {
    "operator": {"zh": "话务员", "en": "operator"},
    "dispatcher": {"zh": "派单员", "en": "dispatcher"},
    "handler": {"zh": "办理人", "en": "handler"},
    "department_head": {"zh": "部门负责人", "en": "department head"},
    "supervisor": {"zh": "督办员", "en": "supervisor"},
    "admin": {"zh": "管理员", "en": "administrator"},
}

# Facts written as words: channels, clocks, contact methods and outcomes, ratings.
FACT_WORDS: dict[str, dict[str, str]] = {
    "hotline": {"zh": "12345 热线", "en": "the 12345 hotline"},
    "web": {"zh": "网站", "en": "the website"},
    "mobile": {"zh": "移动端", "en": "the mobile app"},
    "email": {"zh": "电子邮件", "en": "e-mail"},
    "open311": {"zh": "Open311 接口", "en": "Open311"},
    "accept": {"zh": "签收", "en": "accept"},
    "contact": {"zh": "联系", "en": "contact"},
    "resolve": {"zh": "办结", "en": "resolve"},
    "phone": {"zh": "电话", "en": "phone"},
    "visit": {"zh": "上门", "en": "a visit"},
    "sms": {"zh": "短信", "en": "SMS"},
    "reached": {"zh": "已联系上", "en": "reached"},
    "no_answer": {"zh": "无人接听", "en": "no answer"},
    "unreachable": {"zh": "无法联系", "en": "unreachable"},
    "declined": {"zh": "拒绝沟通", "en": "declined to talk"},
    "satisfied": {"zh": "满意", "en": "satisfied"},
    "basically_satisfied": {"zh": "基本满意", "en": "basically satisfied"},
    "unsatisfied": {"zh": "不满意", "en": "unsatisfied"},
    "approved": {"zh": "批准", "en": "approved"},
    "denied": {"zh": "不批准", "en": "denied"},
}

# One sentence per kind of event. {who} is the actor as staff know them; the other fields are
# filled by `_facts` below. A kind missing here reads as OTHER, never as its code.
EVENT_SENTENCES: dict[str, dict[str, str]] = {
    "received": {"zh": "{who}受理，来源：{channel}", "en": "{who} took it in, through {channel}"},
    # A requester files their own appeal; staff (an operator on the phone) take one in.
    "received_from_requester": {"zh": "诉求人提交诉求，来源：{channel}",
                                "en": "The requester filed it, through {channel}"},
    "route": {"zh": "系统派至{department}（{how}）{assisting}{due}",
              "en": "The system dispatched it to {department} ({how}){assisting}{due}"},
    "triage": {"zh": "系统无法确定承办部门，转人工分派（{how}）",
               "en": "The system could not place it and passed it to a dispatcher ({how})"},
    "dispatch": {"zh": "{who}派至{department}{assisting}{due}",
                 "en": "{who} dispatched it to {department}{assisting}{due}"},
    "accept": {"zh": "{who}签收", "en": "{who} accepted it"},
    "contact": {"zh": "{who}首次联系诉求人{contact}", "en": "{who} first contacted the requester{contact}"},
    "record_contact": {"zh": "{who}联系诉求人{contact}", "en": "{who} contacted the requester{contact}"},
    "request_info": {"zh": "{who}请诉求人补充信息，时限暂停",
                     "en": "{who} asked the requester for more information; the clock stopped"},
    "info_received": {"zh": "{who}记录诉求人已补充信息，时限恢复（暂停 {paused}）",
                      "en": "{who} recorded the requester's answer; the clock runs again (paused {paused})"},
    "add_information": {"zh": "诉求人补充了信息", "en": "The requester added information"},
    "reply": {"zh": "{who}答复诉求人", "en": "{who} replied to the requester"},
    "submit_reply": {"zh": "{who}提交答复，等待部门负责人审核", "en": "{who} submitted a reply for the head's review"},
    "approve_reply": {"zh": "{who}审核通过答复，已发送诉求人{edited}",
                      "en": "{who} approved the reply and it was sent{edited}"},
    "reject_reply": {"zh": "{who}退回答复，请修改后重新提交", "en": "{who} sent the reply back to be reworked"},
    "answer": {"zh": "{who}当场答复", "en": "{who} answered it on the spot"},
    "return": {"zh": "{who}退回：不属于{department}办理", "en": "{who} returned it: not a matter for {department}"},
    "return_to_supervisor": {"zh": "{who}再次退回，提交督办员确定承办部门",
                             "en": "{who} returned it again; a supervisor decides who handles it"},
    "request_extension": {"zh": "{who}申请延期 {extra}", "en": "{who} asked for {extra} more"},
    "decide_extension": {"zh": "{who}{decision}延期申请", "en": "{who} {decision} the extension"},
    "add_assist": {"zh": "{who}请{department}协办", "en": "{who} asked {department} to assist"},
    "note": {"zh": "{who}备注", "en": "{who} added a note"},
    "files_added": {"zh": "{who}添加了{files}", "en": "{who} added {files}"},
    "assign": {"zh": "{who}分配给{assignee}", "en": "{who} assigned it to {assignee}"},
    "take": {"zh": "{who}认领", "en": "{who} took it"},
    "supervision_order": {"zh": "{who}向{department}发出督办单（第 {order} 号），{at}前回复",
                          "en": "{who} issued supervision order no. {order} to {department}, to answer by {at}"},
    "order_answered": {"zh": "{who}回复督办单（第 {order} 号）{in_time}",
                       "en": "{who} answered supervision order no. {order}{in_time}"},
    "merge": {"zh": "{who}合并到诉求 {parent} 一并办理", "en": "{who} merged it into {parent}"},
    "invalidate": {"zh": "{who}认定为无效诉求", "en": "{who} found it invalid"},
    "release": {"zh": "主件 {parent} 未答复即关闭，本件退回分派",
                "en": "{parent} closed unanswered; this one went back to dispatch"},
    "close": {"zh": "{rating}，办结", "en": "{rating}; closed"},
    "reopen": {"zh": "诉求人不满意（{rating}），重办：交回{department}{due}",
               "en": "The requester was not satisfied ({rating}); reopened with {department}{due}"},
    "reopen_to_supervisor": {"zh": "诉求人再次不满意（{rating}），提交督办员",
                             "en": "The requester was not satisfied again ({rating}); passed to a supervisor"},
    "withdraw": {"zh": "诉求人撤回诉求", "en": "The requester withdrew it"},
    "duplicate_suspected": {"zh": "系统发现疑似重复：{twins}", "en": "The system found probable duplicates: {twins}"},
    "escalation_warning": {"zh": "{clock}时限将到（{at}）", "en": "The {clock} deadline is near ({at})"},
    "escalation_breach": {"zh": "{clock}时限已超期（{at}）", "en": "The {clock} deadline passed ({at})"},
    "escalation_severe": {"zh": "{clock}时限严重超期，已通报上级部门（{at}）",
                          "en": "The {clock} deadline is long past; the level above was told ({at})"},
}
OTHER = {"zh": "{who}更新了诉求", "en": "{who} updated the appeal"}


def _files(detail: dict, zh: bool) -> str:
    """"照片 2 张、文件 1 份" / "2 photos and 1 document"; staff-only files said as such."""
    photos, documents = int(detail.get("photos") or 0), int(detail.get("documents") or 0)
    if zh:
        said = "、".join(x for x in (f"照片 {photos} 张" if photos else "",
                                    f"文件 {documents} 份" if documents else "") if x)
        return said + ("（仅工作人员可见）" if detail.get("visibility") == "staff" else "")
    said = " and ".join(x for x in (f"{photos} photo{'s' * (photos != 1)}" if photos else "",
                                    f"{documents} document{'s' * (documents != 1)}" if documents else "") if x)
    return said + (" (staff only)" if detail.get("visibility") == "staff" else "")
SYSTEM = {"zh": "系统", "en": "The system"}
REQUESTER = {"zh": "诉求人", "en": "The requester"}

# The free text an event carries (a note, a reason, a reply), shown under its sentence as typed.
TEXT_FIELDS = ("text", "reason", "result", "question", "information", "comment", "note", "subject", "answer")
TEXT_LABELS: dict[str, dict[str, str]] = {
    "text": {"zh": "内容", "en": "Text"}, "reason": {"zh": "理由", "en": "Reason"},
    "result": {"zh": "答复", "en": "Reply"}, "question": {"zh": "需补充", "en": "Asked"},
    "information": {"zh": "补充内容", "en": "Added"}, "comment": {"zh": "评价意见", "en": "Comment"},
    "note": {"zh": "记录", "en": "Note"}, "subject": {"zh": "督办事项", "en": "To do"},
    "answer": {"zh": "办理情况", "en": "Answer"},
}

# Text that is the machine's own trace, said better by the sentence: routing's reason, the twins note.
INTERNAL_TEXT = {"route": ("reason",), "triage": ("reason",), "duplicate_suspected": ("note",)}


@dataclass(frozen=True)
class Said:
    """One event as staff read it: when, the sentence in each language, and its free text."""

    kind: str
    at: datetime
    sentence: dict[str, str]
    text: dict[str, str]  # label (in each language) → what was typed: {"zh": "理由", "en": "Reason", "value": …}


class Names:
    """Departments, categories and people by code, read once for one history."""

    def __init__(self, departments: Mapping[str, Department], categories: Mapping[str, Category],
                 people: Mapping[str, StaffUser]):
        self.departments, self.categories, self.people = departments, categories, people

    @classmethod
    def read(cls, session: Session, events: Iterable[AppealEvent]) -> "Names":
        usernames = {e.actor.partition(":")[2] for e in events if ":" in e.actor}
        usernames |= {str(e.detail.get("assignee")) for e in events if e.detail.get("assignee")}
        people = {u.username: u for u in session.exec(select(StaffUser).where(col(StaffUser.username).in_(usernames)))}
        return cls({d.code: d for d in session.exec(select(Department))},
                   {c.code: c for c in session.exec(select(Category))}, people)

    def department(self, code: str | None, lang: str) -> str:
        found = self.departments.get(code or "")
        return (found.name_zh if lang == "zh" else found.name_en) if found else (code or "—")

    def category(self, code: str | None, lang: str) -> str:
        found = self.categories.get(code or "")
        return (found.name_zh if lang == "zh" else found.name_en) if found else (code or "—")

    def person(self, username: str, role: str, lang: str) -> str:
        """A person's display name and department; the role's word when the account has no real name."""
        user = self.people.get(username)
        role_word = ROLE_WORDS.get(role, {}).get(lang, role)
        name = user.display_name if user and user.display_name != username else role_word
        department = user.department_code if user else None
        if department:
            where = self.department(department, lang)
            return f"{where}{name}" if lang == "zh" else f"{name} of {where}"
        return name if lang == "zh" or name != role_word else f"the {name}"

    def actor(self, actor: str, lang: str) -> str:
        role, _, username = actor.partition(":")
        if role == "system":
            return SYSTEM[lang]
        if role in ("requester", "") or actor == "requester":
            return REQUESTER[lang]
        if role == "open311":
            return f"Open311 客户端 {username}" if lang == "zh" else f"the Open311 client {username}"
        return self.person(username, role, lang)


def _percent(value) -> str:
    return f"{round(float(value) * 100)}%" if isinstance(value, int | float) else "—"


def _facts(event: AppealEvent, names: Names, lang: str, zone: str) -> dict[str, str]:
    d = event.detail or {}
    zh = lang == "zh"
    sep = "、" if zh else ", "

    def word(value) -> str:
        return FACT_WORDS.get(str(value), {}).get(lang, str(value))

    def when(value) -> str:
        try:
            return local_time(datetime.fromisoformat(str(value)), lang, zone)
        except ValueError:
            return "—"

    assisting = [names.department(c, lang) for c in d.get("assisting") or []]
    by_model = d.get("routed_by") == "model"
    routed_by = ("模型" if zh else "the model") if by_model else ("关键词规则" if zh else "keyword rules")
    sure = _percent(d.get("confidence"))
    category = names.category(d.get("category"), lang) if d.get("category") else None
    if event.kind == "triage":
        best = (d.get("suggestions") or [{}])[0] if d.get("suggestions") else {}
        top, top_sure = names.department(best.get("department"), lang), _percent(best.get("probability"))
        how = (f"{routed_by}最有把握的是{top}，{top_sure}" if zh
               else f"{routed_by} were at most {top_sure} sure, for {top}") if best else routed_by
    else:
        how = (f"按{routed_by}，把握 {sure}" + (f"，归为“{category}”" if category else "")) if zh else \
            (f"by {routed_by}, {sure} sure" + (f", as {category}" if category else ""))
    contact = ""
    if d.get("method"):
        contact = (f"（{word(d['method'])}，{when(d.get('contacted_at'))}，{word(d.get('outcome'))}）" if zh
                   else f" ({word(d['method'])}, {when(d.get('contacted_at'))}, {word(d.get('outcome'))})")
    rating = ""
    if "satisfaction" in d:
        solved = ("已解决" if d.get("solved") else "未解决") if zh else ("solved" if d.get("solved") else "not solved")
        rating = f"{solved}，{word(d['satisfaction'])}" if zh else f"{solved}, {word(d['satisfaction'])}"
        if event.kind == "close":
            rating = f"诉求人评价：{rating}" if zh else f"The requester rated it: {rating}"
    elif event.kind == "close":
        rating = "诉求人逾期未评价" if zh else "Not rated in time"
    paused = int(d.get("paused_seconds") or 0) // 60
    twins = sep.join(str(t.get("code")) for t in d.get("twins") or [] if isinstance(t, dict))
    return {
        "who": names.actor(event.actor, lang),
        "channel": word(d.get("channel", "")),
        "department": names.department(d.get("department"), lang),
        "assisting": ((f"，协办：{sep.join(assisting)}" if zh else f", assisted by {sep.join(assisting)}")
                      if assisting else ""),
        "due": ((f"，办结时限 {when(d['resolve_due_at'])}" if zh else f", to resolve by {when(d['resolve_due_at'])}")
                if d.get("resolve_due_at") else ""),
        "how": how, "contact": contact, "rating": rating,
        "paused": f"{paused // 60} 小时 {paused % 60} 分" if zh else f"{paused // 60} h {paused % 60} min",
        "extra": str(d.get("extra", "")), "decision": word(d.get("decision", "")),
        "assignee": names.person(str(d.get("assignee", "")), "handler", lang),
        "parent": str(d.get("parent", "—")),
        "edited": ("（负责人修改过）" if zh else " (edited by the head)") if d.get("edited") else "",
        "twins": twins or "—",
        "clock": word(d.get("clock", "")), "at": when(d.get("due_at")),
        "order": str(d.get("order", "—")),
        "files": _files(d, zh),
        "in_time": (("，按时" if d.get("on_time") else "，已超时") if zh
                    else (", in time" if d.get("on_time") else ", late")) if "on_time" in d else "",
    }


def narrate(events: Iterable[AppealEvent], names: Names, *, zone: str) -> list[Said]:
    """Each event as one sentence per language, with its free text beside it."""
    out = []
    for event in events:
        sentence = {}
        for lang in LANGUAGES:
            kind = event.kind
            if kind == "received" and (event.actor or "").startswith("requester"):
                kind = "received_from_requester"
            template = EVENT_SENTENCES.get(kind, OTHER)[lang]
            sentence[lang] = template.format_map(_facts(event, names, lang, zone))
        detail = event.detail or {}
        hidden = INTERNAL_TEXT.get(event.kind, ())
        text = next(({"zh": TEXT_LABELS[f]["zh"], "en": TEXT_LABELS[f]["en"], "value": str(detail[f])}
                     for f in TEXT_FIELDS if f not in hidden and isinstance(detail.get(f), str) and detail[f].strip()),
                    {})
        out.append(Said(event.kind, event.at, sentence, text))
    return out
