"""Public tracking codes, the requester's access token, and masking of personal data."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

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
    "return": (),
    "return_to_supervisor": (),
    "decide_extension": ("decision",),
    "merge": ("parent",),
    "invalidate": ("reason",),
    "close": ("solved", "satisfaction"),
    "reopen": ("solved", "satisfaction"),
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
        if fields is None:
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
