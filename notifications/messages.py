"""Message texts, rendered from the templates data file. Plain Python: no Apprise here."""

from functools import lru_cache
from pathlib import Path

import yaml

_TEMPLATES = Path(__file__).parent / "templates" / "messages.yaml"


@lru_cache
def _templates() -> dict:
    return yaml.safe_load(_TEMPLATES.read_text(encoding="utf-8"))


def render(event: str, recipient_kind: str, **fields: object) -> tuple[str, str]:
    """Subject and body for one event and kind of recipient."""
    template = _templates()[event][recipient_kind]
    return template["subject"].format(**fields), template["body"].format(**fields).strip()
