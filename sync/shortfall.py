"""Why a budget stays below its refill threshold, in words an operator can act on.

A fixed refill `amount` lifts a balance by exactly that amount, wherever the balance is when the
policy runs: from 350.00 with `below: 500`, `amount: 100` it reaches 450.00, still below. The
design keeps at most one open refill per budget (I3, enforced by the schema's open slot), so the
policy never raises a second invoice while the first is unpaid; the next refill waits for the
next run after the first is settled, and `max_per_day` caps how many a day may bring. Rather than
leave such a budget under its threshold in silence (a run saying "nothing to do"), every run says
which of these holds, and `prepaid check` warns about settings where one refill cannot lift a
used-up budget at all. Pure functions of figures in minor units, so the texts are tested alone.
"""

from __future__ import annotations

from sync.model import format_amount, to_minor
from sync.rules import budget_unit
from sync.settings import Budget, Customer, RefillPolicy, Settings


def setting_warnings(settings: Settings) -> list[str]:
    """Warnings for `prepaid check`: fixed refill amounts that cannot lift a used-up budget.

    The policy fires anywhere under `below`, and a budget usually reaches it by being used up
    (to 0.00, or under it when work outruns the refill). One refill of `amount` lifts a
    balance of 0.00 to `amount`; unless that is above `below`, the budget is still under its
    threshold once the refill is paid, and only a second refill (a run later, within
    `max_per_day`) may lift it. So `amount <= below` is worth a warning; `top_up_to` always
    lifts (the config requires it above `below`).
    """
    warnings: list[str] = []
    for customer in settings.customers:
        for budget in customer.budgets:
            policy = budget.refill
            if policy is None or policy.amount is None or policy.amount > policy.below:
                continue
            unit = budget_unit(customer, budget)
            amount = _shown(to_minor(policy.amount, unit), unit, budget)
            below = _shown(to_minor(policy.below, unit), unit, budget)
            warnings.append(
                f"{budget.yaml_path}.refill.amount: a refill of {amount} cannot lift a used-up"
                f" budget above its threshold ({below}): from 0 it reaches only {amount}. One"
                " refill lifts only a balance above"
                f" {_shown(to_minor(policy.below - policy.amount, unit), unit, budget)} above the"
                " threshold; a lower one stays at or below it, and further refills come one at a"
                f" time, at most {policy.max_per_day} a day (max_per_day). Set amount above"
                f" {below}, or use top_up_to"
            )
    return warnings


def still_below(
    customer: Customer,
    budget: Budget,
    *,
    balance: int,
    after: int,
    amount: int,
    raised_today: int,
) -> str:
    """The run's line for a refill of `amount` that leaves the budget at `after`, still under
    its threshold: how many more refills it takes, and whether `max_per_day` allows them."""
    policy = _policy(budget)
    unit = budget_unit(customer, budget)
    below = to_minor(policy.below, unit)
    text = (
        f"refill of {_shown(amount, unit, budget)} leaves {customer.id}/{budget.id} at"
        f" {_shown(after, unit, budget)}, below {_shown(below, unit, budget)}"
        f" (balance now {_shown(balance, unit, budget)})"
    )
    more = -(-(below - after) // amount)  # ceiling: refills still needed after this one
    left = max(policy.max_per_day - raised_today, 0)
    if more > left:
        text += (
            f"; it takes {more} more refills of {_shown(amount, unit, budget)}, one at a time,"
            f" and max_per_day ({policy.max_per_day} in {budget.yaml_path}.refill) allows"
            f" {left} more today"
        )
    else:
        text += f"; the next refill is raised once this one is paid ({more} more needed)"
    return text + ": raise refill.amount or use top_up_to"


def awaiting(customer: Customer, budget: Budget, *, balance: int, refill: str, after: int) -> str:
    """The run's line for a budget below its threshold whose open refill will lift it."""
    unit = budget_unit(customer, budget)
    below = to_minor(_policy(budget).below, unit)
    return (
        f"{customer.id}/{budget.id}: balance {_shown(balance, unit, budget)} is below"
        f" {_shown(below, unit, budget)} until refill {refill} is paid, which lifts it to"
        f" {_shown(after, unit, budget)}"
    )


def next_run(customer: Customer, budget: Budget, *, balance: int, raised_today: int) -> str:
    """The run's line for a budget below its threshold without an open refill (its refill was
    settled during this run): when the next one comes, or why it does not come today."""
    policy = _policy(budget)
    unit = budget_unit(customer, budget)
    head = (
        f"{customer.id}/{budget.id}: balance {_shown(balance, unit, budget)} is below"
        f" {_shown(to_minor(policy.below, unit), unit, budget)}"
    )
    if raised_today >= policy.max_per_day:
        return head + "; " + limit_reached(budget, raised_today)
    return head + "; its last refill was settled in this run, the next one is raised next run"


def guarded(customer: Customer, budget: Budget, *, balance: int, raised_today: int) -> str:
    """The run's line when `max_per_day` stops a refill, in plain words."""
    policy = _policy(budget)
    unit = budget_unit(customer, budget)
    text = (
        f"{customer.id}/{budget.id}: balance {_shown(balance, unit, budget)} stays below the"
        f" threshold {_shown(to_minor(policy.below, unit), unit, budget)} and no refill was"
        f" raised: {limit_reached(budget, raised_today)}"
    )
    if policy.amount is not None and balance + to_minor(policy.amount, unit) < to_minor(
        policy.below, unit
    ):
        text += (
            f"; a refill of {_shown(to_minor(policy.amount, unit), unit, budget)} would not"
            " lift it either: raise refill.amount or use top_up_to"
        )
    return text + "; check the entries, or record a payment with `prepaid topup`"


def limit_reached(budget: Budget, raised_today: int) -> str:
    """Why no refill is raised today."""
    policy = _policy(budget)
    return (
        f"{raised_today} refills were already raised today, the limit"
        f" (max_per_day {policy.max_per_day} in {budget.yaml_path}.refill); the next one is"
        " raised tomorrow, or raise the limit"
    )


def _policy(budget: Budget) -> RefillPolicy:
    assert budget.refill is not None
    return budget.refill


def _shown(minor: int, unit: str, budget: Budget) -> str:
    """An amount with its unit, so hours are never read as money."""
    return (
        f"{format_amount(minor, unit)} h" if budget.unit == "hours" else format_amount(minor, unit)
    )
