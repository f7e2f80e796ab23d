"""The words of every message, from one templates file per language. Plain Python: no Apprise here.

The domain stores what to say (an event, who hears it, the facts); this turns it into a subject, a
plain-text body and an HTML body in the recipient's language, times in the city's zone as people
write them (`12月4日 17:00`). Chinese comes first; a Chinese message carries the English beside it.
Links are made here, at delivery, from the appeal's code: the access token they hold is never stored
in the outbox's facts.
"""

import html
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml

from appealflow.models.appeals.tracking import (
    FIXED_MASK,
    local_time,
    qr_code,
    rating_link,
    tracking_link,
    workbench_link,
)

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("zh", "en")
TIME_FACTS = frozenset({"accept_due", "resolve_due", "due"})
WORD_FACTS = frozenset({"clock", "appeal_type", "priority", "decision", "satisfaction"})
# Facts that, when there is something to say, say it on a line of their own (and are otherwise
# nothing: a message written before they existed renders as it did).
LINE_FACTS = ("attached",)
LINK_FIELDS = ("link", "rating_link", "workbench_link")

__all__ = ["LANGUAGES", "Links", "Rendered", "local_time", "render", "render_in", "render_sms", "templates",
           "words_of"]


@dataclass(frozen=True)
class Links:
    """The links a message about one appeal may carry."""

    link: str
    rating_link: str
    workbench_link: str

    @classmethod
    def of(cls, code: str, *, public_url: str, signing_key: bytes) -> "Links":
        from appealflow.models.appeals.tracking import access_token

        token = access_token(signing_key, code)
        return cls(tracking_link(public_url, code, token), rating_link(public_url, code, token),
                   workbench_link(public_url, code))


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    # Pictures the HTML shows by `cid:` (the tracking QR): sent inline beside it, since many mail
    # clients show no `data:` image. (content id, PNG bytes)
    images: tuple[tuple[str, bytes], ...] = ()


QR_CID = "qr@appealflow"


@lru_cache
def templates(language: str) -> dict:
    return yaml.safe_load((TEMPLATES / f"{language}.yaml").read_text(encoding="utf-8"))


def _in_language(facts: dict, language: str, zone: str) -> dict:
    words = templates(language)["words"]
    out = {}
    for key, value in facts.items():
        if value is None:
            value = "-"
        elif isinstance(value, dict) and language in value:  # names kept in both languages
            value = value[language]
        elif key in TIME_FACTS:
            value = local_time(datetime.fromisoformat(value), language, zone)
        elif key in WORD_FACTS:
            value = words.get(value, value)
        out[key] = value
    for key in LINE_FACTS:
        out[key] = f"\n{out[key]}" if out.get(key) and out[key] != "-" else ""
    return out


def _template(language: str, event: str, audience: str) -> dict:
    return templates(language)[event][audience]


def render_in(language: str, event: str, audience: str, facts: dict, *, zone: str,
              links: Links | None = None) -> tuple[str, str]:
    """Subject and plain-text body in one language; a missing fact is an error, never a blank."""
    template = _template(language, event, audience)
    values = _in_language(facts, language, zone) | (vars(links) if links else {})
    return template["subject"].format_map(values), template["body"].format_map(values).strip()


def _html_in(language: str, event: str, audience: str, facts: dict, *, zone: str, links: Links | None) -> str:
    """The body as HTML: our template's text and every fact escaped (facts hold what citizens typed),
    links as anchors, lines as lines."""
    template = _template(language, event, audience)
    values = {k: html.escape(str(v)) for k, v in _in_language(facts, language, zone).items()}
    for name, url in (vars(links) if links else {}).items():
        values[name] = f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>'
    body = html.escape(template["body"].strip(), quote=False).format_map(values)
    return "<p>" + body.replace("\n", "<br>\n") + "</p>"


def render(event: str, audience: str, facts: dict, *, language: str = "zh", zone: str,
           links: Links | None = None) -> tuple[str, str]:
    """The message as its recipient reads it: in their language, and a Chinese one with English beside."""
    rendered = render_message(event, audience, facts, language=language, zone=zone, links=links)
    return rendered.subject, rendered.text


def render_message(event: str, audience: str, facts: dict, *, language: str = "zh", zone: str,
                   links: Links | None = None, qr: bool = False) -> Rendered:
    """Subject, plain text and HTML. With `qr`, the HTML shows the tracking link as a QR code too
    (for e-mail: a phone scans it off a screen or a printout)."""
    subject, text = render_in(language, event, audience, facts, zone=zone, links=links)
    parts = [_html_in(language, event, audience, facts, zone=zone, links=links)]
    if language == "zh":
        _, english = render_in("en", event, audience, facts, zone=zone, links=links)
        text = f"{text}\n\n{english}"
        parts.append('<hr><div lang="en">' + _html_in("en", event, audience, facts, zone=zone, links=links)
                     + "</div>")
    images: tuple[tuple[str, bytes], ...] = ()
    if qr and links is not None:
        parts.append(f'<p><img src="cid:{QR_CID}" width="180" height="180" '
                     f'alt="{html.escape(facts.get("code", ""))}"></p>')
        images = ((QR_CID, _qr_png(links.link)),)
    lang = "zh-CN" if language == "zh" else "en"
    page = (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(subject)}</title>'
            f'</head><body>{"".join(parts)}</body></html>')
    return Rendered(subject, text, page, images)


def without_images(message: Rendered) -> str:
    """The HTML with its inline pictures left out, for a channel that cannot carry them (the link is
    in the text either way)."""
    out = message.html
    for cid, _ in message.images:
        out = out.replace(f'<p><img src="cid:{cid}"', '<p hidden><img src=""', 1)
    return out


@lru_cache(maxsize=1024)
def _qr_png(link: str) -> bytes:
    """The link's QR code as PNG, with a fixed mask: searching all eight for the best-scoring
    one cost ~8 ms of CPU per code, 60% of what a delivery worker spent. Kept per link too, since an
    appeal's requester gets several e-mails with the same link (received, dispatched, the reply...).
    ~0.6 KB each, 1,024 at most."""
    return qr_code(link, "png", scale=4, mask=FIXED_MASK)


# One SMS segment: 70 characters once any character falls outside GSM-7 (Chinese always does), 160
# in plain GSM-7. A longer message is billed and delivered as several parts, out of order on some phones.
SMS_SEGMENT = {"zh": 70, "en": 160}


def render_sms(event: str, code: str, short_link: str, *, language: str = "zh") -> str:
    """The text message of an event to a requester: their language only, one segment, the short link
    whole at the end (the words before it give way first, should a long public URL need the room)."""
    words = templates(language)["sms"][event]
    text = words.format(code=code, short=short_link)
    limit = SMS_SEGMENT[language]
    if len(text) <= limit:
        return text
    head = words.split("{short}")[0].format(code=code)
    room = max(limit - len(short_link) - 1, 0)
    return (head[:room] + "…" + short_link)[:max(limit, len(short_link))]


def words_of(notification, *, zone: str, links: Links | None = None, qr: bool = False) -> Rendered:
    """An outbox row's words: those it was written with (rows from before the outbox kept facts),
    else rendered now from its facts."""
    if notification.event == "legacy" and notification.subject and notification.body:
        escaped = "<p>" + html.escape(notification.body).replace("\n", "<br>\n") + "</p>"
        return Rendered(notification.subject, notification.body, escaped)
    return render_message(notification.event, notification.audience, notification.facts,
                          language=notification.language, zone=zone, links=links, qr=qr)
