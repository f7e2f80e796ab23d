"""The routing model, duplicates and the policy Q&A base, on real embeddings (loaded once per process)."""

import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
from sqlalchemy import update

from appealflow.models.city.reference import read_reference
from appealflow.models.routing.classifier import CategoryModel, Item, embedder, judge
from appealflow.models.routing.classifier_store import (
    ClassifierVersion,
    ensure_active,
    promote,
    rollback,
    train,
    versions,
)
from appealflow.models.routing.evaluation import EVAL_DIR, labelled, read_labelled
from appealflow.models.routing.places import places
from appealflow.models.routing.policy_qa import SAMPLE_QA_BASE, import_base, parse, search
from appealflow.models.storage.db import session_scope
from tests.conftest import on_postgresql, on_sqlite

ROOT = Path(__file__).resolve().parent.parent


def test_evaluate_prints_figures_and_one_json_line_on_a_subset():
    out = subprocess.run([sys.executable, "-m", "appealflow.cli", "model", "evaluate", "--limit", "40",
                          "--folds", "2"],  # the figures' shape, not their accuracy: fewer head fits
                         capture_output=True, text=True, timeout=600, cwd=ROOT, check=True).stdout
    assert "keyword rules (today)" in out and "Q&A" in out
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) >= {"correct", "triage", "silently_wrong", "duplicate_recall", "duplicate_precision",
                            "qa_mrr3", "qa_off_topic"}
    assert abs(figures["correct"] + figures["triage"] + figures["silently_wrong"] - 1) < 1e-3
    # The policy search on every question of the evaluation, appeal-length and off-topic ones among them.
    assert figures["qa_appeal_length"] >= 20 and "16/16" in out  # every unanswerable one handed over
    assert figures["qa_mrr3"] >= 0.9 and figures["qa_off_topic"] == 0


def test_the_same_road_in_chinese_and_english_is_one_place():
    assert places("居庸关路12号旁边的工地") & places("The site by No. 12 Juyongguan Road")
    assert not places("辽宁路路灯坏了") & places("湘潭路菜市场门口")


@on_postgresql
def test_versions_train_promote_and_roll_back_and_triage_carries_suggestions(database_url, tmp_path):
    rows = read_labelled(EVAL_DIR / "appeals.jsonl")[:40]
    with session_scope(database_url) as session:
        catalogue = read_reference(session).catalogue
        # chargram: no model to load, so this test is about the bookkeeping, not accuracy
        report = train(session, catalogue, labelled(rows), backend="chargram", cache_dir=tmp_path)
        listed = versions(session)
        assert [v.label for v in listed] == ["v1", "v2"] and listed[0].metrics["kind"] == "zero-shot"
        assert report.promoted == (listed[1].status == "active")
        promote(session, 2)
        assert rollback(session).label == "v1"
        assert session.get(ClassifierVersion, 1).status == "active"
        session.execute(update(ClassifierVersion).values(status="retired"))
        model = CategoryModel.from_bytes(session.get(ClassifierVersion, 2).blob)
        verdict = judge(model, catalogue, [Item("问个事", "你好", None, None)],
                        embedder("chargram").embed(["问个事。你好"]))[0]
        assert not verdict.decided and len(verdict.suggestions) == 3
        assert all(s.why and s.department_code for s in verdict.suggestions)


@on_sqlite
def test_policy_answers_are_found_and_nothing_close_hands_over(database_url):
    entries = parse(SAMPLE_QA_BASE.read_text(encoding="utf-8"), "json")
    embed = embedder("e5").embed
    with session_scope(database_url) as session:
        assert import_base(session, entries, embed) == len(entries)
        hits = search(session, "租房能取公积金吗", embed, today=date(2026, 11, 27))
        assert hits and hits[0].question == "租房可以提取住房公积金吗？" and hits[0].source
        expired = search(session, "2025年采暖补贴怎么领", embed, today=date(2026, 11, 27))
        assert all("2025" not in h.question for h in expired)


@on_sqlite
def test_a_model_stored_in_an_older_format_is_rebuilt_not_misread(database_url, tmp_path):
    old = io.BytesIO()
    np.savez_compressed(old, prototypes=np.zeros((1, 4)), meta=np.array(json.dumps({"format": 1, "labels": ["x"]})))
    with session_scope(database_url) as session:
        first = ensure_active(session, "chargram", tmp_path)
        first.blob = old.getvalue()
        session.flush()
        current = ensure_active(session, "chargram", tmp_path)
        assert current.id != first.id and first.status == "retired"
        assert CategoryModel.from_bytes(current.blob).head.shape[1] == len(read_reference(session).catalogue.categories)


def test_the_model_routes_by_default(monkeypatch):
    """What `appealflow up` runs with when nothing is configured: the e5 model, keyword rules beside it."""
    from appealflow.settings import Settings

    monkeypatch.delenv("APPEALFLOW_ROUTING_MODEL", raising=False)
    assert Settings().routing_model == "e5"
