"""Duplicates at intake: the dispatch step finds an appeal's probable twins among open appeals,
records them in the history (staff only) and routes it as its twin went; nothing is merged. Real e5
embeddings, real databases."""

from dataclasses import replace

from sqlalchemy import select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.appeals.lifecycle import Action
from appealflow.models.appeals.tracking import public_timeline
from appealflow.models.city.reference import read_reference
from appealflow.models.routing.classifier import Suggestion, embedder
from appealflow.models.routing.dispatch import (
    DUPLICATE_EVENT,
    decide_all,
    follow_twin,
    load_claimed,
    record,
    with_twins,
)
from appealflow.models.routing.duplicates import Candidate
from appealflow.models.routing.places import CONFLICT, ROAD, SPECIFIC, places, relation
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope


def _receive(session, title: str, text: str) -> int:
    appeal = receive(session, NewAppeal(
        channel="web", appeal_type="complaint", priority="normal", title=title, text=text, district="shinan",
        street="badaguan", requester_name="钱小红", requester_phone="13800001111"), now=utcnow(), actor="requester")
    session.flush()
    return appeal.id


def _dispatch(session, ids: list[int]):
    """The dispatch flow's two steps, as `flows/dispatch.py` runs them (keyword rules, e5 for twins)."""
    ref = read_reference(session)
    appeals = load_claimed(session, ids)
    decisions, failed = decide_all(appeals, ref, calendar=ref.calendar, min_confidence=0.5)
    assert not failed
    by_id = {a.id: a for a in appeals}
    decisions = with_twins(session, by_id, decisions, ref, calendar=ref.calendar, embed=embedder("e5").embed)
    record(session, decisions, by_id, ref, now=utcnow())
    return decisions


def test_a_twin_posted_after_the_first_was_routed_goes_to_the_same_department(database_url):
    with session_scope(database_url) as session:
        first = _receive(session, "居庸关路工地夜间施工噪音",
                         "居庸关路12号旁边的工地凌晨还在打桩施工，噪音吵得根本睡不着")
        _dispatch(session, [first])
    with session_scope(database_url) as session:
        routed = session.get(Appeal, first)
        assert routed.status == "dispatched" and routed.department_code
        twin = _receive(session, "又是半夜施工", "居庸关路12号那个工地今晚又施工到两点，打桩机一直响，噪音太大")
        other = _receive(session, "路灯坏了", "居庸关路北头的路灯坏了一个星期，晚上一片漆黑")  # same road, other matter
        _dispatch(session, [twin, other])
    with session_scope(database_url) as session:
        appeal = session.get(Appeal, twin)
        assert appeal.department_code == routed.department_code
        assert f"疑似与 {routed.code} 为同一事项" in appeal.routing_reason
        events = {e.appeal_id: e for e in session.execute(select(AppealEvent).where(
            AppealEvent.kind == DUPLICATE_EVENT)).scalars()}
        assert set(events) == {twin}, "the street light on the same road is another matter"
        recorded = events[twin].detail
        assert recorded["note"].startswith(f"疑似与 {routed.code} 为同一事项 / probably the same matter as")
        assert [t["code"] for t in recorded["twins"]] == [routed.code]
        assert "addr:juyongguan#12" in recorded["twins"][0]["shared_places"]
        assert appeal.parent_id is None, "never merged automatically"
        history = session.execute(select(AppealEvent).where(AppealEvent.appeal_id == twin)).scalars().all()
        assert DUPLICATE_EVENT not in {e.kind for e in public_timeline(history)}


def _decision(session, action: Action, department: str | None):
    ref = read_reference(session)
    appeal = session.get(Appeal, _receive(session, "工地噪音", "居庸关路12号工地夜间施工"))
    decision = decide_all([appeal], ref, calendar=ref.calendar, min_confidence=0.5)[0][0]
    return ref, appeal, replace(decision, action=action, department_code=department,
                                suggestions=(Suggestion("shinan_badaguan", "construction_noise", 0.4, "why"),))


def test_when_routing_disagrees_with_the_twin_a_dispatcher_decides_with_the_twins_department_first(
        database_url):
    twin = Candidate(1, "261127-AAAAAAA", 0.95, ("addr:juyongguan#12",), "why", "urban_management",
                     "construction_noise", 1.0)
    with session_scope(database_url) as session:
        ref, appeal, routed_elsewhere = _decision(session, Action.route, "shinan_badaguan")
        triaged = follow_twin(routed_elsewhere, appeal, (twin,), ref, ref.calendar)
        assert triaged.action == Action.triage and triaged.department_code is None
        assert [s.department_code for s in triaged.suggestions] == ["urban_management", "shinan_badaguan"]
        assert "routing says shinan_badaguan" in triaged.reason
        _, appeal, unsure = _decision(session, Action.triage, None)
        routed = follow_twin(unsure, appeal, (twin,), ref, ref.calendar)
        assert routed.action == Action.route and routed.department_code == "urban_management"
        assert routed.deadlines is not None


def test_places_name_one_spot_or_many():
    at_12 = places("居庸关路12号旁边的工地", ("shinan", "badaguan"))
    assert relation(at_12, places("The site by No. 12 Juyongguan Road"))[0] == SPECIFIC
    assert relation(at_12, places("居庸关路30号门口的垃圾"))[0] == CONFLICT, "another number on the road"
    assert relation(at_12, places("居庸关路的路灯"))[0] == ROAD
    assert relation(places("薛家岛安子社区附近的工地", ("huangdao", "xuejiadao")),
                    places("The site next to Anzi community"))[0] == SPECIFIC
    assert not places("流亭街道某小区停电", ("chengyang", "liuting")), "an area and an unnamed compound"


def test_each_appeals_vector_is_kept_at_dispatch_and_read_again_instead_of_embedding_its_text(database_url):
    """Routing embeds an appeal once: its vector is kept with the dispatch, and looking for a later
    twin reads it from there; only the new appeal's text is embedded (a counting wrapper around the
    real embedder tells). The cheap chargram embedder stands in for e5: the store does not care."""
    import numpy as np

    from appealflow.models.routing.classifier_store import category_texts, zero_shot
    from appealflow.models.routing.vectors import stored_vectors
    from appealflow.settings import get_settings

    chargram = embedder("chargram")
    embedded: list[str] = []

    def embed(texts):
        embedded.extend(texts)
        return chargram.embed(texts)

    def dispatch_with_model(session, ids, model, kept="chargram"):
        ref = read_reference(session)
        appeals = load_claimed(session, ids)
        vectors: dict = {}
        decisions, failed = decide_all(appeals, ref, calendar=ref.calendar, min_confidence=0.5, model=model,
                                       embed=embed, vectors=vectors)
        assert not failed
        by_id = {a.id: a for a in appeals}
        decisions = with_twins(session, by_id, decisions, ref, calendar=ref.calendar, embed=embed, vectors=vectors,
                               embedder=kept)
        record(session, decisions, by_id, ref, now=utcnow())
        return vectors

    with session_scope(database_url) as session:
        model = zero_shot(category_texts(session), "chargram", get_settings().model_cache_dir)
        first = _receive(session, "沙子口码头旁夜间施工", "沙子口码头旁边的工地每天凌晨施工，噪音很大")
        made = dispatch_with_model(session, [first], model)
    with session_scope(database_url) as session:
        kept = stored_vectors(session, [first], "chargram")
        assert np.allclose(kept[first], made[first], atol=2e-3)  # half precision, the same vector
        assert stored_vectors(session, [first], "e5") == {}  # another model's space: not its vector
        embedded.clear()
        twin = _receive(session, "码头工地又在半夜施工", "沙子口码头旁边那个工地今晚又施工，打桩声音很大")
        dispatch_with_model(session, [twin], model)
        assert embedded == ["码头工地又在半夜施工。沙子口码头旁边那个工地今晚又施工，打桩声音很大"], embedded
        # Without the kept vectors the first appeal, at the same wharf, is embedded again to compare.
        embedded.clear()
        third = _receive(session, "沙子口码头施工扰民", "沙子口码头工地夜里施工")
        dispatch_with_model(session, [third], model, kept=None)
        assert "沙子口码头旁夜间施工。沙子口码头旁边的工地每天凌晨施工，噪音很大" in embedded
