"""Routing rules, on the pure domain: no database, no framework."""

from datetime import UTC, datetime, timedelta

import pytest

from appealflow.models.clocks.calendar import WorkingCalendar
from appealflow.models.clocks.deadlines import Duration, Policy, deadlines_for, policy_for
from appealflow.models.routing.keywords import Catalogue, CategoryNode, Rule

CATALOGUE = Catalogue(
    categories=[
        CategoryNode("urban_management", None, ("城管", "占道")),
        CategoryNode("street_vending", "urban_management", ("摆摊", "流动摊贩")),
        CategoryNode("transport", None, ("公交", "出租车")),
        CategoryNode("other", None, ()),
    ],
    rules=[
        Rule("urban_management", None, None, "city_urban_management"),
        Rule("street_vending", "shinan", None, "shinan_gov"),
        Rule("street_vending", "shinan", "badaguan", "shinan_badaguan", ("market_supervision",)),
        Rule("transport", None, None, "transport"),
    ],
)


@pytest.mark.parametrize("category, district, street, department", [
    ("street_vending", "shinan", "badaguan", "shinan_badaguan"),     # street rule wins
    ("street_vending", "shinan", "zhanshan", "shinan_gov"),         # then the district's
    ("street_vending", "laoshan", None, "city_urban_management"),    # then the theme city-wide
    ("transport", "shinan", "badaguan", "transport"),
])
def test_the_most_specific_rule_wins(category, district, street, department):
    assert CATALOGUE.route(category, district, street).department_code == department


def test_assisting_departments_come_with_the_rule():
    assert CATALOGUE.route("street_vending", "shinan", "badaguan").assisting == ("market_supervision",)


def test_a_category_without_a_rule_has_no_route():
    assert CATALOGUE.route("other", "shinan", None) is None


def test_keywords_pick_the_most_specific_category():
    found = CATALOGUE.classify("路边摆摊", "城管不管，占道经营", None)
    assert found.category_code == "street_vending"
    assert found.confidence == 1.0


def test_keywords_from_two_themes_are_not_confident():
    found = CATALOGUE.classify("摆摊", "公交站旁边", None)
    assert found.confidence == 0.5


def test_no_keyword_means_no_category():
    assert CATALOGUE.classify("你好", "请问怎么办", None).category_code is None


def test_the_requesters_category_is_taken_as_given():
    assert CATALOGUE.classify("摆摊", "公交", "transport").category_code == "transport"


POLICIES = [
    Policy(None, "urgent", None, "wall", Duration(30, "m"), Duration(2, "h"), Duration(24, "h")),
    Policy("complaint", "normal", None, "working", Duration(2, "h"), Duration(1, "d"), Duration(5, "d")),
    Policy("consultation", "normal", None, "working", Duration(2, "h"), None, Duration(1, "d")),
    Policy(None, "normal", "street_vending", "working", Duration(1, "h"), Duration(4, "h"), Duration(2, "d")),
]


def test_a_category_override_beats_the_type_policy():
    policy = policy_for(POLICIES, "complaint", "normal", ["street_vending", "urban_management"])
    assert policy.resolve == Duration(2, "d")


def test_urgent_appeals_use_the_urgent_policy_whatever_their_type():
    assert policy_for(POLICIES, "complaint", "urgent", ["transport"]).clock == "wall"


def test_deadlines_follow_the_policy_on_its_clock():
    start = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # Friday 09:00 in Beijing
    consultation = deadlines_for(POLICIES[2], start, WorkingCalendar())
    assert consultation.accept_due_at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert consultation.contact_due_at is None
    assert consultation.resolve_due_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # one working day: 17:00
    assert consultation.working
    urgent = deadlines_for(POLICIES[0], start, WorkingCalendar())
    assert urgent.resolve_due_at == start + timedelta(hours=24) and not urgent.working


def test_a_missing_policy_is_an_error_not_a_guess():
    with pytest.raises(LookupError):
        policy_for(POLICIES, "praise", "normal", ["transport"])


@pytest.mark.parametrize("text", ["2", "h2", "2w", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        Duration.parse(text)
