"""Routing and valuation (`sync.rules`): every pricing question answered without I/O.

Settings are built as records directly (no YAML), so each test states exactly the rule it
exercises. Amounts are asserted exactly, in minor units.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.model import HOUR_UNIT, EntryStatus, TimeEntry, UnknownCurrency, format_amount
from sync.rules import (
    Assessment,
    Decision,
    Priced,
    Pricer,
    Ruling,
    _SourceRules,
    billed_seconds,
    round_seconds,
    unreachable_budgets,
)
from sync.settings import Budget, Criteria, Customer, MatchRule, RateOverride, Rounding

DAY = dt.date(2025, 11, 3)


def entry(seconds: int = 3600, **fields: Any) -> TimeEntry:
    values: dict[str, Any] = {
        "source": "harvest",
        "external_id": "e1",
        "version": "v1",
        "spent_date": DAY,
        "seconds": seconds,
        "client_id": "111",
        "client_name": "ACME Corp",
        "project_id": "42",
        "project_name": "Website",
    }
    values.update(fields)
    return TimeEntry(**values)


def budget(
    id_: str = "retainer", *, unit: str = "money", rate: str | None = "95.00", **fields: Any
) -> Budget:
    return Budget(
        yaml_path=f"customers[0].budgets[{id_}]",
        id=id_,
        unit=unit,
        rate=Decimal(rate) if rate is not None else None,
        opening_balance=Decimal("2000.00"),
        **fields,
    )


def customer(
    id_: str = "acme",
    *,
    index: int = 0,
    currency: str = "EUR",
    match: tuple[tuple[str, Criteria, str | None], ...] = (("harvest", Criteria(), None),),
    budgets: tuple[Budget, ...] | None = None,
) -> Customer:
    return Customer(
        yaml_path=f"customers[{index}]",
        id=id_,
        name=id_.upper(),
        currency=currency,
        invoice_to=None,
        match=tuple(
            MatchRule(f"customers[{index}].match[{i}]", source, criteria, budget_id)
            for i, (source, criteria, budget_id) in enumerate(match)
        ),
        budgets=budgets if budgets is not None else (budget(),),
    )


def assess(b: Budget, e: TimeEntry, decision: Ruling | str | None = None, **kw: Any) -> Assessment:
    return Pricer([customer(budgets=(b,), **kw)]).assess(e, decision)


def up15(minimum: int = 0) -> Rounding:
    return Rounding(increment_minutes=15, mode="up", minimum_minutes=minimum)


# --- rounding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "mode", "expected"),
    [
        (0, "up", 0),
        (900, "up", 900),
        (901, "up", 1800),
        (1, "up", 900),
        (1799, "up", 1800),
        (0, "down", 0),
        (900, "down", 900),
        (899, "down", 0),
        (1799, "down", 900),
        (0, "nearest", 0),
        (449, "nearest", 0),
        (450, "nearest", 900),  # exactly half goes up
        (451, "nearest", 900),
        (1349, "nearest", 900),
        (1350, "nearest", 1800),
        (1800, "nearest", 1800),
    ],
)
def test_round_seconds_on_a_15_minute_grid(seconds: int, mode: str, expected: int) -> None:
    assert round_seconds(seconds, 900, mode) == expected


def test_round_seconds_refuses_negative_durations_and_bad_increments() -> None:
    with pytest.raises(ValueError, match="negative"):
        round_seconds(-1, 900, "up")
    with pytest.raises(ValueError, match="positive"):
        round_seconds(10, 0, "up")


@given(
    seconds=st.integers(min_value=0, max_value=10**7),
    increment=st.integers(min_value=1, max_value=24 * 3600),
)
def test_rounding_modes_bracket_the_duration(seconds: int, increment: int) -> None:
    up = round_seconds(seconds, increment, "up")
    down = round_seconds(seconds, increment, "down")
    nearest = round_seconds(seconds, increment, "nearest")
    assert up >= seconds >= down
    assert up - down in (0, increment)
    assert up % increment == down % increment == nearest % increment == 0
    assert nearest in (up, down)
    assert abs(nearest - seconds) <= abs(seconds - (down if nearest == up else up))
    if up - seconds == seconds - down:
        assert nearest == up  # a tie goes up


@pytest.mark.parametrize(
    ("seconds", "rounding", "expected"),
    [
        (0, up15(minimum=30), 0),  # the minimum does not apply to a zero entry
        (1, up15(minimum=30), 1800),
        (901, up15(minimum=30), 1800),
        (1801, up15(minimum=30), 2700),
        (600, Rounding(increment_minutes=0, mode="up", minimum_minutes=60), 3600),
        (4000, Rounding(increment_minutes=0, mode="up", minimum_minutes=60), 4000),
        (1234, None, 1234),
    ],
)
def test_billed_seconds_applies_rounding_then_minimum(
    seconds: int, rounding: Rounding | None, expected: int
) -> None:
    assert billed_seconds(seconds, rounding) == expected


@pytest.mark.parametrize("mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("minutes", [6, 7])
def test_minimum_holds_when_rounding_takes_an_entry_to_zero(mode: str, minutes: int) -> None:
    rounding = Rounding(increment_minutes=15, mode=mode, minimum_minutes=30)
    assert billed_seconds(minutes * 60, rounding) == 1800


@given(
    seconds=st.integers(min_value=0, max_value=12 * 3600),
    increment=st.integers(min_value=0, max_value=60),
    minimum=st.integers(min_value=0, max_value=120),
    mode=st.sampled_from(["up", "down", "nearest"]),
)
def test_any_positive_entry_bills_at_least_the_minimum(
    seconds: int, increment: int, minimum: int, mode: str
) -> None:
    rounding = Rounding(increment_minutes=increment, mode=mode, minimum_minutes=minimum)
    billed = billed_seconds(seconds, rounding)
    if seconds == 0:
        assert billed == 0
    else:
        assert billed >= minimum * 60
        rounded = round_seconds(seconds, increment * 60, mode) if increment else seconds
        assert billed == max(rounded, minimum * 60)


def readme_rounding_table() -> list[list[str]]:
    """The rows of the README's worked-examples table (rules section), cells as written."""
    from tests.support import ROOT

    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| worked | up | down | nearest |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_readme_rounding_table_is_what_the_code_bills() -> None:
    rows = readme_rounding_table()
    assert [int(row[0]) for row in rows] == [0, 1, 6, 8, 14, 16, 29, 31, 44]
    for worked, *cells in rows:
        seconds = int(worked) * 60
        expected = []
        for mode in ("up", "down", "nearest"):
            rounding = Rounding(increment_minutes=15, mode=mode, minimum_minutes=30)
            rounded = round_seconds(seconds, 900, mode) // 60
            expected.append(f"{rounded} → {billed_seconds(seconds, rounding) // 60}")
        assert cells == expected, f"README row for {worked} minutes"


# --- valuation ------------------------------------------------------------------------------


def test_money_entry_is_rounded_up_and_valued_with_an_explanation() -> None:
    result = assess(budget(rounding=up15()), entry(4500))  # 1.25 h, already on the grid
    assert result == Assessment(
        status=EntryStatus.DEDUCTED,
        customer_id="acme",
        budget_id="retainer",
        unit="EUR",
        amount_minor=11875,
        billed_seconds=4500,
        rate=Decimal("95.00"),
        rule="customers[0].match[0]",
        reason=None,
        explanation=(
            "2025-11-03 1.25 h -> 1.25 h (15 min up) x EUR 95.00 = EUR 118.75 "
            "(customers[0].match[0])"
        ),
        priced=Priced("acme", "retainer", "EUR", 4500, Decimal("95.00"), 11875),
    )
    bumped = assess(budget(rounding=up15()), entry(4501))
    assert (bumped.billed_seconds, bumped.amount_minor) == (5400, 14250)
    assert bumped.explanation == (
        "2025-11-03 1.250278 h -> 1.50 h (15 min up) x EUR 95.00 = EUR 142.50 "
        "(customers[0].match[0])"
    )


def test_money_is_rounded_half_up_to_the_cent() -> None:
    # 1 s at 95.00/h = 0.026388... -> 0.03; 18 s at 0.25/h = 0.00125 -> 0.00
    assert assess(budget(), entry(1)).amount_minor == 3
    assert assess(budget(rate="0.25"), entry(18)).amount_minor == 0
    # 36 s at 0.50/h = 0.005 exactly: half goes up
    assert assess(budget(rate="0.50"), entry(36)).amount_minor == 1


def test_jpy_has_no_minor_digits_and_rounds_half_up() -> None:
    result = assess(budget(rate="95"), entry(5400), currency="JPY")
    assert (result.unit, result.amount_minor) == ("JPY", 143)  # 142.5 yen -> 143
    assert "x JPY 95 = JPY 143" in result.explanation


def test_kwd_has_three_minor_digits() -> None:
    result = assess(budget(rate="10.000"), entry(1), currency="KWD")  # 0.0027777...
    assert (result.unit, result.amount_minor) == ("KWD", 3)


def test_unknown_currency_is_refused_when_the_pricer_is_built() -> None:
    with pytest.raises(UnknownCurrency):
        Pricer([customer(currency="EURO")])


def test_hours_budget_deducts_billed_seconds() -> None:
    result = assess(budget(unit="hours", rate="95.00", rounding=up15()), entry(3601))
    assert result.status == EntryStatus.DEDUCTED
    assert (result.unit, result.amount_minor, result.billed_seconds) == (HOUR_UNIT, 4500, 4500)
    assert result.rate is None
    assert result.explanation == (
        "2025-11-03 1.000278 h -> 1.25 h (15 min up) = 1.25 h (customers[0].match[0])"
    )


@given(seconds=st.integers(min_value=-(10**8), max_value=10**8))
def test_explanations_show_hours_as_the_model_formats_them(seconds: int) -> None:
    shown = format_amount(seconds, HOUR_UNIT)
    result = assess(budget(unit="hours", billable_only=False), entry(seconds))
    if seconds < 0:
        assert result.explanation.startswith(f"2025-11-03 {shown} h: excluded")
    else:
        assert result.explanation == f"2025-11-03 {shown} h = {shown} h (customers[0].match[0])"


def test_zero_entry_deducts_nothing_even_with_a_minimum() -> None:
    result = assess(budget(rounding=up15(minimum=30)), entry(0))
    assert (result.status, result.amount_minor, result.billed_seconds) == ("deducted", 0, 0)


def test_minimum_raises_a_short_entry() -> None:
    result = assess(budget(rounding=up15(minimum=30)), entry(60))
    assert (result.billed_seconds, result.amount_minor) == (1800, 4750)
    assert "(15 min up, min 30 min)" in result.explanation


def test_negative_duration_is_excluded() -> None:
    result = assess(budget(rounding=up15()), entry(-60))
    assert (result.status, result.reason, result.amount_minor) == (
        "excluded",
        "negative duration",
        0,
    )


def test_running_entry_costs_nothing_yet() -> None:
    result = assess(budget(), entry(1200, running=True))
    assert (result.status, result.reason, result.amount_minor) == (
        "running",
        "timer still running",
        0,
    )
    assert (result.customer_id, result.budget_id) == ("acme", "retainer")


def test_deleted_entry_costs_nothing_routed_or_not() -> None:
    routed = assess(budget(), entry(1200, deleted=True))
    assert (routed.status, routed.amount_minor, routed.budget_id) == ("deleted", 0, "retainer")
    unrouted = assess(budget(), entry(1200, deleted=True, source="toggl"))
    assert (unrouted.status, unrouted.amount_minor, unrouted.budget_id) == ("deleted", 0, None)


def test_billable_only_excludes_non_billable_time() -> None:
    assert assess(budget(), entry(billable=False)).reason == "not billable"
    allowed = assess(budget(billable_only=False), entry(billable=False))
    assert (allowed.status, allowed.amount_minor) == ("deducted", 9500)


def test_exclude_by_tag_is_case_insensitive() -> None:
    b = budget(exclude=Criteria(tags=("internal",)))
    result = assess(b, entry(tags=("Billable", " INTERNAL ")))
    assert (result.status, result.reason, result.amount_minor) == (
        "excluded",
        "excluded by tag INTERNAL",
        0,
    )
    assert assess(b, entry(tags=("billable",))).status == "deducted"


def test_exclude_matches_on_any_given_criterion() -> None:
    b = budget(exclude=Criteria(tags=("internal",), projects=("sales",)))
    assert assess(b, entry(project_name="Sales")).reason == "excluded by project Sales"
    assert assess(b, entry(tags=("internal",))).reason == "excluded by tag internal"
    by_id = budget(exclude=Criteria(project_ids=("42",)))
    assert assess(by_id, entry()).reason == "excluded by project id 42"


def test_include_needs_every_given_criterion() -> None:
    b = budget(include=Criteria(project_ids=("42",), tags=("retainer",)))
    assert assess(b, entry(tags=("Retainer",))).status == "deducted"
    result = assess(b, entry(tags=("other",)))
    assert (result.status, result.reason) == (
        "excluded",
        "not in include of budget retainer (tags: retainer)",
    )


def test_operator_exclusion_and_review() -> None:
    assert assess(budget(), entry(), Decision.EXCLUDED).reason == "excluded by operator"
    review = budget(approval="review", rounding=up15())
    pending = assess(review, entry(3000))
    assert (pending.status, pending.reason, pending.amount_minor, pending.billed_seconds) == (
        "pending",
        "waiting for review",
        0,
        0,
    )
    assert pending.pending_amount_minor == 9500
    assert pending.explanation == (
        "2025-11-03 0.833333 h -> 1.00 h (15 min up) x EUR 95.00 = EUR 95.00, "
        "waiting for review (customers[0].match[0])"
    )
    approved = assess(review, entry(3000), Decision.APPROVED)
    assert (approved.status, approved.amount_minor, approved.pending_amount_minor) == (
        "deducted",
        9500,
        0,
    )
    assert assess(review, entry(), Decision.EXCLUDED).status == "excluded"


def test_unknown_decision_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown decision"):
        assess(budget(), entry(), "maybe")


def test_rate_override_first_match_wins() -> None:
    b = budget(
        rate_overrides=(
            RateOverride(Criteria(tasks=("design",), users=("ann",)), Decimal("120.00")),
            RateOverride(Criteria(tasks=("design",)), Decimal("110.00")),
        )
    )
    assert assess(b, entry(task_name="Design", user_name="Ann")).amount_minor == 12000
    assert assess(b, entry(task_name="Design", user_name="Bob")).amount_minor == 11000
    plain = assess(b, entry(task_name="Support", user_name="Ann"))
    assert (plain.amount_minor, plain.rate) == (9500, Decimal("95.00"))


def test_rate_from_source() -> None:
    b = budget(rate=None, rate_from_source=True)
    result = assess(b, entry(5400, rate=Decimal("80.00"), rate_currency="eur"))
    assert (result.amount_minor, result.rate) == (12000, Decimal("80.00"))
    missing = assess(b, entry(5400))
    assert (missing.status, missing.reason) == ("unpriced", "no billable rate in source")
    assert (missing.budget_id, missing.amount_minor) == ("retainer", 0)
    foreign = assess(b, entry(5400, rate=Decimal("80.00"), rate_currency="USD"))
    assert (foreign.status, foreign.reason) == (
        "unpriced",
        "source rate is in USD, customer acme is billed in EUR",
    )
    negative = assess(b, entry(5400, rate=Decimal("-1"), rate_currency="EUR"))
    assert negative.status == EntryStatus.UNPRICED
    overridden = budget(
        rate=None,
        rate_from_source=True,
        rate_overrides=(RateOverride(Criteria(users=("ann",)), Decimal("100.00")),),
    )
    assert assess(overridden, entry(3600, user_name="ANN")).amount_minor == 10000


# --- decisions name what they decide (I4a) --------------------------------------------------


def test_an_approval_survives_an_edit_that_keeps_the_priced_figures() -> None:
    review = budget(approval="review", rounding=up15())
    shown = assess(review, entry(4500)).priced  # what the operator saw: 1.25 h, EUR 118.75
    assert shown == Priced("acme", "retainer", "EUR", 4500, Decimal("95.00"), 11875)
    approved = Ruling(Decision.APPROVED, shown)
    edited = assess(review, entry(4400, description="typo fixed", version="v2"), approved)
    assert (edited.status, edited.amount_minor) == ("deducted", 11875)  # still 1.25 h billed


def test_an_approval_of_other_figures_goes_back_to_review_saying_what_changed() -> None:
    review = budget(approval="review")
    shown = assess(review, entry(4500)).priced
    assert shown is not None
    result = assess(review, entry(9 * 3600, version="v2"), Ruling(Decision.APPROVED, shown))
    assert (result.status, result.amount_minor, result.pending_amount_minor) == (
        "pending",
        0,
        85500,
    )
    assert result.reason == (
        "approved before at acme/retainer 1.25 h x EUR 95.00 = EUR 118.75;"
        " now acme/retainer 9.00 h x EUR 95.00 = EUR 855.00: review again"
    )
    # In an `auto` budget an approval decided nothing: the new figures are charged as usual.
    auto = assess(budget(), entry(9 * 3600, version="v2"), Ruling(Decision.APPROVED, shown))
    assert (auto.status, auto.amount_minor) == ("deducted", 85500)


def test_an_approval_does_not_follow_the_entry_to_another_budget() -> None:
    """A config change re-routes the entry to another customer's review budget."""
    shown = assess(budget(approval="review"), entry()).priced
    globex = customer(
        "globex", index=1, budgets=(budget("support", approval="review", rate="120.00"),)
    )
    acme = customer(match=(("other", Criteria(), None),))
    moved = Pricer([acme, globex]).assess(entry(), Ruling(Decision.APPROVED, shown))
    assert (moved.status, moved.customer_id, moved.amount_minor) == ("pending", "globex", 0)
    assert moved.reason is not None and "approved before at acme/retainer" in moved.reason


def test_an_exclusion_holds_while_the_figures_hold_and_is_flagged_when_they_change() -> None:
    shown = assess(budget(), entry()).priced
    excluded = Ruling(Decision.EXCLUDED, shown)
    kept = assess(budget(), entry(description="renamed", version="v2"), excluded)
    assert (kept.status, kept.reason) == ("excluded", "excluded by operator")
    changed = assess(budget(), entry(3 * 3600, version="v3"), excluded)
    assert (changed.status, changed.amount_minor) == ("pending", 0)
    assert changed.reason is not None
    assert changed.reason.startswith("excluded before at acme/retainer 1.00 h")


def test_work_charged_at_unchanged_figures_stays_charged_when_review_is_switched_on() -> None:
    auto = assess(budget(), entry())
    assert auto.priced is not None
    charged = Ruling(charged=auto.priced.version)
    review = budget(approval="review")
    assert assess(review, entry(description="x", version="v2"), charged).status == "deducted"
    assert assess(review, entry(7200, version="v3"), charged).status == "pending"
    assert assess(review, entry(external_id="new")).status == "pending"


def test_money_budget_without_a_rate_excludes_its_work() -> None:
    """The config reader refuses such a budget; built in code, it charges nothing."""
    result = assess(budget(rate=None), entry())
    assert (result.status, result.reason, result.amount_minor) == ("excluded", "no rate", 0)


# --- routing --------------------------------------------------------------------------------


def two_customers() -> Pricer:
    return Pricer(
        [
            customer("acme", index=0, match=(("harvest", Criteria(client_ids=("111",)), None),)),
            customer(
                "globex",
                index=1,
                match=(
                    ("harvest", Criteria(client_ids=("111",), project_ids=("42",)), None),
                    ("clockify", Criteria(client_ids=("5f2a9c0e1b",)), None),
                    ("harvest", Criteria(clients=("globex inc",)), None),
                ),
            ),
        ]
    )


def test_an_entry_one_budget_excludes_is_offered_to_the_next() -> None:
    """Issue 10, unreachable budgets: `internal` work excluded by the retainer used to stay
    excluded although the customer's second budget takes exactly that."""
    retainer = budget("retainer", exclude=Criteria(tags=("internal",)))
    internal = budget("internal", rate="50.00")
    pricer = Pricer([customer(budgets=(retainer, internal))])
    moved = pricer.assess(entry(tags=("Internal",)))
    assert (moved.status, moved.budget_id, moved.amount_minor) == ("deducted", "internal", 5000)
    assert pricer.assess(entry()).budget_id == "retainer"
    # When no budget accepts it, the first whose include took it says why it is excluded.
    only = Pricer([customer(budgets=(retainer, budget("x", exclude=Criteria(tags=("internal",)))))])
    kept = only.assess(entry(tags=("internal",)))
    assert (kept.status, kept.budget_id, kept.reason) == (
        "excluded",
        "retainer",
        "excluded by tag internal",
    )


def test_check_names_budgets_that_can_receive_nothing() -> None:
    shadowed = customer(budgets=(budget("retainer"), budget("extra")))
    assert unreachable_budgets([shadowed]) == [
        "customers[0].budgets[extra]: budget acme/extra can receive nothing: budget retainer"
        " before it takes every entry (it has no include or exclude); narrow that, or name"
        " 'extra' in a match rule's `budget`"
    ]
    narrowed = customer(
        budgets=(budget("retainer", exclude=Criteria(tags=("internal",))), budget("extra"))
    )
    named = customer(
        match=(("harvest", Criteria(), None), ("toggl", Criteria(), "extra")),
        budgets=(budget("retainer"), budget("extra")),
    )
    assert unreachable_budgets([narrowed, named]) == []
    fixed = customer(match=(("harvest", Criteria(), "retainer"),), budgets=shadowed.budgets)
    [warning] = unreachable_budgets([fixed])
    assert "every match rule of the customer names another budget" in warning


def test_first_matching_rule_wins_over_a_later_more_specific_one() -> None:
    pricer = two_customers()
    result = pricer.assess(entry())
    assert (result.customer_id, result.budget_id, result.rule) == (
        "acme",
        "retainer",
        "customers[0].match[0]",
    )


def test_ids_compare_as_strings_across_trackers() -> None:
    pricer = two_customers()
    clockify = entry(source="clockify", client_id="5f2a9c0e1b")
    assert pricer.assess(clockify).rule == "customers[1].match[1]"
    assert pricer.assess(entry(source="clockify", client_id="5F2A9C0E1B")).rule is None
    assert pricer.assess(entry(client_id="1111")).rule is None


def test_names_compare_case_insensitively_after_strip() -> None:
    pricer = two_customers()
    result = pricer.assess(entry(client_id="999", client_name="  GLOBEX Inc "))
    assert (result.customer_id, result.rule) == ("globex", "customers[1].match[2]")


def test_tag_criteria_match_any_listed_tag() -> None:
    pricer = Pricer([customer(match=(("harvest", Criteria(tags=("acme", "retainer")), None),))])
    assert pricer.assess(entry(tags=("x", "RETAINER"))).rule is not None
    assert pricer.assess(entry(tags=("x",))).rule is None
    assert pricer.assess(entry()).rule is None


def test_unrouted_entry_says_what_was_looked_at() -> None:
    result = two_customers().assess(
        entry(client_id="7", client_name="Initech", tags=("a", "b"), running=True)
    )
    assert result == Assessment(
        status=EntryStatus.UNROUTED,
        customer_id=None,
        budget_id=None,
        unit=None,
        amount_minor=0,
        billed_seconds=0,
        rate=None,
        rule=None,
        reason="no match rule for source harvest (client 7 Initech, project 42 Website, tags a, b)",
        explanation=(
            "2025-11-03 1.00 h: unrouted, no match rule for source harvest "
            "(client 7 Initech, project 42 Website, tags a, b)"
        ),
    )
    other = two_customers().assess(entry(source="toggl"))
    assert other.reason == "no match rule for source toggl (no rule names this source)"


def test_budget_choice_by_include_then_first() -> None:
    design = budget("design", include=Criteria(projects=("design",)))
    general = budget("general", rate="80.00", include=Criteria(projects=("website",)))
    pricer = Pricer([customer(budgets=(design, general))])
    assert pricer.assess(entry(project_name="Design")).budget_id == "design"
    assert pricer.assess(entry(project_name="Website")).budget_id == "general"
    neither = pricer.assess(entry(project_name="Hosting"))
    assert (neither.status, neither.budget_id, neither.reason) == (
        "excluded",
        "design",
        "not in include of budget design (projects: design)",
    )


def test_budget_named_by_the_rule_wins_over_include() -> None:
    design = budget("design", include=Criteria(projects=("design",)))
    hours = budget("hours", unit="hours")
    pricer = Pricer(
        [
            customer(
                match=(
                    ("harvest", Criteria(task_ids=("9",)), "hours"),
                    ("harvest", Criteria(), None),
                ),
                budgets=(design, hours),
            )
        ]
    )
    assert pricer.assess(entry(task_id="9", project_name="Design")).budget_id == "hours"
    assert pricer.assess(entry(project_name="Design")).budget_id == "design"


def test_rule_naming_a_missing_budget_is_refused() -> None:
    with pytest.raises(ValueError, match=r"customers\[0\]\.match\[0\]\.budget"):
        Pricer([customer(match=(("harvest", Criteria(), "nope"),))])


@given(
    seconds=st.integers(min_value=0, max_value=10**6),
    cents_rate=st.integers(min_value=0, max_value=10**7),
    currency=st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_amount_equals_the_exact_half_up_value(
    seconds: int, cents_rate: int, currency: str
) -> None:
    rate = Decimal(cents_rate).scaleb(-2)
    digits = {"EUR": 2, "JPY": 0, "KWD": 3}[currency]
    exact = Fraction(seconds) * Fraction(rate) / 3600 * 10**digits
    expected = (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)
    result = assess(budget(rate=str(rate)), entry(seconds), currency=currency)
    assert result.amount_minor == expected


def test_routing_is_decided_once_per_combination_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps `assess` cheap however many rules there are: a verdict is computed once per
    combination of the fields routing reads, then reused."""
    customers = [
        customer(
            f"c{i}",
            index=i,
            match=(("harvest", Criteria(client_ids=(str(i),), tags=("x",)), None),),
            budgets=(budget(rounding=up15(), exclude=Criteria(tags=("internal",))),),
        )
        for i in range(20)
    ]
    pricer = Pricer(customers)
    entries = [entry(900 + i, client_id=str(i % 25), tags=("x",)) for i in range(1000)]
    routed = _SourceRules.first_match
    looked_up: list[str | None] = []

    def counting(rules: _SourceRules, item: TimeEntry) -> Any:
        looked_up.append(item.client_id)
        return routed(rules, item)

    monkeypatch.setattr(_SourceRules, "first_match", counting)
    rounds = [[pricer.assess(e) for e in entries] for _ in range(20)]
    assert sorted(looked_up, key=int) == [str(i) for i in range(25)]  # once per client id
    assert all(later == rounds[0] for later in rounds[1:])
    assert {a.customer_id for a in rounds[0]} == {f"c{i}" for i in range(20)} | {None}


def test_assessment_is_frozen() -> None:
    result = assess(budget(), entry())
    with pytest.raises(AttributeError):  # a named tuple's fields cannot be set
        result.amount_minor = 1  # type: ignore[misc]


# --- the compiled lookups agree with the plain reading of the rules -------------------------


def reference_route(customers: list[Customer], e: TimeEntry) -> str | None:
    """The routing rule as design.md states it, with no index and no cache."""

    def matches(c: Criteria) -> bool:
        ids = (
            (c.client_ids, e.client_id),
            (c.project_ids, e.project_id),
            (c.task_ids, e.task_id),
            (c.user_ids, e.user_id),
        )
        names = (
            (c.clients, e.client_name),
            (c.projects, e.project_name),
            (c.tasks, e.task_name),
            (c.users, e.user_name),
        )
        return (
            all(not wanted or got in wanted for wanted, got in ids)
            and all(
                not wanted or (got is not None and got.strip().lower() in wanted)
                for wanted, got in names
            )
            and (not c.tags or any(t.strip().lower() in c.tags for t in e.tags))
        )

    for cust in customers:
        for rule in cust.match:
            if rule.source == e.source and matches(rule.criteria):
                return rule.yaml_path
    return None


ids = st.sampled_from(["1", "2", "3"])
names = st.sampled_from(["acme", "globex"])
criteria = st.builds(
    Criteria,
    client_ids=st.lists(ids, max_size=2).map(tuple),
    project_ids=st.lists(ids, max_size=2).map(tuple),
    user_ids=st.lists(ids, max_size=1).map(tuple),
    clients=st.lists(names, max_size=1).map(tuple),
    tags=st.lists(st.sampled_from(["a", "b"]), max_size=2).map(tuple),
)
rule_lists = st.lists(
    st.lists(st.tuples(st.sampled_from(["harvest", "toggl"]), criteria), min_size=1, max_size=4),
    min_size=1,
    max_size=4,
)
entries = st.builds(
    entry,
    source=st.sampled_from(["harvest", "toggl"]),
    client_id=st.one_of(st.none(), ids),
    project_id=st.one_of(st.none(), ids),
    user_id=st.one_of(st.none(), ids),
    client_name=st.one_of(st.none(), st.sampled_from(["ACME", " Globex ", "initech"])),
    tags=st.lists(st.sampled_from(["A", "b", "c"]), max_size=2).map(tuple),
)


@given(rules=rule_lists, batch=st.lists(entries, min_size=1, max_size=8))
def test_indexed_and_cached_routing_equals_the_reference(
    rules: list[list[tuple[str, Criteria]]], batch: list[TimeEntry]
) -> None:
    customers = [
        customer(f"c{i}", index=i, match=tuple((src, crit, None) for src, crit in rule_set))
        for i, rule_set in enumerate(rules)
    ]
    pricer = Pricer(customers)
    for e in batch + batch:  # the second pass answers from the cache
        assert pricer.assess(e).rule == reference_route(customers, e)


def test_results_survive_the_cache_starting_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    import sync.rules

    monkeypatch.setattr(sync.rules, "_CACHE_LIMIT", 2)
    pricer = two_customers()
    batch = [entry(), entry(client_id="999", client_name="Globex Inc"), entry(client_id="7")]
    first = [pricer.assess(e) for e in batch]
    again = [pricer.assess(e) for e in reversed(batch)]
    assert [a.customer_id for a in first] == ["acme", "globex", None]
    assert again == list(reversed(first))
