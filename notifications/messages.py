"""The words of every message, from one templates file per language. Plain Python: no Apprise here.

The domain stores what to say (an event, who hears it, the facts); this turns it into a subject and
a body in the recipient's language, times in the city's zone as people write them (`12月4日 17:00`).
Chinese comes first; a Chinese message carries the English beside it.
"""

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("zh", "en")
TIME_FACTS = frozenset({"accept_due", "resolve_due", "due"})
WORD_FACTS = frozenset({"clock", "appeal_type", "priority", "decision"})


@lru_cache
def templates(language: str) -> dict:
    return yaml.safe_load((TEMPLATES / f"{language}.yaml").read_text(encoding="utf-8"))


def local_time(moment: datetime, language: str, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    if language == "zh":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b} {local:%H:%M}"


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
    return out


def render_in(language: str, event: str, audience: str, facts: dict, *, zone: str) -> tuple[str, str]:
    """Subject and body in one language; a missing fact is an error, never a blank."""
    template = templates(language)[event][audience]
    values = _in_language(facts, language, zone)
    return template["subject"].format_map(values), template["body"].format_map(values).strip()


def render(event: str, audience: str, facts: dict, *, language: str = "zh", zone: str) -> tuple[str, str]:
    """The message as its recipient reads it: in their language, and a Chinese one with English beside."""
    subject, body = render_in(language, event, audience, facts, zone=zone)
    if language == "zh":
        _, english = render_in("en", event, audience, facts, zone=zone)
        body = f"{body}\n\n{english}"
    return subject, body


def words_of(notification, *, zone: str) -> tuple[str, str]:
    """An outbox row's subject and body: the words it was written with (rows from before the
    outbox kept facts), else rendered now from its facts."""
    if notification.subject and notification.body:
        return notification.subject, notification.body
    return render(notification.event, notification.audience, notification.facts, language=notification.language,
                  zone=zone)
