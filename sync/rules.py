"""Routing and valuation: which budget an entry belongs to and what it costs there. No I/O.

`Pricer` compiles the customers' match rules, include/exclude filters, rate overrides and
rounding into plain lookups once; `Pricer.assess` then answers, for one entry and the
operator's review decision, a complete `Assessment`: status, budget, amount in the budget's
ledger unit and a one-line explanation. The engine posts the difference between
`amount_minor` and what the entry already costs, so everything here is a pure function of
(entry, settings, decision): assessing twice gives the same answer, which is what makes a
re-run harmless (I1).

Routing: rules are tried in file order (customers in order, then each customer's `match`
rules); the first rule whose `source` and every given criterion match wins. Within the
customer, a rule without a `budget` gives the entry to the first budget whose include and
exclude filters both accept it, so work one budget excludes is offered to the next. Ids compare as
strings, names and tags case-insensitively. An entry no rule matches is unrouted, unless it
was deleted (nothing for the operator to fix). Valuation then applies, in this order: running,
deleted, negative duration, billable filter, include, exclude, the operator's exclusion, the
rate (money budgets; work whose source gives no usable rate is `unpriced`, never dropped), and
the review step.

Speed: the engine assesses every fetched entry, so rules are indexed by their id criteria
(`_SourceRules`) and everything that depends only on an entry's source, ids, names and tags
(route, budget, filters, override rate) is cached per combination (`_Verdict`).
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import NamedTuple, assert_never

from sync.model import (
    HOUR_UNIT,
    SECONDS_PER_HOUR,
    EntryStatus,
    TimeEntry,
    format_amount,
    minor_digits,
    to_minor,
)
from sync.settings import Budget, Criteria, Customer, MatchRule, Rounding, RoundingMode

_SECONDS_PER_HOUR_DECIMAL = Decimal(SECONDS_PER_HOUR)


class Decision(enum.StrEnum):
    """The operator's review decision on an entry (`entries approve` / `entries exclude`)."""

    APPROVED = "approved"
    EXCLUDED = "excluded"


# A decision comes back from the ledger as text; anything else is a bug, not a new vocabulary.
_DECISIONS = frozenset(Decision)


class Priced(NamedTuple):
    """The priced figures of an entry in a budget: what a review decision is made on (I4a).

    `billed_seconds` is the duration after rounding and minimum; `rate` the hourly rate (money
    budgets; None for hours budgets and for unpriced work); `amount_minor` what it costs in the
    budget's `unit` (0 when unpriced). An edit that leaves all of them equal (a description)
    keeps a decision; any other change sends the entry back to review.
    """

    customer_id: str
    budget_id: str
    unit: str
    billed_seconds: int
    rate: Decimal | None
    amount_minor: int

    @property
    def version(self) -> str:
        """A short name for these figures: what `entries` shows and `approve ID@VERSION` takes."""
        return _figures_version(self)

    def shown(self) -> str:
        """The figures as the operator reads them, e.g. "acme/retainer 1.25 h x EUR 120.00 =
        EUR 150.00"."""
        where = f"{self.customer_id}/{self.budget_id} {_hours(self.billed_seconds)} h"
        if self.unit == HOUR_UNIT:
            return where
        if self.rate is None:
            return f"{where}, no rate"
        amount = format_amount(self.amount_minor, self.unit)
        return f"{where} x {self.unit} {self.rate} = {self.unit} {amount}"


@functools.lru_cache(maxsize=4096)
def _figures_version(priced: Priced) -> str:
    """FNV-1a (64 bit) of the figures, in plain arithmetic so this module stays pure, and
    cached: a sync names the figures of every entry it stores, and they repeat. Eight hex
    digits are plenty, as a version is only ever compared with the same entry's current one.
    """
    digest = 0xCBF29CE484222325
    # A rate compares by value (95.0 == 95.00), so it is named by value too.
    parts = (p.normalize() if isinstance(p, Decimal) else p for p in priced)
    for byte in "|".join(str(part) for part in parts).encode():
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{digest >> 32:08x}"


class Ruling(NamedTuple):
    """What applies to an entry besides the budget's rules: the operator's `decision` with the
    figures it was made `on`, and the figures the ledger `charged` it at so far.

    `on` is None for a decision recorded before figures were kept (it applies as it did then).
    `charged` is the `Priced.version` of the entry's current deduction (None when it is not
    deducted): work a budget already charged at unchanged figures stays charged when the budget
    switches from `auto` to `review`, which holds only new or changed entries.
    """

    decision: Decision | None = None
    on: Priced | None = None
    charged: str | None = None


def _ruling(decision: Ruling | str | None) -> Ruling:
    """A bare decision (tests, older callers) is one that applies whatever the figures."""
    if decision is None:
        return Ruling()
    if isinstance(decision, Ruling):
        return decision
    if decision not in _DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    return Ruling(Decision(decision))


class Assessment(NamedTuple):
    """What one entry should cost now, and why. A named tuple: a sync builds one for every
    entry, and a frozen dataclass costs several times as much to build.

    `status` is an `EntryStatus` value. `unit` is the budget's ledger unit: the customer's
    currency code for a money budget, `HOUR_UNIT` for an hours budget. `amount_minor` is what
    the ledger must hold in debits for this entry, in that unit's minor units (cents, yen, or
    seconds); it is 0 unless the status is deducted. `billed_seconds` is the duration after
    rounding and minimum (0 unless deducted). `rate` is the hourly rate used (money budgets).
    `rule` is the YAML path of the match rule that routed the entry. `reason` says why it is not
    deducted (None when it is). `pending_amount_minor` is what a pending entry will cost once
    approved, so the status page can show what is waiting; 0 for every other status. `priced`
    is the entry's priced figures in its budget, when its budget's rules let it be priced
    (deducted, pending, unpriced, or excluded by the operator): what a decision is made on.
    """

    status: EntryStatus
    customer_id: str | None
    budget_id: str | None
    unit: str | None
    amount_minor: int
    billed_seconds: int
    rate: Decimal | None
    rule: str | None
    reason: str | None
    explanation: str
    pending_amount_minor: int = 0
    priced: Priced | None = None


# --- rounding -------------------------------------------------------------------------------


def round_seconds(seconds: int, increment: int, mode: RoundingMode) -> int:
    """Round a non-negative duration to a multiple of `increment` seconds.

    `up` is the ceiling, `down` the floor, `nearest` rounds an exact half up (a 7.5-minute
    entry on a 15-minute grid bills 15 minutes: the agency's convention, and the same half-up
    rule money uses). Exact multiples, and zero, are unchanged by every mode.
    """
    if seconds < 0:
        raise ValueError(f"cannot round a negative duration ({seconds} s)")
    if increment <= 0:
        raise ValueError(f"rounding increment must be positive, not {increment} s")
    down, remainder = divmod(seconds, increment)
    down *= increment
    if remainder == 0:
        return seconds
    if mode == "down":
        return down
    if mode == "up":
        return down + increment
    if mode == "nearest":
        return down + increment if 2 * remainder >= increment else down
    assert_never(mode)


def billed_seconds(seconds: int, rounding: Rounding | None) -> int:
    """The duration an entry is billed for: rounded per entry, then raised to the minimum.

    The order is fixed so that the minimum means what it says: any entry longer than zero bills
    at least `minimum_minutes`, whatever the rounding did to it first (rounding `down` or
    `nearest` can take a 6-minute entry to 0, and such an entry still bills the minimum). A zero
    entry (a timer started and stopped by mistake) bills nothing. An increment of 0 means
    "minimum only". The README's rules section tabulates this per mode, checked by a test.
    """
    if rounding is None:
        return seconds
    billed = seconds
    if rounding.increment_minutes:
        billed = round_seconds(seconds, rounding.increment_minutes * 60, rounding.mode)
    minimum = rounding.minimum_minutes * 60
    if seconds > 0 and billed < minimum:
        return minimum
    return billed


def _rounding_label(rounding: Rounding) -> str:
    parts = []
    if rounding.increment_minutes:
        parts.append(f"{rounding.increment_minutes} min {rounding.mode}")
    if rounding.minimum_minutes:
        parts.append(f"min {rounding.minimum_minutes} min")
    return ", ".join(parts)


# --- criteria -------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Names and tags compare case-insensitively; casefold on both sides keeps them equal."""
    return text.strip().casefold()


class _Check:
    """One compiled criterion: `hit(entry)` returns the entry's matching value, or None.

    Returning the value (not a bool) lets an exclusion say what excluded the entry.
    """

    __slots__ = ("_get", "attribute", "key", "label", "shown", "values")

    # An id is an exact string, so rules can be indexed by it (see `_SourceRules`).
    exact = True

    def __init__(self, key: str, label: str, attribute: str, values: tuple[str, ...]) -> None:
        self.key = key
        self.label = label
        self.attribute = attribute
        self.shown = ", ".join(values)
        self._get: Callable[[TimeEntry], object] = operator.attrgetter(attribute)
        self.values = frozenset(self._normalise(v) for v in values)

    def _normalise(self, value: str) -> str:
        return str(value).strip()

    def hit(self, entry: TimeEntry) -> str | None:
        value = self._get(entry)
        if value is None:
            return None
        text = str(value).strip()
        return text if text in self.values else None


class _NameCheck(_Check):
    __slots__ = ()
    exact = False

    def _normalise(self, value: str) -> str:
        return _fold(value)

    def hit(self, entry: TimeEntry) -> str | None:
        value = self._get(entry)
        if not isinstance(value, str):
            return None
        return value.strip() if _fold(value) in self.values else None


class _TagCheck(_Check):
    __slots__ = ()
    exact = False

    def _normalise(self, value: str) -> str:
        return _fold(value)

    def hit(self, entry: TimeEntry) -> str | None:
        for tag in entry.tags:
            if _fold(tag) in self.values:
                return tag.strip()
        return None


# (YAML key, label in messages, TimeEntry attribute, kind)
_CRITERIA_FIELDS: tuple[tuple[str, str, str, type[_Check]], ...] = (
    ("client_ids", "client id", "client_id", _Check),
    ("project_ids", "project id", "project_id", _Check),
    ("task_ids", "task id", "task_id", _Check),
    ("user_ids", "user id", "user_id", _Check),
    ("clients", "client", "client_name", _NameCheck),
    ("projects", "project", "project_name", _NameCheck),
    ("tasks", "task", "task_name", _NameCheck),
    ("users", "user", "user_name", _NameCheck),
    ("tags", "tag", "tags", _TagCheck),
)


class _Matcher:
    """A compiled `Criteria`: every given criterion, ready to test against an entry."""

    __slots__ = ("checks",)

    def __init__(self, criteria: Criteria) -> None:
        checks = []
        for key, label, attribute, kind in _CRITERIA_FIELDS:
            values: tuple[str, ...] = getattr(criteria, key)
            if values:
                checks.append(kind(key, label, attribute, values))
        self.checks: tuple[_Check, ...] = tuple(checks)

    def matches_all(self, entry: TimeEntry) -> bool:
        """Every given criterion matches (an empty matcher matches everything)."""
        return self.first_miss(entry) is None

    def first_miss(self, entry: TimeEntry) -> _Check | None:
        """The first criterion the entry fails, or None when all match."""
        for check in self.checks:
            if check.hit(entry) is None:
                return check
        return None

    def first_hit(self, entry: TimeEntry) -> tuple[_Check, str] | None:
        """The first criterion the entry meets, with the matching value; None when none does."""
        for check in self.checks:
            value = check.hit(entry)
            if value is not None:
                return check, value
        return None


# --- compiled settings ----------------------------------------------------------------------


class _BudgetPlan:
    """One budget with everything `assess` needs precomputed."""

    __slots__ = (
        "budget",
        "currency",
        "customer",
        "exclude",
        "include",
        "is_money",
        "overrides",
        "rate",
        "rounding_label",
        "unit",
    )

    def __init__(self, customer: Customer, budget: Budget) -> None:
        self.customer = customer
        self.budget = budget
        self.currency = customer.currency
        self.is_money = budget.unit == "money"
        self.unit = customer.currency if self.is_money else HOUR_UNIT
        self.include = _Matcher(budget.include) if not budget.include.is_empty() else None
        self.exclude = _Matcher(budget.exclude) if not budget.exclude.is_empty() else None
        self.overrides = tuple((_Matcher(o.criteria), o.rate) for o in budget.rate_overrides)
        self.rate = budget.rate
        rounding = budget.rounding
        self.rounding_label = _rounding_label(rounding) if rounding is not None else ""

    def filtered(self, entry: TimeEntry) -> str | None:
        """Why the budget's include/exclude filters refuse `entry`, or None when they accept."""
        if self.include is not None:
            missed = self.include.first_miss(entry)
            if missed is not None:
                return f"not in include of budget {self.budget.id} ({missed.key}: {missed.shown})"
        if self.exclude is not None:
            hit = self.exclude.first_hit(entry)
            if hit is not None:
                check, value = hit
                return f"excluded by {check.label} {value}"
        return None

    def override_for(self, entry: TimeEntry) -> Decimal | None:
        """The rate of the first matching override, or None."""
        for matcher, rate in self.overrides:
            if matcher.matches_all(entry):
                return rate
        return None

    def rate_for(
        self, entry: TimeEntry, override: Decimal | None
    ) -> tuple[Decimal | None, str | None]:
        """The hourly rate for `entry`, or (None, why there is none).

        A matching override wins over both the budget's rate and the source's: it is the
        operator's explicit word for this kind of work.
        """
        if override is not None:
            return override, None
        if not self.budget.rate_from_source:
            return self.rate, None
        if entry.rate is None:
            return None, "no billable rate in source"
        if entry.rate_currency is not None and entry.rate_currency.upper() != self.currency:
            return None, (
                f"source rate is in {entry.rate_currency.upper()}, "
                f"customer {self.customer.id} is billed in {self.currency}"
            )
        if entry.rate < 0:
            return None, f"negative billable rate in source ({entry.rate})"
        return entry.rate, None


class _RulePlan:
    """One match rule with its compiled criteria and, when it names one, its budget."""

    __slots__ = ("budget", "budgets", "matcher", "rule")

    def __init__(
        self, rule: MatchRule, budgets: tuple[_BudgetPlan, ...], fixed: _BudgetPlan | None
    ) -> None:
        self.rule = rule
        self.matcher = _Matcher(rule.criteria)
        self.budgets = budgets
        self.budget = fixed

    def choose_budget(self, entry: TimeEntry) -> _BudgetPlan:
        """The rule's budget, else the first whose include and exclude both accept the entry
        (an entry one budget excludes is offered to the next), else the first whose include
        accepts it, else the first (where valuation then excludes the entry and says why).
        """
        if self.budget is not None:
            return self.budget
        including: _BudgetPlan | None = None
        for plan in self.budgets:
            if plan.include is None or plan.include.matches_all(entry):
                if plan.filtered(entry) is None:
                    return plan
                including = including or plan
        return including or self.budgets[0]


class _SourceRules:
    """One source's match rules in file order, indexed by the first id criterion of each.

    An id criterion is an exact string, so a rule requiring client 111 can only match an entry
    whose client id is 111. Testing just those rules and the rules without an id criterion, in
    file order, gives the same first match as testing every rule, at a fraction of the cost
    when a config has many customers.
    """

    __slots__ = ("_free", "_indexes", "_rules")

    def __init__(self, rules: Sequence[_RulePlan]) -> None:
        self._rules = tuple(rules)
        free: list[int] = []
        indexes: dict[str, dict[str, list[int]]] = {}
        for position, plan in enumerate(self._rules):
            anchor = next((c for c in plan.matcher.checks if c.exact), None)
            if anchor is None:
                free.append(position)
                continue
            index = indexes.setdefault(anchor.attribute, {})
            for value in anchor.values:
                index.setdefault(value, []).append(position)
        self._free = tuple(free)
        self._indexes = tuple(
            (operator.attrgetter(attribute), {v: tuple(p) for v, p in index.items()})
            for attribute, index in indexes.items()
        )

    def first_match(self, entry: TimeEntry) -> _RulePlan | None:
        """The first rule, in file order, whose criteria all match `entry`."""
        candidates = list(self._free)
        for get, index in self._indexes:
            value = get(entry)
            if value is not None:
                candidates.extend(index.get(str(value).strip(), ()))
        candidates.sort()
        for position in candidates:
            plan = self._rules[position]
            if plan.matcher.matches_all(entry):
                return plan
        return None


class _Verdict:
    """Everything about an entry that depends only on what routing looks at (source, ids,
    names, tags), so it can be cached per combination: the rule, the budget, the filters'
    refusal and the override rate.
    """

    __slots__ = ("filtered", "override", "plan", "rule")

    def __init__(self, rule: _RulePlan, plan: _BudgetPlan, entry: TimeEntry) -> None:
        self.rule = rule
        self.plan = plan
        self.filtered = plan.filtered(entry)
        self.override = plan.override_for(entry)


# Beyond this many distinct (source, ids, names, tags) combinations the cache starts afresh, so
# a long-running `prepaid serve` cannot grow it without bound.
_CACHE_LIMIT = 50_000


def _routing_key(entry: TimeEntry) -> tuple[object, ...]:
    """Every field routing, include/exclude and rate overrides read; nothing else."""
    return (
        entry.source,
        entry.client_id,
        entry.project_id,
        entry.task_id,
        entry.user_id,
        entry.client_name,
        entry.project_name,
        entry.task_name,
        entry.user_name,
        entry.tags,
    )


@functools.lru_cache(maxsize=4096)
def _hours(seconds: int) -> str:
    """Hours exactly as `format_amount(seconds, HOUR_UNIT)` shows them (two decimals for a
    multiple of 36 s, else six), in integer arithmetic and cached: it runs twice for every
    entry, and durations repeat.
    """
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds % 36 == 0:
        hundredths = seconds // 36
        return f"{sign}{hundredths // 100}.{hundredths % 100:02d}"
    # millionths of an hour = seconds * 2500 / 9; a ninth is never exactly half, so no ties.
    millionths, remainder = divmod(seconds * 2500, 9)
    if 2 * remainder > 9:
        millionths += 1
    return f"{sign}{millionths // 1_000_000}.{millionths % 1_000_000:06d}"


def _describe(entry: TimeEntry) -> str:
    """What routing looked at, for an unrouted entry's reason."""
    parts = []
    for label, id_, name in (
        ("client", entry.client_id, entry.client_name),
        ("project", entry.project_id, entry.project_name),
        ("task", entry.task_id, entry.task_name),
        ("user", entry.user_id, entry.user_name),
    ):
        shown = " ".join(str(v) for v in (id_, name) if v)
        if shown:
            parts.append(f"{label} {shown}")
    if entry.tags:
        parts.append("tags " + ", ".join(entry.tags))
    return ", ".join(parts) or "no client, project, task, user or tags"


class Pricer:
    """Routes and values time entries under one set of customers.

    The constructor compiles every rule once and rejects settings it cannot price (an unknown
    currency raises `UnknownCurrency`, a rule naming a missing budget raises `ValueError`), so
    a bad config fails at start-up rather than halfway through a sync.
    """

    def __init__(self, customers: Sequence[Customer]) -> None:
        by_source: dict[str, list[_RulePlan]] = {}
        for customer in customers:
            minor_digits(customer.currency)  # raises UnknownCurrency
            budgets = tuple(_BudgetPlan(customer, b) for b in customer.budgets)
            by_id = {plan.budget.id: plan for plan in budgets}
            for rule in customer.match:
                if not budgets:
                    raise ValueError(f"{rule.yaml_path}: customer {customer.id} has no budget")
                fixed = None
                if rule.budget is not None:
                    if rule.budget not in by_id:
                        raise ValueError(
                            f"{rule.yaml_path}.budget: customer {customer.id} has no budget "
                            f"{rule.budget!r}"
                        )
                    fixed = by_id[rule.budget]
                by_source.setdefault(rule.source, []).append(_RulePlan(rule, budgets, fixed))
        self._by_source = {source: _SourceRules(plans) for source, plans in by_source.items()}
        # A sync sees the same few client/project/user combinations over and over; caching
        # the verdict per combination keeps `assess` flat however many rules the config has.
        self._cache: dict[tuple[object, ...], _Verdict | None] = {}
        self._unrouted_reasons: dict[tuple[object, ...], str] = {}

    def _verdict(self, entry: TimeEntry) -> _Verdict | None:
        key = _routing_key(entry)
        try:
            return self._cache[key]
        except KeyError:
            pass
        verdict = None
        rules = self._by_source.get(entry.source)
        rule_plan = rules.first_match(entry) if rules is not None else None
        if rule_plan is not None:
            verdict = _Verdict(rule_plan, rule_plan.choose_budget(entry), entry)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = verdict
        return verdict

    def _unrouted(self, entry: TimeEntry) -> str:
        """Why no rule took the entry; cached like verdicts, as unrouted work repeats too."""
        key = _routing_key(entry)
        reason = self._unrouted_reasons.get(key)
        if reason is None:
            if entry.source in self._by_source:
                reason = f"no match rule for source {entry.source} ({_describe(entry)})"
            else:
                reason = f"no match rule for source {entry.source} (no rule names this source)"
            if len(self._unrouted_reasons) >= _CACHE_LIMIT:
                self._unrouted_reasons.clear()
            self._unrouted_reasons[key] = reason
        return reason

    def assess(self, entry: TimeEntry, decision: Ruling | str | None = None) -> Assessment:
        """What `entry` should cost now, given the operator's review `decision` (or None).

        A decision made on other figures than the entry has now (another budget, hours, rate
        or amount) is not applied to them (I4a): the entry goes back to review, with a reason
        that says what was decided before and what changed.
        """
        ruling = _ruling(decision)
        day = entry.spent_date.isoformat()
        verdict = self._verdict(entry)
        if verdict is None:
            if entry.deleted:
                return _not_charged(entry, EntryStatus.DELETED, None, None, "deleted in source")
            return _not_charged(entry, EntryStatus.UNROUTED, None, None, self._unrouted(entry))

        plan = verdict.plan
        budget = plan.budget
        rule = verdict.rule.rule.yaml_path
        if entry.running:
            return _not_charged(entry, EntryStatus.RUNNING, plan, rule, "timer still running")
        if entry.deleted:
            return _not_charged(entry, EntryStatus.DELETED, plan, rule, "deleted in source")
        if entry.seconds < 0:
            return _excluded(entry, plan, rule, "negative duration")
        if budget.billable_only and not entry.billable:
            return _excluded(entry, plan, rule, "not billable")
        if verdict.filtered is not None:
            return _excluded(entry, plan, rule, verdict.filtered)
        if ruling.decision == Decision.EXCLUDED and ruling.on is None:
            return _excluded(entry, plan, rule, "excluded by operator")

        billed = billed_seconds(entry.seconds, budget.rounding)
        duration = f"{day} {_hours(entry.seconds)} h"
        if plan.rounding_label:
            duration = f"{duration} -> {_hours(billed)} h ({plan.rounding_label})"
        rate: Decimal | None = None
        unpriced: str | None = None
        amount = billed
        cost = f"{duration} = {_hours(billed)} h"
        if plan.is_money:
            rate, problem = plan.rate_for(entry, verdict.override)
            if rate is None and not (plan.budget.rate_from_source and problem is not None):
                return _excluded(entry, plan, rule, problem or "no rate")
            if rate is None:
                unpriced, amount = problem, 0
            else:
                amount = to_minor(Decimal(billed) * rate / _SECONDS_PER_HOUR_DECIMAL, plan.currency)
                cost = (
                    f"{duration} x {plan.currency} {rate} = "
                    f"{plan.currency} {format_amount(amount, plan.currency)}"
                )
        priced = Priced(plan.customer.id, budget.id, plan.unit, billed, rate, amount)

        stale: str | None = None
        approved = ruling.decision == Decision.APPROVED
        if ruling.decision is not None and ruling.on is not None and ruling.on != priced:
            # Made on figures nobody sees any more: never applied to the new ones. An approval
            # in an `auto` budget decided nothing the budget would not do anyway.
            approved = False
            if ruling.decision == Decision.EXCLUDED or budget.approval == "review":
                stale = (
                    f"{ruling.decision} before at {ruling.on.shown()}; now {priced.shown()}:"
                    " review again"
                )
        elif ruling.decision == Decision.EXCLUDED:
            return _excluded(entry, plan, rule, "excluded by operator")._replace(priced=priced)
        if unpriced is not None:
            why = unpriced if stale is None else f"{unpriced}; {stale}"
            return _not_charged(entry, EntryStatus.UNPRICED, plan, rule, why)._replace(
                priced=priced
            )
        if ruling.charged == priced.version:
            approved = True  # already charged at these very figures: nothing new to review
        held = stale or ("waiting for review" if budget.approval == "review" else None)
        if held is not None and not approved:
            return Assessment(
                status=EntryStatus.PENDING,
                customer_id=plan.customer.id,
                budget_id=budget.id,
                unit=plan.unit,
                amount_minor=0,
                billed_seconds=0,
                rate=rate,
                rule=rule,
                reason=held,
                explanation=f"{cost}, {held} ({rule})",
                pending_amount_minor=amount,
                priced=priced,
            )
        return Assessment(
            status=EntryStatus.DEDUCTED,
            customer_id=plan.customer.id,
            budget_id=budget.id,
            unit=plan.unit,
            amount_minor=amount,
            billed_seconds=billed,
            rate=rate,
            rule=rule,
            reason=None,
            explanation=f"{cost} ({rule})",
            priced=priced,
        )


def _not_charged(
    entry: TimeEntry, status: EntryStatus, plan: _BudgetPlan | None, rule: str | None, reason: str
) -> Assessment:
    """An assessment that costs nothing: excluded, unpriced, unrouted, running or deleted."""
    where = f" ({rule})" if rule else ""
    return Assessment(
        status=status,
        customer_id=plan.customer.id if plan else None,
        budget_id=plan.budget.id if plan else None,
        unit=plan.unit if plan else None,
        amount_minor=0,
        billed_seconds=0,
        rate=None,
        rule=rule,
        reason=reason,
        explanation=(
            f"{entry.spent_date.isoformat()} {_hours(entry.seconds)} h: {status}, {reason}{where}"
        ),
    )


def _excluded(entry: TimeEntry, plan: _BudgetPlan, rule: str, reason: str) -> Assessment:
    return _not_charged(entry, EntryStatus.EXCLUDED, plan, rule, reason)


def unreachable_budgets(customers: Sequence[Customer]) -> list[str]:
    """A warning per budget that routing can never give an entry (for `prepaid check`): no
    match rule names it, and either every rule names another budget or an earlier budget of
    the customer takes every entry (no include, no exclude)."""
    warnings = []
    for customer in customers:
        named = {rule.budget for rule in customer.match if rule.budget is not None}
        open_rules = any(rule.budget is None for rule in customer.match)
        taker: Budget | None = None
        for budget in customer.budgets:
            if budget.id not in named:
                why = None
                if not open_rules:
                    why = "every match rule of the customer names another budget"
                elif taker is not None:
                    why = (
                        f"budget {taker.id} before it takes every entry (it has no include"
                        " or exclude)"
                    )
                if why is not None:
                    warnings.append(
                        f"{budget.yaml_path}: budget {customer.id}/{budget.id} can receive"
                        f" nothing: {why}; narrow that, or name {budget.id!r} in a match"
                        " rule's `budget`"
                    )
            if taker is None and budget.include.is_empty() and budget.exclude.is_empty():
                taker = budget
    return warnings


def budget_unit(customer: Customer, budget: Budget) -> str:
    """The ledger unit of a budget: the customer's currency, or hours."""
    return HOUR_UNIT if budget.unit == "hours" else customer.currency
