"""Tax settings that would not do what they seem to, for `prepaid check`.

A budget is credited the refill's amount, which is the invoice's net (tax-exclusive) line: the
prepaid value. Tax is the sink's business and shows on the invoice only. Two legal settings
break that silently: `tax_rates` on a customer invoiced through a sink that ignores them (only
Stripe reads them), and Xero `line_amount_types: Inclusive`, where the line amount, and so the
budget's credit, would include the tax.
"""

from __future__ import annotations

from sync.settings import Settings, XeroSettings


def tax_warnings(settings: Settings) -> list[str]:
    """One line per tax setting that is ignored or would credit a budget its tax."""
    warnings: list[str] = []
    for xero in settings.invoicing:
        if isinstance(xero, XeroSettings) and xero.line_amount_types == "Inclusive":
            warnings.append(
                f"{xero.yaml_path}.line_amount_types: Inclusive makes the refill amount the"
                " invoice total including tax, and the budget is credited that amount; use"
                " Exclusive (the default) so the budget is credited the net amount"
            )
    for customer in settings.customers:
        to = customer.invoice_to
        if to is None or not to.tax_rates:
            continue
        sink = settings.sink(to.sink)
        if sink is not None and sink.type != "stripe":
            warnings.append(
                f"{customer.yaml_path}.invoice_to.tax_rates: ignored by the {sink.type} sink"
                f" {sink.name!r} (only Stripe uses tax_rates); "
                + (
                    f"set tax_type on {sink.yaml_path}"
                    if sink.type == "xero"
                    else "set the tax in the invoicing system"
                )
            )
    return warnings
