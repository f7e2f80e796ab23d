"""Public tracking codes, the requester's access token, and masking of personal data."""

import base64
import hashlib
import hmac
import io
import secrets
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno

from appealflow.models.appeals.enums import OPEN_STATUSES

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: codes are read out on the phone


def new_tracking_code(now: datetime) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(7))
    return f"{now:%y%m%d}-{suffix}"


def access_token(signing_key: bytes, code: str) -> str:
    """The requester's secret for one appeal, derived from the code so a retried intake can repeat it."""
    digest = hmac.new(signing_key, f"appeal-access:{code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def token_matches(signing_key: bytes, code: str, token: str | None) -> bool:
    # compare_digest raises on non-ASCII text; such a token cannot be one we issued.
    if not token or not token.isascii():
        return False
    return hmac.compare_digest(access_token(signing_key, code), token)


# What the requester may read of each event, by kind: an allow-list, so a kind or a detail field
# added later stays internal until someone decides the public may see it. Notes, assists, extension
# requests, escalations and staff reasons (a return's, a dispatcher's) are for staff only.
PUBLIC_DETAIL: dict[str, tuple[str, ...]] = {
    "received": ("channel",),
    "route": ("department", "category"),
    "triage": (),
    "dispatch": ("department",),
    "accept": (),
    "contact": (),
    "request_info": ("question",),
    "info_received": ("information",),
    "reply": ("result",),
    "answer": ("result", "source"),
    "return": (),
    "return_to_supervisor": (),
    "decide_extension": ("decision",),
    "merge": ("parent",),
    "invalidate": ("reason",),
    "close": ("solved", "satisfaction", "comment", "rated"),
    "reopen": ("solved", "satisfaction", "comment", "department", "resolve_due_at"),
    "reopen_to_supervisor": ("solved", "satisfaction", "comment"),
    "withdraw": ("reason",),
    "add_information": ("information",),
    "files_added": ("photos", "documents"),  # only those the requester sees (public_timeline)
}


@dataclass(frozen=True)
class PublicEvent:
    kind: str
    at: datetime
    actor: str  # a role ("requester", "handler", "system"), never a member of staff's name
    from_status: str | None
    to_status: str | None
    detail: dict


def public_timeline(events: Iterable) -> list[PublicEvent]:
    """The history as the requester may read it: only the kinds and detail fields meant for them."""
    timeline = []
    for event in events:
        fields = PUBLIC_DETAIL.get(event.kind)
        if fields is None or (event.kind == "files_added" and event.detail.get("visibility") != "public"):
            continue
        detail = {name: event.detail[name] for name in fields if event.detail.get(name) is not None}
        timeline.append(PublicEvent(event.kind, event.at, event.actor.split(":")[0], event.from_status,
                                    event.to_status, detail))
    return timeline


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    return phone[:3] + "*" * max(len(phone) - 7, 1) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[0]}***@{domain}"


def phone_matches(phone: str | None, last_four: str | None) -> bool:
    """How a hotline caller follows up without the link: the code plus their phone's last four digits."""
    digits = "".join(c for c in phone or "" if c.isdigit())
    if len(digits) < 4 or not last_four or len(last_four) != 4 or not last_four.isascii():
        return False
    return hmac.compare_digest(digits[-4:], last_four)


# Links in messages and QR codes. The tracking link holds the access token, so whoever scans or
# clicks it opens the appeal without signing in; a department's link (in its messages and on the
# printed work order) opens the appeal's workbench page, where staff sign in and see only what their
# role may: a page, not the JSON API, because a person clicks or scans it.
def tracking_link(public_url: str, code: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/appeals/{quote(code)}?token={quote(token)}"


def rating_link(public_url: str, code: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/appeals/{quote(code)}/rating?token={quote(token)}"


def workbench_link(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/work/appeals/{quote(code)}"


# The mask e-mails use. Any of the eight gives a valid code every reader decodes; segno's search
# for the best-scoring one (all eight tried, ~8 ms) only tunes how evenly the modules spread.
FIXED_MASK = 0


def qr_code(link: str, kind: str, *, scale: int = 5, mask: int | None = None) -> bytes:
    """The link as a QR code, `png` or `svg`; medium error correction survives a creased printout.
    `mask` fixes the mask pattern instead of searching for the best (a delivery draws many codes)."""
    code = segno.make(link, error="m", micro=False, mask=mask)
    if kind == "png":
        return _png(code.matrix, scale=scale, border=4)
    out = io.BytesIO()
    code.save(out, kind=kind, scale=scale, border=4)
    return out.getvalue()


def _png(matrix, *, scale: int, border: int) -> bytes:
    """A black-and-white PNG of a QR matrix (rows of 0/1, 1 dark), one bit per pixel, pixel for pixel
    what segno writes: segno's own writer walks every pixel in Python, ~10x the time of the code."""
    width = (len(matrix) + 2 * border) * scale
    padded = (width + 7) // 8 * 8
    quiet = "1" * (border * scale)

    def scanline(bits: str) -> bytes:  # filter byte 0, then the bits (1 = white), padded white
        return b"\0" + int(bits.ljust(padded, "1"), 2).to_bytes(padded // 8, "big")

    blank = scanline("1" * width)
    lines = [blank] * (border * scale)
    for row in matrix:
        line = scanline(quiet + "".join(("0" if module else "1") * scale for module in row) + quiet)
        lines += [line] * scale
    lines += [blank] * (border * scale)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(lines), 9))
            + chunk(b"IEND", b""))


def local_time(moment: datetime, language: str, zone: str) -> str:
    """A time as people write it, in the city's zone: `12月4日 17:00`, `4 Dec 17:00`."""
    local = moment.astimezone(ZoneInfo(zone))
    if language == "zh":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b} {local:%H:%M}"


# What the requester reads about each status: a label and what happens next (FixMyStreet-style, a
# journey rather than staff states). Every status has both languages (tests/test_requester_loop.py).
STATUS_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "received": {"zh": ("已受理", "正在为您的诉求确定承办部门。"),
                 "en": ("Received", "We are finding the department responsible.")},
    "triage": {"zh": ("分派中", "12345 热线正在人工确定承办部门。"),
               "en": ("Being assigned", "The 12345 centre is choosing the department by hand.")},
    "dispatched": {"zh": ("已派单", "承办部门将签收并与您联系。"),
                   "en": ("Dispatched", "The department will accept it and contact you.")},
    "accepted": {"zh": ("已签收", "承办部门将与您联系。"),
                 "en": ("Accepted", "The department will contact you.")},
    "in_progress": {"zh": ("办理中", "承办部门正在办理，办结后会答复您。"),
                    "en": ("In progress", "The department is working on it and will reply.")},
    # Review is the department's own step: the requester reads it as work in progress.
    "reviewing": {"zh": ("办理中", "承办部门正在办理，办结后会答复您。"),
                  "en": ("In progress", "The department is working on it and will reply.")},
    "waiting_requester": {"zh": ("待补充信息", "请通过此链接补充所需信息，补充前办理时限暂停。"),
                          "en": ("Waiting for you", "Please add the information asked for; the deadline "
                                                    "is paused until you do.")},
    "replied": {"zh": ("已答复", "请评价：问题是否解决，是否满意。"),
                "en": ("Replied", "Please rate the reply: solved or not, and how satisfied you are.")},
    "returned": {"zh": ("重新分派中", "12345 热线正在为您的诉求另找承办部门。"),
                 "en": ("Being reassigned", "The 12345 centre is finding another department.")},
    "arbitration": {"zh": ("督办审核中", "督办员正在确定由哪个部门办理。"),
                    "en": ("Under review", "A supervisor is deciding who handles it.")},
    "reopened": {"zh": ("重办中", "您的诉求已重新交办。"),
                 "en": ("Reopened", "Your appeal was sent back to be handled again.")},
    "merged": {"zh": ("已合并办理", "与同一事项的诉求一并办理，进展会同样告知您。"),
               "en": ("Handled together", "It is handled with an appeal on the same matter; you hear "
                                         "everything said about it.")},
    "closed": {"zh": ("已办结", "诉求已关闭。"), "en": ("Closed", "The appeal is closed.")},
}
EVENT_WORDS: dict[str, dict[str, str]] = {
    "received": {"zh": "已受理", "en": "Received"},
    "route": {"zh": "已派至{department}", "en": "Dispatched to {department}"},
    "triage": {"zh": "转人工分派", "en": "Passed to the 12345 centre to assign"},
    "dispatch": {"zh": "已派至{department}", "en": "Dispatched to {department}"},
    "accept": {"zh": "承办部门已签收", "en": "Accepted by the department"},
    "contact": {"zh": "承办部门已与您联系", "en": "The department contacted you"},
    "request_info": {"zh": "需要补充信息", "en": "More information asked for"},
    "info_received": {"zh": "已补充信息", "en": "Information added"},
    "add_information": {"zh": "您补充了信息", "en": "You added information"},
    "reply": {"zh": "已答复", "en": "Replied"},
    "answer": {"zh": "已当场答复", "en": "Answered on the spot"},
    "return": {"zh": "重新分派", "en": "Being reassigned"},
    "return_to_supervisor": {"zh": "交督办员确定承办部门", "en": "Passed to a supervisor to assign"},
    "decide_extension": {"zh": "办理时限已调整", "en": "Deadline reviewed"},
    "merge": {"zh": "与同一事项的诉求合并办理", "en": "Joined an appeal on the same matter"},
    "invalidate": {"zh": "未予办理并关闭", "en": "Closed without action"},
    "close": {"zh": "已办结", "en": "Closed"},
    "reopen": {"zh": "您不满意，已重新交{department}办理", "en": "You were not satisfied: sent back to {department}"},
    "reopen_to_supervisor": {"zh": "您再次不满意，交督办员处理", "en": "Not satisfied again: passed to a supervisor"},
    "withdraw": {"zh": "您已撤回诉求", "en": "You withdrew the appeal"},
    "files_added": {"zh": "添加了照片或文件", "en": "Photos or files added"},
}
CLOCK_WORDS = {"accept": {"zh": "签收", "en": "accept"}, "contact": {"zh": "首次联系", "en": "first contact"},
               "resolve": {"zh": "办结", "en": "resolve"}}


def tracking_view(appeal, events: Iterable, departments: Mapping[str, dict], *, language: str | None = None,
                  zone: str) -> dict:
    """The appeal as its requester reads it, in their language: status, what happens next, deadlines
    and the public timeline with departments by name and times in the city's zone. Plain data, for
    the JSON API and the pages alike; nothing here comes from outside the allow-list."""
    lang = language if language in ("zh", "en") else (appeal.language or "zh")

    def name(code: str | None) -> str | None:
        found = departments.get(code or "")
        return found[lang] if found else None

    def local(moment: datetime | None) -> str | None:
        return local_time(moment, lang, zone) if moment else None

    timeline = []
    for event in public_timeline(events):
        department = name(event.detail.get("department"))
        label = EVENT_WORDS[event.kind][lang].format(department=department or ("承办部门" if lang == "zh"
                                                                             else "the department"))
        detail = {k: v for k, v in event.detail.items() if k != "department"}
        timeline.append({"kind": event.kind, "label": label, "at": event.at.isoformat(), "at_local": local(event.at),
                         "department": department, "status": event.to_status, "detail": detail})
    open_clocks = appeal.status in OPEN_STATUSES
    deadlines = [{"clock": clock, "label": CLOCK_WORDS[clock][lang], "due_at": due.isoformat(),
                  "due_local": local(due)}
                 for clock, due in (("accept", appeal.accept_due_at), ("contact", appeal.contact_due_at),
                                    ("resolve", appeal.resolve_due_at)) if due is not None and open_clocks]
    label, next_step = STATUS_WORDS[appeal.status][lang]
    return {"code": appeal.code, "language": lang, "title": appeal.title, "status": appeal.status,
            "status_label": label, "next_step": next_step, "department": name(appeal.department_code),
            "received_local": local(appeal.received_at), "paused": appeal.paused_at is not None,
            "deadlines": deadlines, "timeline": timeline,
            "can_rate": appeal.status == "replied", "can_withdraw": appeal.status not in ("replied", "closed"),
            "can_add_information": appeal.status not in ("replied", "closed", "merged")}
