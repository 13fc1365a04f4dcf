"""The `customers` section of the config: customers, their match rules and budgets.

A customer names the sources its time comes from and the invoicing entry its refills go to,
so it is read after those sections and checks its references against their names. Budgets
carry the money rules (a rate obeys the currency's decimals, hours are kept to two decimals,
a refill needs either `amount` or `top_up_to`). Kept apart from `sync.config.connectors`
because this half is about prices and prepaid balances, not about reaching a service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import get_args

from sync.config.fields import FieldReader
from sync.config.values import (
    as_amount,
    as_bool,
    as_choice,
    as_currency,
    as_email,
    as_ident,
    as_name,
    as_slug,
    as_text,
    as_whole,
    join_path,
)
from sync.model import is_known_currency, minor_digits
from sync.settings import (
    Approval,
    Budget,
    BudgetUnit,
    CollectionMethod,
    CreditOn,
    Criteria,
    Customer,
    InvoiceTo,
    MatchRule,
    RateOverride,
    RefillPolicy,
    Rounding,
    RoundingMode,
)

_CRITERIA_KEYS = tuple(
    "client_ids project_ids task_ids user_ids client project task user tags".split()
)
_CUSTOMER_KEYS = ("id", "name", "currency", "invoice_to", "match", "budgets")
_INVOICE_TO_KEYS = tuple("sink customer email collection_method days_until_due tax_rates".split())
_BUDGET_KEYS = tuple(
    "id unit rate opening_balance billable_only include exclude rounding rate_overrides approval"
    " refill".split()
)
_REFILL_KEYS = ("below", "amount", "top_up_to", "credit_on", "max_per_day")
_ROUNDING_KEYS = ("increment_minutes", "mode", "minimum_minutes")
_INVOICE_TO_DEFAULTS = InvoiceTo(sink="")
_BUDGET_DEFAULTS = Budget(yaml_path="", id="", unit="money", rate=None, opening_balance=Decimal(0))
_REFILL_DEFAULTS = RefillPolicy(below=Decimal(0))
_DEFAULT_ROUNDING_MODE: RoundingMode = "up"


def read_customer(
    reader: FieldReader,
    raw: object,
    path: str,
    sources: Mapping[str, str] | None,
    sinks: Mapping[str, str] | None,
    seen: dict[str, str],
) -> Customer | None:
    m = reader.mapping(raw, path, _CUSTOMER_KEYS, "{id: acme, name: ACME Corp, currency: EUR}")
    if m is None:
        return None
    cid = reader.required(m, path, "id", as_slug, "")
    reader.unique(seen, cid, join_path(path, "id"), "customer id")
    name = reader.required(m, path, "name", as_text, "", "the customer's name for statements")
    currency = reader.required(m, path, "currency", as_currency, "")
    budget_items = reader.items(m, path, "budgets", needed="budget")
    raw_ids = [item.get("id") for _, item in budget_items if isinstance(item, dict)]
    budget_ids = list(dict.fromkeys(i for i in raw_ids if isinstance(i, str)))
    invoice_to = None
    if m.get("invoice_to") is not None:
        invoice_to = _invoice_to(reader, m["invoice_to"], join_path(path, "invoice_to"), sinks)
    rules = [
        _match_rule(reader, item, at, sources, budget_ids)
        for at, item in reader.items(m, path, "match")
    ]
    seen_budgets: dict[str, str] = {}
    budgets = [_budget(reader, item, at, currency, seen_budgets) for at, item in budget_items]
    refilled = [b.id for b in budgets if b is not None and b.refill is not None]
    if refilled and m.get("invoice_to") is None:
        reader.error(
            join_path(path, "invoice_to"),
            f'is required because budget "{refilled[0]}" has a refill; add'
            " {sink: NAME} naming one of the invoicing entries",
        )
    return Customer(
        yaml_path=path,
        id=cid,
        name=name,
        currency=currency,
        invoice_to=invoice_to,
        match=tuple(r for r in rules if r is not None),
        budgets=tuple(b for b in budgets if b is not None),
    )


def _invoice_to(
    reader: FieldReader, raw: object, path: str, sinks: Mapping[str, str] | None
) -> InvoiceTo | None:
    m = reader.mapping(raw, path, _INVOICE_TO_KEYS, "{sink: stripe, customer: cus_123}")
    if m is None:
        return None
    d = _INVOICE_TO_DEFAULTS
    sink = reader.required(m, path, "sink", as_text, "")
    if sink and sinks is not None and sink not in sinks:
        reader.error(
            join_path(path, "sink"), f'unknown invoicing "{sink}"; {_listed(sinks, "invoicing")}'
        )
    kind = None if sinks is None else sinks.get(sink)
    if kind in ("xero", "quickbooks") and m.get("customer") is None:
        what = "Xero ContactID" if kind == "xero" else "QuickBooks Customer Id"
        reader.error(join_path(path, "customer"), f"is required for {kind}; give the {what}")
    if kind == "stripe" and m.get("customer") is None and m.get("email") is None:
        hint = "give customer (a Stripe id such as cus_123) or an email to find or create one"
        reader.error(
            join_path(path, "customer"), f"is required for stripe unless email is given; {hint}"
        )
    methods = as_choice(*get_args(CollectionMethod))
    return InvoiceTo(
        sink=sink,
        customer=reader.optional(m, path, "customer", as_ident, d.customer),
        email=reader.optional(m, path, "email", as_email, d.email),
        collection_method=reader.optional(
            m, path, "collection_method", methods, d.collection_method
        ),
        days_until_due=reader.optional(
            m, path, "days_until_due", as_whole(0, "days"), d.days_until_due
        ),
        tax_rates=reader.listing(m, path, "tax_rates", as_ident),
    )


def _match_rule(
    reader: FieldReader,
    raw: object,
    path: str,
    sources: Mapping[str, str] | None,
    budget_ids: Sequence[str],
) -> MatchRule | None:
    allowed = ("source", "budget", *_CRITERIA_KEYS)
    m = reader.mapping(raw, path, allowed, "{source: harvest, client_ids: [111]}")
    if m is None:
        return None
    source = reader.required(m, path, "source", as_text, "")
    if source and sources is not None and source not in sources:
        reader.error(
            join_path(path, "source"), f'unknown source "{source}"; {_listed(sources, "sources")}'
        )
    budget = reader.optional(m, path, "budget", as_text, None)
    if budget is not None and budget not in budget_ids:
        listed = ", ".join(budget_ids) or "none"
        reader.error(
            join_path(path, "budget"), f'unknown budget "{budget}"; this customer has: {listed}'
        )
    return MatchRule(
        yaml_path=path, source=source, criteria=_criteria(reader, m, path), budget=budget
    )


def _criteria(reader: FieldReader, m: Mapping[str, object], path: str) -> Criteria:
    """The condition keys shared by match rules, include/exclude and rate overrides."""
    ids = {key: reader.listing(m, path, key, as_ident) for key in _CRITERIA_KEYS[:4]}
    return Criteria(
        **ids,
        clients=reader.listing(m, path, "client", as_name),
        projects=reader.listing(m, path, "project", as_name),
        tasks=reader.listing(m, path, "task", as_name),
        users=reader.listing(m, path, "user", as_name),
        tags=reader.listing(m, path, "tags", as_name),
    )


def _budget(
    reader: FieldReader, raw: object, path: str, currency: str, seen: dict[str, str]
) -> Budget | None:
    m = reader.mapping(raw, path, _BUDGET_KEYS, '{id: retainer, unit: money, rate: "95.00"}')
    if m is None:
        return None
    d = _BUDGET_DEFAULTS
    bid = reader.required(m, path, "id", as_slug, "", 'e.g. "retainer"')
    reader.unique(seen, bid, join_path(path, "id"), "budget id of a customer")
    unit: BudgetUnit = reader.required(m, path, "unit", as_choice(*get_args(BudgetUnit)), "money")
    money_places = minor_digits(currency) if is_known_currency(currency) else None
    # Hours are kept as seconds: two decimals (multiples of 36 s) are exact and print back.
    places = {"money": money_places, "hours": 2}.get(unit)
    label = "hours" if unit == "hours" else currency
    rate, from_source = _rate(reader, m, path, unit, currency, money_places)
    opening = reader.optional(
        m, path, "opening_balance", as_amount(places, label, positive=False), Decimal(0)
    )
    refill = None
    if m.get("refill") is not None:
        refill = _refill(reader, m["refill"], join_path(path, "refill"), places, label)
    if m.get("rate") is None and (unit == "money" or refill is not None):
        why = 'for a money budget; give the hourly rate, e.g. "95.00", or from_source'
        if unit == "hours":
            why = "because this hours budget has a refill: the rate prices the refill invoice"
        reader.error(join_path(path, "rate"), f"is required {why}")
    return Budget(
        yaml_path=path,
        id=bid,
        unit=unit,
        rate=rate,
        opening_balance=opening,
        rate_from_source=from_source,
        billable_only=reader.optional(m, path, "billable_only", as_bool, d.billable_only),
        include=_criteria_block(reader, m, path, "include"),
        exclude=_criteria_block(reader, m, path, "exclude"),
        rounding=_rounding(reader, m, path),
        rate_overrides=_rate_overrides(reader, m, path, unit, money_places, currency),
        approval=reader.optional(m, path, "approval", as_choice(*get_args(Approval)), d.approval),
        refill=refill,
    )


def _criteria_block(reader: FieldReader, m: Mapping[str, object], path: str, key: str) -> Criteria:
    """`include` / `exclude`: a mapping of the same condition keys as a match rule."""
    if m.get(key) is None:
        return Criteria()
    block = reader.mapping(m[key], join_path(path, key), _CRITERIA_KEYS, "{tags: [internal]}")
    return Criteria() if block is None else _criteria(reader, block, join_path(path, key))


def _rate(
    reader: FieldReader,
    m: Mapping[str, object],
    path: str,
    unit: str,
    currency: str,
    places: int | None,
) -> tuple[Decimal | None, bool]:
    """`(rate, rate_from_source)`. A rate is money, so it obeys the currency's minor unit."""
    raw = m.get("rate")
    if isinstance(raw, str) and raw.strip() == "from_source":
        if unit == "hours":
            hint = "an hours budget needs a fixed rate to price its refill invoice"
            reader.error(
                join_path(path, "rate"), f"from_source only works for money budgets; {hint}"
            )
        return None, True
    return reader.optional(m, path, "rate", as_amount(places, currency, positive=True), None), False


def _rate_overrides(
    reader: FieldReader,
    m: Mapping[str, object],
    path: str,
    unit: str,
    places: int | None,
    currency: str,
) -> tuple[RateOverride, ...]:
    found: list[RateOverride] = []
    allowed = ("rate", *_CRITERIA_KEYS)
    for at, item in reader.items(m, path, "rate_overrides"):
        o = reader.mapping(item, at, allowed, '{project_ids: [42], rate: "120.00"}')
        if o is None:
            continue
        rate = reader.required(
            o, at, "rate", as_amount(places, currency, positive=True), Decimal(0)
        )
        criteria = _criteria(reader, o, at)
        if criteria.is_empty():
            hint = "to change the rate of every entry, change the budget's rate instead"
            reader.error(at, f"needs at least one condition such as project_ids or tags; {hint}")
        found.append(RateOverride(criteria=criteria, rate=rate))
    if found and unit == "hours":
        hint = "an hours budget deducts hours whatever the rate; remove them"
        reader.error(join_path(path, "rate_overrides"), f"only apply to money budgets; {hint}")
    return tuple(found)


def _rounding(reader: FieldReader, m: Mapping[str, object], path: str) -> Rounding | None:
    at = join_path(path, "rounding")
    r = None
    if m.get("rounding") is not None:
        r = reader.mapping(m["rounding"], at, _ROUNDING_KEYS, "{increment_minutes: 15, mode: up}")
    if r is None:
        return None
    minutes = as_whole(0, "minutes", 1440)
    return Rounding(
        increment_minutes=reader.required(
            r, at, "increment_minutes", as_whole(1, "minutes", 1440), 1
        ),
        mode=reader.optional(
            r, at, "mode", as_choice(*get_args(RoundingMode)), _DEFAULT_ROUNDING_MODE
        ),
        minimum_minutes=reader.optional(r, at, "minimum_minutes", minutes, 0),
    )


def _refill(
    reader: FieldReader, raw: object, path: str, places: int | None, label: str
) -> RefillPolicy | None:
    m = reader.mapping(raw, path, _REFILL_KEYS, '{below: "500.00", amount: "2000.00"}')
    if m is None:
        return None
    d = _REFILL_DEFAULTS
    positive = as_amount(places, label, positive=True)
    below = reader.required(m, path, "below", positive, Decimal(0))
    amount = reader.optional(m, path, "amount", positive, None)
    top_up_to = reader.optional(m, path, "top_up_to", positive, None)
    given = [key for key in ("amount", "top_up_to") if m.get(key) is not None]
    if len(given) != 1:
        choose = "amount (a fixed refill) or top_up_to (refill up to a target)"
        reader.error(path, f"give either {choose}, not both" if given else f"needs {choose}")
    if top_up_to is not None and below > 0 and top_up_to <= below:
        hint = "or a refill would not lift the balance over the threshold"
        reader.error(join_path(path, "top_up_to"), f"must be more than below ({below}), {hint}")
    return RefillPolicy(
        below=below,
        amount=amount,
        top_up_to=top_up_to,
        credit_on=reader.optional(
            m, path, "credit_on", as_choice(*get_args(CreditOn)), d.credit_on
        ),
        max_per_day=reader.optional(m, path, "max_per_day", as_whole(1), d.max_per_day),
    )


def _listed(names: Mapping[str, str], what: str) -> str:
    return f"configured {what}: {', '.join(names)}" if names else f"there are no {what} in the file"
