"""The config loader (`sync.config`): YAML in, exact typed settings or every problem out.

One realistic config (every source and sink type, env-var secrets) is the base; the bad-config
table changes one thing in it at a time and asserts the single error that must come out, with
its exact YAML path. Secrets get their own tests: they must never reach a message.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import (
    ConfigError,
    ConfigErrors,
    load_config,
    parse_config,
    parse_duration,
    require_server,
)
from sync.settings import (
    ClockifySettings,
    Criteria,
    CsvSettings,
    HarvestSettings,
    OutboxSettings,
    QuickBooksSettings,
    Secret,
    Settings,
    StripeSettings,
    TogglSettings,
    XeroSettings,
)

ENV = {
    "PREPAID_STATUS_TOKEN": "status-tok-5f3a",
    "PREPAID_ENCRYPTION_KEY": "enc-key-77aa",
    "HARVEST_TOKEN": "harvest-tok-1234",
    "TOGGL_TOKEN": "toggl-tok-5678",
    "CLOCKIFY_API_KEY": "clockify-key-9abc",
    "STRIPE_API_KEY": "sk_test_stripe-4def",
    "STRIPE_WEBHOOK_SECRET": "whsec_hook-0011",
    "XERO_CLIENT_SECRET": "xero-secret-2233",
    "XERO_REFRESH_TOKEN": "xero-refresh-4455",
    "QB_CLIENT_SECRET": "qb-secret-6677",
    "QB_REFRESH_TOKEN": "qb-refresh-8899",
}
SECRET_VALUES = list(ENV.values())

BASE_YAML = """\
database: sqlite:///data/prepaid.db
timezone: Europe/Brussels
encryption_key: ${PREPAID_ENCRYPTION_KEY}
server:
  listen: 0.0.0.0:9090
  status_token: ${PREPAID_STATUS_TOKEN}
sources:
  - name: harvest
    type: harvest
    account_id: 123456
    token: ${HARVEST_TOKEN}
    user_agent: "Acme Agency (ops@acme.example)"
    base_url: https://api.harvestapp.com/v2/
    lookback_days: 45
    reconcile_every: 1h30m
    schedule: "*/10 * * * *"
  - name: toggl
    type: toggl
    token: ${TOGGL_TOKEN}
    workspace_id: 777
  - name: clockify
    type: clockify
    api_key: ${CLOCKIFY_API_KEY}
    workspace_id: 5f1e2d3c4b5a69788796a5b4
    base_url: https://euc1.clockify.me/api/v1
  - name: exports
    type: csv
    path: exports/time_entries.csv
    format: toggl
invoicing:
  - name: stripe
    type: stripe
    api_key: ${STRIPE_API_KEY}
    webhook_secret: ${STRIPE_WEBHOOK_SECRET}
    create_customers: false
    max_network_retries: 3
  - name: xero
    type: xero
    client_id: XERO-CLIENT
    client_secret: ${XERO_CLIENT_SECRET}
    refresh_token: ${XERO_REFRESH_TOKEN}
    tenant_id: 0c1d2e3f-aaaa-bbbb-cccc-111122223333
    account_code: 200
    status: DRAFT
  - name: qbo
    type: quickbooks
    client_id: QB-CLIENT
    client_secret: ${QB_CLIENT_SECRET}
    refresh_token: ${QB_REFRESH_TOKEN}
    realm_id: 9130350000000000
    item_id: 1
    minor_version: 75
  - name: files
    type: outbox
    path: ./outbox
customers:
  - id: acme
    name: ACME Corp
    currency: EUR
    invoice_to: {sink: stripe, customer: cus_123, tax_rates: [txr_1], days_until_due: 30}
    match:
      - {source: harvest, client_ids: [111, "112"], budget: retainer}
      - {source: exports, client: "  ACME Corp ", tags: [Urgent]}
      - {source: toggl}
    budgets:
      - id: retainer
        unit: money
        rate: "95.00"
        opening_balance: "2000.00"
        billable_only: false
        include: {project_ids: 42}
        exclude: {tags: [Internal, Non-Billable]}
        rounding: {increment_minutes: 15, mode: nearest, minimum_minutes: 30}
        rate_overrides:
          - {project: Design, rate: "120.50"}
        approval: review
        refill:
          below: "500.00"
          amount: "2000"
          credit_on: issued
          max_per_day: 1
      - id: support
        unit: hours
        rate: "80"
        opening_balance: "10.5"
        refill: {below: "2", top_up_to: "10.25"}
  - id: tokyo-ltd
    name: Tokyo Ltd
    currency: JPY
    invoice_to: {sink: qbo, customer: 58}
    match:
      - {source: clockify, project_ids: [abc123]}
    budgets:
      - id: main
        unit: money
        rate: from_source
        opening_balance: 50000
"""


def base_data() -> dict[str, Any]:
    data = yaml.safe_load(BASE_YAML)
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(data: object, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """The one-line messages parse_config raises for `data` (fails if it loads)."""
    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, tmp_path / "config.yaml", ENV if environ is None else environ)
    return caught.value.messages


def walk(value: object) -> list[object]:
    """Every value reachable from a settings record, for whole-tree assertions."""
    found: list[object] = [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found += walk(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += walk(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            found += walk(key) + walk(item)
    return found


# --- a valid config ------------------------------------------------------------------------


def test_full_config_loads_into_exact_records(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, BASE_YAML), ENV)

    assert settings.config_path == tmp_path / "config.yaml"
    assert settings.database == f"sqlite:///{tmp_path}/data/prepaid.db"
    assert settings.timezone == "Europe/Brussels"
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9090
    assert settings.server.status_token == Secret("status-tok-5f3a")
    assert settings.encryption_key == Secret("enc-key-77aa")

    harvest, toggl, clockify, exports = settings.sources
    assert harvest == HarvestSettings(
        yaml_path="sources[0]",
        name="harvest",
        type="harvest",
        timezone="Europe/Brussels",  # the top-level zone, copied here
        schedule="*/10 * * * *",
        lookback_days=45,
        reconcile_every=dt.timedelta(hours=1, minutes=30),
        base_url="https://api.harvestapp.com/v2",
        account_id="123456",
        token=Secret("harvest-tok-1234"),
        user_agent="Acme Agency (ops@acme.example)",
    )
    assert toggl == TogglSettings(
        yaml_path="sources[1]",
        name="toggl",
        type="toggl",
        timezone="Europe/Brussels",  # the top-level zone, copied here
        token=Secret("toggl-tok-5678"),
        workspace_id="777",
        scope="workspace",
    )
    assert (toggl.schedule, toggl.lookback_days) == ("*/15 * * * *", 30)
    assert toggl.reconcile_every == dt.timedelta(hours=6)
    assert clockify == ClockifySettings(
        yaml_path="sources[2]",
        name="clockify",
        type="clockify",
        timezone="Europe/Brussels",  # the top-level zone, copied here
        base_url="https://euc1.clockify.me/api/v1",
        api_key=Secret("clockify-key-9abc"),
        workspace_id="5f1e2d3c4b5a69788796a5b4",
    )
    assert exports == CsvSettings(
        yaml_path="sources[3]",
        name="exports",
        type="csv",
        timezone="Europe/Brussels",  # the top-level zone, copied here
        file=tmp_path / "exports" / "time_entries.csv",
        format="toggl",
    )

    stripe, xero, qbo, files = settings.invoicing
    assert stripe == StripeSettings(
        yaml_path="invoicing[0]",
        name="stripe",
        type="stripe",
        api_key=Secret("sk_test_stripe-4def"),
        webhook_secret=Secret("whsec_hook-0011"),
        create_customers=False,
        max_network_retries=3,
    )
    assert xero == XeroSettings(
        yaml_path="invoicing[1]",
        name="xero",
        type="xero",
        client_id="XERO-CLIENT",
        client_secret=Secret("xero-secret-2233"),
        refresh_token=Secret("xero-refresh-4455"),
        tenant_id="0c1d2e3f-aaaa-bbbb-cccc-111122223333",
        account_code="200",
        status="DRAFT",
    )
    assert (xero.line_amount_types, xero.tax_type) == ("Exclusive", None)
    assert xero.token_url == "https://identity.xero.com/connect/token"
    assert qbo == QuickBooksSettings(
        yaml_path="invoicing[2]",
        name="qbo",
        type="quickbooks",
        client_id="QB-CLIENT",
        client_secret=Secret("qb-secret-6677"),
        refresh_token=Secret("qb-refresh-8899"),
        realm_id="9130350000000000",
        item_id="1",
        minor_version=75,
    )
    assert files == OutboxSettings(
        yaml_path="invoicing[3]", name="files", type="outbox", folder=tmp_path / "outbox"
    )

    acme, tokyo = settings.customers
    assert (acme.yaml_path, acme.id, acme.name, acme.currency) == (
        "customers[0]",
        "acme",
        "ACME Corp",
        "EUR",
    )
    assert acme.invoice_to is not None
    assert acme.invoice_to.sink == "stripe"
    assert acme.invoice_to.customer == "cus_123"
    assert acme.invoice_to.email is None
    assert acme.invoice_to.collection_method == "send_invoice"
    assert acme.invoice_to.days_until_due == 30
    assert acme.invoice_to.tax_rates == ("txr_1",)

    rule0, rule1, rule2 = acme.match
    assert rule0.yaml_path == "customers[0].match[0]"
    assert (rule0.source, rule0.budget) == ("harvest", "retainer")
    assert rule0.criteria == Criteria(client_ids=("111", "112"))
    assert rule1.criteria == Criteria(clients=("acme corp",), tags=("urgent",))
    assert (rule2.source, rule2.budget, rule2.criteria.is_empty()) == ("toggl", None, True)

    retainer, support = acme.budgets
    assert retainer.yaml_path == "customers[0].budgets[0]"
    assert (retainer.id, retainer.unit) == ("retainer", "money")
    assert retainer.rate == Decimal("95.00")
    assert retainer.rate_from_source is False
    assert retainer.opening_balance == Decimal("2000.00")
    assert retainer.billable_only is False
    assert retainer.include == Criteria(project_ids=("42",))
    assert retainer.exclude == Criteria(tags=("internal", "non-billable"))
    assert retainer.rounding is not None
    assert (retainer.rounding.increment_minutes, retainer.rounding.mode) == (15, "nearest")
    assert retainer.rounding.minimum_minutes == 30
    assert len(retainer.rate_overrides) == 1
    assert retainer.rate_overrides[0].criteria == Criteria(projects=("design",))
    assert retainer.rate_overrides[0].rate == Decimal("120.50")
    assert retainer.approval == "review"
    assert retainer.refill is not None
    assert retainer.refill.below == Decimal("500.00")
    assert retainer.refill.amount == Decimal("2000")
    assert retainer.refill.top_up_to is None
    assert (retainer.refill.credit_on, retainer.refill.max_per_day) == ("issued", 1)

    assert (support.unit, support.rate, support.opening_balance) == (
        "hours",
        Decimal("80"),
        Decimal("10.5"),
    )
    assert support.refill is not None
    assert (support.refill.below, support.refill.amount) == (Decimal("2"), None)
    assert support.refill.top_up_to == Decimal("10.25")
    assert (support.refill.credit_on, support.refill.max_per_day) == ("paid", 2)
    assert (support.approval, support.billable_only, support.rounding) == ("auto", True, None)

    assert tokyo.invoice_to is not None
    assert (tokyo.invoice_to.sink, tokyo.invoice_to.customer) == ("qbo", "58")
    (main,) = tokyo.budgets
    assert (main.rate, main.rate_from_source) == (None, True)
    assert main.opening_balance == Decimal(50000)
    assert tokyo.match[0].criteria == Criteria(project_ids=("abc123",))


def test_no_float_anywhere_and_amounts_are_decimal(tmp_path: Path) -> None:
    text = BASE_YAML.replace('rate: "95.00"', "rate: 95.00").replace(
        'opening_balance: "10.5"', "opening_balance: 10.50"
    )
    settings = load_config(write(tmp_path, text), ENV)

    values = walk(settings)
    assert [v for v in values if isinstance(v, float)] == []
    budget = settings.customers[0].budgets[0]
    assert isinstance(budget.rate, Decimal)
    assert str(budget.rate) == "95.00"
    assert str(settings.customers[0].budgets[1].opening_balance) == "10.50"
    decimals = [str(v) for v in values if isinstance(v, Decimal)]
    assert decimals == [
        *["24"] * 4,  # sources[*].max_hours, the default of every source
        "95.00",
        "2000.00",
        "120.50",
        "500.00",
        "2000",
        "80",
        "10.50",
        "2",
        "10.25",
        "50000",
    ]


def test_secrets_do_not_show_in_repr(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, BASE_YAML), ENV)

    text = repr(settings) + str(settings)
    assert [secret for secret in SECRET_VALUES if secret in text] == []
    assert "Secret('***')" in text


def test_defaults_for_a_minimal_config(tmp_path: Path) -> None:
    data = {"sources": [{"name": "exports", "type": "csv", "path": "/data/entries.csv"}]}

    settings = parse_config(data, tmp_path / "config.yaml", {})

    assert settings.database == f"sqlite:///{tmp_path}/prepaid.db"
    assert settings.timezone == "UTC"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.server.status_token is None
    assert settings.encryption_key is None
    assert settings.invoicing == ()
    assert settings.customers == ()
    assert settings.sources == (
        CsvSettings(
            yaml_path="sources[0]",
            name="exports",
            type="csv",
            file=Path("/data/entries.csv"),
            format="generic",
        ),
    )


def test_allowed_combinations(tmp_path: Path) -> None:
    data = base_data()
    toggl = data["sources"][1]
    del toggl["workspace_id"]
    toggl["scope"] = "me"
    data["customers"][0]["invoice_to"] = {"sink": "stripe", "email": "billing@acme.example"}
    support = data["customers"][0]["budgets"][1]
    del support["rate"], support["refill"]

    settings = parse_config(data, tmp_path / "config.yaml", ENV)

    assert settings.sources[1] == TogglSettings(
        yaml_path="sources[1]",
        name="toggl",
        type="toggl",
        token=Secret("toggl-tok-5678"),
        scope="me",
        timezone="Europe/Brussels",
    )
    invoice_to = settings.customers[0].invoice_to
    assert invoice_to is not None
    assert (invoice_to.customer, invoice_to.email) == (None, "billing@acme.example")
    budget = settings.customers[0].budgets[1]
    assert (budget.unit, budget.rate, budget.refill) == ("hours", None, None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:////var/lib/prepaid/p.db", "sqlite:////var/lib/prepaid/p.db"),
        ("sqlite:///../db/p.db?timeout=5", "sqlite:///{parent}/db/p.db?timeout=5"),
        ("postgresql+psycopg://app@db/prepaid", "postgresql+psycopg://app@db/prepaid"),
        ("postgresql://app@db/prepaid", "postgresql+psycopg://app@db/prepaid"),
        ("postgres://app@db:5433/prepaid", "postgresql+psycopg://app@db:5433/prepaid"),
    ],
)
def test_database_urls(tmp_path: Path, given: str, expected: str) -> None:
    data = base_data()
    data["database"] = given

    settings = parse_config(data, tmp_path / "config.yaml", ENV)

    assert settings.database == expected.format(parent=tmp_path.parent)


def test_unquoted_numbers_keep_their_text(tmp_path: Path) -> None:
    text = BASE_YAML.replace("account_id: 123456", "account_id: 0123456").replace(
        "project_ids: [abc123]", "project_ids: [0x1F, 1_000, 0755]"
    )

    settings = load_config(write(tmp_path, text), ENV)

    harvest = settings.sources[0]
    assert isinstance(harvest, HarvestSettings)
    assert harvest.account_id == "0123456"
    assert settings.customers[1].match[0].criteria.project_ids == ("0x1F", "1000", "0755")


# --- environment variables ------------------------------------------------------------------


def test_interpolation_several_per_string_and_escape(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][0]["user_agent"] = "${APP} (${OPS_EMAIL}) literal $${NOT_A_VAR}"
    data["sources"][0]["lookback_days"] = "${DAYS}"
    environ = {**ENV, "APP": "Acme", "OPS_EMAIL": "ops@acme.example", "DAYS": "7"}

    settings = parse_config(data, tmp_path / "config.yaml", environ)

    harvest = settings.sources[0]
    assert isinstance(harvest, HarvestSettings)
    assert harvest.user_agent == "Acme (ops@acme.example) literal ${NOT_A_VAR}"
    assert harvest.lookback_days == 7


def test_missing_variable_names_it_and_its_path(tmp_path: Path) -> None:
    environ = {k: v for k, v in ENV.items() if k != "HARVEST_TOKEN"}

    messages = errors_of(base_data(), tmp_path, environ)

    assert messages == [
        "sources[0].token: environment variable HARVEST_TOKEN is not set; set it where prepaid"
        " runs, or write the value in the file"
    ]


def test_unset_server_variable_is_left_to_serve(tmp_path: Path) -> None:
    """Issue 10: an unset `${VAR}` under `server` blocks `serve` only, not every command."""
    environ = {k: v for k, v in ENV.items() if k != "PREPAID_STATUS_TOKEN"}
    data = base_data()
    data["server"]["listen"] = "${PREPAID_LISTEN}"

    settings = parse_config(data, tmp_path / "config.yaml", environ)

    assert settings.server.status_token is None
    with pytest.raises(ConfigErrors) as caught:
        require_server(settings)
    assert caught.value.messages == [
        "server.listen: environment variable PREPAID_LISTEN is not set; set it where prepaid"
        " runs, or write the value in the file",
        "server.status_token: environment variable PREPAID_STATUS_TOKEN is not set; set it"
        " where prepaid runs, or write the value in the file",
    ]
    require_server(parse_config(base_data(), tmp_path / "config.yaml", ENV))  # all set: fine


def test_a_wrong_server_value_is_still_an_error_for_every_command(tmp_path: Path) -> None:
    data = base_data()
    data["server"]["listen"] = "${PREPAID_STATUS_TOKEN}"
    assert errors_of(data, tmp_path) == [
        'server.listen: must be "host:port" with a port from 1 to 65535, such as'
        ' 127.0.0.1:8080, got the value of "${PREPAID_STATUS_TOKEN}"'
    ]


def test_unset_variable_as_a_csv_path_is_one_error_naming_it(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][3]["path"] = "${EXPORT_FILE}"

    assert errors_of(data, tmp_path) == [
        "sources[3].path: environment variable EXPORT_FILE is not set; set it where prepaid"
        " runs, or write the value in the file"
    ]


def test_several_missing_variables_in_one_value(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][0]["user_agent"] = "${APP} (${OPS_EMAIL})"

    messages = errors_of(data, tmp_path)

    assert messages == [
        "sources[0].user_agent: environment variables APP, OPS_EMAIL are not set; set them where"
        " prepaid runs, or write the value in the file"
    ]


@pytest.mark.parametrize("value", ["${harvest token}", "abc ${HARVEST_TOKEN", "${}"])
def test_malformed_reference(tmp_path: Path, value: str) -> None:
    data = base_data()
    data["sources"][0]["token"] = value

    messages = errors_of(data, tmp_path)

    assert messages == [
        "sources[0].token: has a ${ that is not a ${VARIABLE} reference; a name has letters,"
        " digits and _ only; write $${ for a literal ${"
    ]


def test_bad_value_from_environment_is_shown_by_its_reference(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][0]["lookback_days"] = "${HARVEST_TOKEN}"

    messages = errors_of(data, tmp_path)

    assert messages == [
        "sources[0].lookback_days: must be a whole number of days, got the value of"
        ' "${HARVEST_TOKEN}"'
    ]


# --- bad configs: one change, one exact error ------------------------------------------------

DELETE = object()


def case(location: str, value: object, fragment: str, at: str | None = None) -> Any:
    """One bad config: set `location` (dotted, e.g. `sources.0.token`) to `value`, and expect
    exactly one error, at `at` (default: the YAML path of `location`), containing `fragment`.
    """
    path = re.sub(r"\.(\d+)", r"[\1]", location) if at is None else at
    return pytest.param(location, value, path, fragment, id=location)


BAD_CASES = [
    case(
        "database",
        "mysql://u:pw@h/db",
        "must be a sqlite:/// or postgresql+psycopg:// URL, got a mysql:// URL",
    ),
    case("timezone", "Europe/Brusels", 'is not a known time zone, got "Europe/Brusels"'),
    case("server.listen", 8080, 'must be "host:port" with a port from 1 to 65535'),
    case("server.listen", "localhost:99999", "with a port from 1 to 65535"),
    case("server.port", 1, "unknown key; expected one of: listen, status_token"),
    case("extra", 1, "unknown key; expected one of: database, timezone, server"),
    case("encryption_key", "", "must not be empty"),
    case("sources", DELETE, "add at least one source"),
    case("sources", [], "add at least one source"),
    case("sources.0.lookback_days", "thirty", 'must be a whole number of days, got "thirty"'),
    case("sources.0.lookback_days", 0, "must be a whole number of days of at least 1, got 0"),
    case(
        "sources.0.reconcile_every",
        "6 hours",
        'must be a duration such as 90s, 15m, 6h, 1d or 1h30m, got "6 hours"',
    ),
    case(
        "sources.0.schedule",
        "* * * *",
        "is not a valid cron line (Wrong number of fields; got 4, expected 5)",
    ),
    case("sources.0.base_url", "api.harvestapp.com", "must be an http:// or https:// address"),
    case(
        "sources.0.user_agent", DELETE, "is required; Harvest refuses requests without a User-Agent"
    ),
    case("sources.0.account_id", "acme", 'must be a numeric id (digits only), got "acme"'),
    case("sources.0.token", DELETE, "is required; the API token"),
    case(
        "sources.0.tokn",
        "x",
        "unknown key; expected one of: name, type, schedule, lookback_days, reconcile_every,"
        ' base_url, max_hours, account_id, token, user_agent; did you mean "token"?',
    ),
    case("sources.0.type", "jira", 'must be harvest, toggl, clockify or csv, got "jira"'),
    case("sources.0.type", DELETE, "is required; harvest, toggl, clockify or csv"),
    case("sources.1.workspace_id", DELETE, "needed for scope: workspace"),
    case("sources.1.scope", "team", 'must be workspace or me, got "team"'),
    case("sources.2.api_key", DELETE, "is required; the API key"),
    case("sources.3.format", "excel", 'must be generic, harvest, toggl or clockify, got "excel"'),
    case("sources.3.path", 7, "must be"),
    case(
        "invoicing", "stripe", 'must be a list (one item per line starting with "- "), got "stripe"'
    ),
    case(
        "invoicing.3",
        "files",
        'must be a mapping such as {name: files, type: outbox, path: ./outbox}, got "files"',
    ),
    case("invoicing.0.api_key", "pk_live_x", "is a publishable key (pk_...)"),
    case("invoicing.0.create_customers", "maybe", 'must be true or false, got "maybe"'),
    case("invoicing.0.max_network_retries", -1, "must be a whole number from 0 to 10, got -1"),
    case(
        "invoicing.1.status",
        "draft",
        'must be DRAFT or AUTHORISED, got "draft"; write it exactly as "DRAFT"',
    ),
    case("invoicing.1.line_amount_types", "Gross", "must be Exclusive, Inclusive or NoTax"),
    case("invoicing.1.refresh_token", DELETE, "is required; a refresh token"),
    case("invoicing.2.minor_version", 65, "must be a whole number of at least 75, got 65"),
    case("invoicing.2.token_url", "intuit", "must be an http:// or https:// address"),
    case("invoicing.3.path", "notes.txt", "is a file; give a folder for the invoice files"),
    case("invoicing.3.name", "stripe", '"stripe" is already used by invoicing[0]'),
    case("invoicing.3.type", DELETE, "is required; stripe, xero, quickbooks or outbox"),
    case("customers", {"id": "acme"}, "must be a list"),
    case(
        "customers.1.id",
        "acme",
        '"acme" is already used by customers[0]; each customer id must differ',
    ),
    case("customers.0.name", DELETE, "is required"),
    case(
        "customers.0.currency",
        "eur",
        'must be an ISO 4217 code in upper case, got "eur"; write "EUR"',
    ),
    case("customers.0.currency", "EURO", "must be an ISO 4217 currency code"),
    case(
        "customers.0.invoice_to.sink",
        "paypal",
        'unknown invoicing "paypal"; configured invoicing: stripe, xero, qbo, files',
    ),
    case("customers.0.invoice_to", DELETE, 'is required because budget "retainer" has a refill'),
    case(
        "customers.0.invoice_to.collection_method",
        "charge",
        "must be send_invoice or charge_automatically",
    ),
    case(
        "customers.0.invoice_to.days_until_due",
        -1,
        "must be a whole number of days of at least 0, got -1",
    ),
    case(
        "customers.0.invoice_to.email",
        "nobody",
        'must be an email address such as billing@acme.example, got "nobody"',
    ),
    case("customers.0.invoice_to.customer", DELETE, "is required for stripe unless email is given"),
    case(
        "customers.1.invoice_to.customer",
        DELETE,
        "is required for quickbooks; give the QuickBooks Customer Id",
    ),
    case(
        "customers.0.match.0.source",
        "harvst",
        'unknown source "harvst"; configured sources: harvest, toggl, clockify, exports',
    ),
    case(
        "customers.0.match.0.budget",
        "retainr",
        'unknown budget "retainr"; this customer has: retainer, support',
    ),
    case(
        "customers.0.match.0.client_ids",
        [True],
        "must be an id (text or a whole number), got true",
        at="customers[0].match[0].client_ids[0]",
    ),
    case("customers.0.match.0.clients", ["x"], "unknown key"),
    case("customers.0.match.1.client", "", "must not be empty"),
    case(
        "customers.0.budgets.0.refil",
        {},
        "unknown key; expected one of: id, unit, rate, opening_balance, billable_only, include,"
        ' exclude, rounding, rate_overrides, approval, refill; did you mean "refill"?',
    ),
    case("customers.0.budgets.0.unit", DELETE, "is required; money or hours"),
    case("customers.0.budgets.0.unit", "euros", 'must be money or hours, got "euros"'),
    case("customers.0.budgets.0.rate", DELETE, "is required for a money budget"),
    case("customers.0.budgets.0.rate", "0", 'must be positive, got "0"'),
    case("customers.0.budgets.0.rate", "ninety", 'must be a number such as "95.00", got "ninety"'),
    case(
        "customers.0.budgets.0.rate",
        95.5,
        'must be an exact decimal; write it in quotes, e.g. "95.00"',
    ),
    case("customers.0.budgets.0.rate", "95.005", "may have at most 2 decimals for EUR"),
    case("customers.0.budgets.0.refill.below", "0", "must be positive"),
    case(
        "customers.0.budgets.0.refill.amount",
        "10.001",
        'may have at most 2 decimals for EUR, got "10.001"',
    ),
    case(
        "customers.0.budgets.0.refill.top_up_to",
        "3000",
        "not both",
        at="customers[0].budgets[0].refill",
    ),
    case(
        "customers.0.budgets.0.refill.amount",
        DELETE,
        "needs amount (a fixed refill) or top_up_to",
        at="customers[0].budgets[0].refill",
    ),
    case("customers.0.budgets.0.refill.credit_on", "sent", "must be paid or issued"),
    case("customers.0.budgets.0.refill.max_per_day", 0, "must be a whole number of at least 1"),
    case("customers.0.budgets.0.opening_balance", "-5.00", 'may not be negative, got "-5.00"'),
    case("customers.0.budgets.1.opening_balance", "1.333", "may have at most 2 decimals for hours"),
    case(
        "customers.0.budgets.1.rate", DELETE, "is required because this hours budget has a refill"
    ),
    case("customers.0.budgets.1.rate", "from_source", "from_source only works for money budgets"),
    case("customers.0.budgets.1.refill.top_up_to", "1", "must be more than below (2)"),
    case(
        "customers.0.budgets.1.rate_overrides",
        [{"tags": ["x"], "rate": "1"}],
        "only apply to money budgets",
    ),
    case(
        "customers.0.budgets.1.id",
        "retainer",
        '"retainer" is already used by customers[0].budgets[0]',
    ),
    case(
        "customers.1.budgets.0.opening_balance",
        "10.5",
        "must be a whole amount: JPY has no decimals",
    ),
    case("customers.1.budgets", [], "add at least one budget"),
    case("customers.0.budgets.0.rounding.mode", "upp", 'must be up, down or nearest, got "upp"'),
    case(
        "customers.0.budgets.0.rounding.increment_minutes",
        0,
        "must be a whole number of minutes from 1 to 1440",
    ),
    case(
        "customers.0.budgets.0.rounding",
        "15m",
        "must be a mapping such as {increment_minutes: 15, mode: up}",
    ),
    case(
        "customers.0.budgets.0.rate_overrides.0.project",
        DELETE,
        "needs at least one condition",
        at="customers[0].budgets[0].rate_overrides[0]",
    ),
    case("customers.0.budgets.0.rate_overrides.0.rate", DELETE, "is required"),
    case("customers.0.budgets.0.approval", "manual", "must be auto or review"),
    case("customers.0.budgets.0.include.tag", ["x"], 'did you mean "tags"?'),
    case("customers.0.budgets.0.billable_only", "sometimes", "must be true or false"),
]


def mutate(data: dict[str, Any], location: str, value: object) -> None:
    """Set (or with DELETE remove) the value at a dotted location such as `sources.0.token`."""
    *parents, last = location.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = copy.deepcopy(value)


@pytest.mark.parametrize(("location", "value", "path", "fragment"), BAD_CASES)
def test_bad_config(tmp_path: Path, location: str, value: object, path: str, fragment: str) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    data = base_data()
    mutate(data, location, value)

    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, tmp_path / "config.yaml", ENV)

    errors = caught.value.errors
    assert [(e.yaml_path, fragment in e.problem) for e in errors] == [(path, True)], errors
    assert str(errors[0]) == f"{errors[0].yaml_path}: {errors[0].problem}"


def test_renamed_source_also_breaks_references(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][0]["name"] = "Harvest EU"

    messages = errors_of(data, tmp_path)

    assert messages == [
        'sources[0].name: must be a short id of lower-case letters, digits, - and _, got "Harvest'
        ' EU"; for example "harvest-eu"',
        'customers[0].match[0].source: unknown source "harvest"; configured sources: Harvest EU,'
        " toggl, clockify, exports",
    ]


def test_duplicate_source_name(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][1]["name"] = "harvest"

    messages = errors_of(data, tmp_path)

    assert messages == [
        'sources[1].name: "harvest" is already used by sources[0]; each source name must differ',
        'customers[0].match[2].source: unknown source "toggl"; configured sources: harvest,'
        " clockify, exports",
    ]


def test_all_errors_are_collected_in_file_order(tmp_path: Path) -> None:
    data = base_data()
    data["timezone"] = "Mars/Olympus"
    data["sources"][0]["lookback_days"] = "thirty"
    data["customers"][0]["budgets"][0]["refill"]["below"] = "-1"

    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, tmp_path / "config.yaml", ENV)

    assert [e.yaml_path for e in caught.value.errors] == [
        "timezone",
        "sources[0].lookback_days",
        "customers[0].budgets[0].refill.below",
    ]
    assert str(caught.value).splitlines() == caught.value.messages
    assert caught.value.messages[2] == (
        'customers[0].budgets[0].refill.below: must be positive, got "-1"'
    )


def test_config_error_fields() -> None:
    error = ConfigError("customers[1].budgets[0].refill.below", "must be positive\nreally")

    assert error.yaml_path == "customers[1].budgets[0].refill.below"
    assert error.problem == "must be positive really"
    assert str(error) == "customers[1].budgets[0].refill.below: must be positive really"


# --- secrets never reach a message -----------------------------------------------------------


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    data = base_data()
    leak = "LEAKED-VALUE-42"
    environ = {**ENV, "LEAKY": leak}
    harvest = data["sources"][0]
    harvest["token"] = [leak]  # wrong type
    harvest["lookback_days"] = "${LEAKY}"  # env value in a non-secret field
    harvest["account_id"] = "${HARVEST_TOKEN}"
    data["sources"][1]["token"] = {"value": leak}
    data["invoicing"][0]["api_key"] = f"pk_{leak}"
    data["invoicing"][0]["webhook_secret"] = True
    data["server"]["status_token"] = 1.5
    data["database"] = f"mysql://user:{leak}@db/prepaid"
    data["invoicing"][1]["client_secret"] = ""
    data["encryption_key"] = f"{leak} ${{NOPE}}"

    messages = errors_of(data, tmp_path, environ)

    assert len(messages) == 10
    text = "\n".join(messages)
    assert leak not in text
    assert [secret for secret in SECRET_VALUES if secret in text] == []
    assert 'got the value of "${LEAKY}"' in text
    assert 'got the value of "${HARVEST_TOKEN}"' in text


def test_yaml_syntax_error_does_not_quote_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - name: x\n    token: TOKEN-abc-123: oops\n")

    with pytest.raises(ConfigErrors) as caught:
        load_config(path, {})

    assert caught.value.messages == [
        f"{path}: line 3, column 25: not valid YAML: mapping values are not allowed here"
    ]


def test_duplicate_key_is_an_error_without_its_value(tmp_path: Path) -> None:
    text = BASE_YAML.replace(
        "    token: ${TOGGL_TOKEN}\n", "    token: ${TOGGL_TOKEN}\n    token: TOKEN-xyz\n"
    )
    path = write(tmp_path, text)

    with pytest.raises(ConfigErrors) as caught:
        load_config(path, ENV)

    assert caught.value.messages == [
        f'{path}: line 20, column 5: not valid YAML: duplicate key "token"; each key may appear'
        " only once"
    ]


# --- the file itself ------------------------------------------------------------------------


def test_file_problems(tmp_path: Path) -> None:
    cases = {
        "missing.yaml": "file not found; check the --config path",
        "empty.yaml": "must hold a mapping of keys (database, sources, ...); the file is empty",
        "list.yaml": "must hold a mapping of keys (database, sources, ...); got a list",
        "folder": "is a folder; give the path of the YAML config file",
        "alias.yaml": 'put values that start with * in quotes, e.g. schedule: "*/15 * * * *"',
    }
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "alias.yaml").write_text("schedule: */15 * * * *\n")

    for name, fragment in cases.items():
        path = tmp_path / name
        with pytest.raises(ConfigErrors) as caught:
            load_config(path, {})
        (error,) = caught.value.errors
        assert error.yaml_path == str(path)
        assert fragment in error.problem, (name, error.problem)


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    settings = load_config(str(write(tmp_path, BASE_YAML)))

    assert settings.sources[0] == HarvestSettings(
        yaml_path="sources[0]",
        name="harvest",
        type="harvest",
        schedule="*/10 * * * *",
        lookback_days=45,
        reconcile_every=dt.timedelta(minutes=90),
        base_url="https://api.harvestapp.com/v2",
        timezone="Europe/Brussels",
        account_id="123456",
        token=Secret("harvest-tok-1234"),
        user_agent="Acme Agency (ops@acme.example)",
    )


def test_settings_lookup_helpers_work_on_loaded_config(tmp_path: Path) -> None:
    settings: Settings = load_config(write(tmp_path, BASE_YAML), ENV)

    assert settings.source("exports") is settings.sources[3]
    assert settings.sink("qbo") is settings.invoicing[2]
    assert settings.customer("tokyo-ltd") is settings.customers[1]


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", dt.timedelta(seconds=90)),
        ("15m", dt.timedelta(minutes=15)),
        ("6h", dt.timedelta(hours=6)),
        ("1d", dt.timedelta(days=1)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("1d2h3m4s", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 6H ", dt.timedelta(hours=6)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "6 hours", "h", "30m1h", "-1h", "1.5h", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 90s, 15m, 6h, 1d or 1h30m"):
        parse_duration(text)


# --- CSV reading settings (issue 10: dates, durations, encodings) --------------------------


def test_csv_reading_settings_are_read(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][3].update(
        date_order="dmy", max_hours="10.5", encoding="cp1252", snapshot="dates"
    )

    exports = parse_config(data, tmp_path / "config.yaml", ENV).sources[3]

    assert isinstance(exports, CsvSettings)
    assert (exports.date_order, exports.max_hours, exports.encoding, exports.snapshot) == (
        "dmy",
        Decimal("10.5"),
        "cp1252",
        "dates",
    )


def test_a_csv_path_may_name_a_folder_or_a_glob(tmp_path: Path) -> None:
    """Issue 10 (filtered exports): a folder or glob of exports is one source's files."""
    (tmp_path / "exports").mkdir()
    for given, expected in (("exports", "exports"), ("exports/2026-*.csv", "exports/2026-*.csv")):
        data = base_data()
        data["sources"][3]["path"] = given
        exports = parse_config(data, tmp_path / "config.yaml", ENV).sources[3]
        assert isinstance(exports, CsvSettings)
        assert exports.file == tmp_path / expected


def test_csv_reading_settings_default_to_auto_24_hours_and_utf8(tmp_path: Path) -> None:
    exports = parse_config(base_data(), tmp_path / "config.yaml", ENV).sources[3]
    assert isinstance(exports, CsvSettings)
    assert (exports.date_order, exports.max_hours, exports.encoding, exports.snapshot) == (
        "auto",
        Decimal(24),
        "utf-8",
        "dates_and_clients",
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("date_order", "dd/mm/yyyy", 'must be auto, dmy, mdy or ymd, got "dd/mm/yyyy"'),
        ("date_order", "DMY", 'write it exactly as "dmy"'),
        ("max_hours", "0", "must be positive"),
        ("max_hours", "1000", "must be at most 744 hours"),
        ("max_hours", "1e3", "must be a number"),
        ("max_hours", 12.5, "must be an exact decimal"),
        ("encoding", "windows-1250x", "is not a known text encoding"),
        ("snapshot", "clients", "must be dates, dates_and_clients or none"),
    ],
)
def test_bad_csv_reading_settings_name_their_path(
    tmp_path: Path, key: str, value: object, fragment: str
) -> None:
    data = base_data()
    data["sources"][3][key] = value

    with pytest.raises(ConfigErrors) as caught:
        parse_config(data, tmp_path / "config.yaml", ENV)

    errors = caught.value.errors
    assert [(e.yaml_path, fragment in e.problem) for e in errors] == [
        (f"sources[3].{key}", True)
    ], errors


# --- time zones (issue 10): a source dates instants in the top-level zone -------------------


def test_every_source_gets_the_top_level_timezone(tmp_path: Path) -> None:
    settings = parse_config(base_data(), tmp_path / "config.yaml", ENV)
    assert {source.timezone for source in settings.sources} == {"Europe/Brussels"}


def test_timezone_is_not_a_key_of_a_source(tmp_path: Path) -> None:
    data = base_data()
    data["sources"][1]["timezone"] = "Europe/Berlin"
    (error,) = errors_of(data, tmp_path)
    assert error.startswith("sources[1].timezone: unknown key")


def test_max_hours_is_a_setting_of_every_source(tmp_path: Path) -> None:
    """Issue 10: a tracker's 10000-hour entry is capped like a CSV row's."""
    data = base_data()
    data["sources"][0]["max_hours"] = "12"
    data["sources"][1]["max_hours"] = "1e3"

    assert errors_of(data, tmp_path) == [
        'sources[1].max_hours: must be a number such as "24", got "1e3"; no exponent notation'
    ]
    del data["sources"][1]["max_hours"]
    harvest, toggl, clockify, _ = parse_config(data, tmp_path / "config.yaml", ENV).sources
    assert (harvest.max_hours, toggl.max_hours, clockify.max_hours) == (
        Decimal(12),
        Decimal(24),
        Decimal(24),
    )
