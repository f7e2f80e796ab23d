"""One set of words per language: every status and every event kind has its words in Chinese and in
English, and the pages call a status what the JSON view calls it (they read the same catalogue)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appealflow.api.pages.common import catalogue
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.lifecycle import Action
from appealflow.models.appeals.tracking import EVENT_WORDS, PUBLIC_DETAIL, STATUS_WORDS, tracking_view

LANGUAGES = ("zh", "en")
# Kinds of event that are not an action someone takes.
OTHER_EVENTS = ("received", "files_added")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_status_has_a_label_and_a_next_step(language):
    for status in AppealStatus:
        label, next_step = STATUS_WORDS[status][language]
        assert label.strip() and next_step.strip(), (status, language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_event_kind_has_words_on_the_pages_and_public_ones_in_the_view(language):
    words = catalogue(language)
    for kind in [*(a.value for a in Action), *OTHER_EVENTS]:
        assert words.get(f"event.{kind}", "").strip(), (kind, language)
    for kind in PUBLIC_DETAIL:
        assert EVENT_WORDS[kind][language].strip(), (kind, language)


def test_chinese_and_english_differ_where_they_should():
    """An English word left in the Chinese catalogue (or the reverse) is a missing translation."""
    for status in AppealStatus:
        assert STATUS_WORDS[status]["zh"][0] != STATUS_WORDS[status]["en"][0], status
        assert STATUS_WORDS[status]["en"][0].isascii(), status


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_page_and_the_json_view_say_the_same_status(language):
    now = datetime.now(UTC)
    for status in AppealStatus:
        appeal = Appeal(id=1, code="261203-K7Q9XMA", channel="web", appeal_type="complaint", priority="normal",
                        title="路灯不亮", text="…", status=status, language=language, received_at=now, updated_at=now)
        view = tracking_view(appeal, [], {}, zone="Asia/Shanghai")
        assert catalogue(language)[f"status.{status}"] == view["status_label"], (status, language)
