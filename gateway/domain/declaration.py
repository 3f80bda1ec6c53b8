"""A declaration built from the enrolments' choices, where the form asks nothing at declaration (Jiujiang 附件3).

Each fee the profile lists for an enrolment selected in the case becomes one row: its fee type and levy item, the
monthly base the applicant chose (a percentage of the reference wage: the 缴存档次), its sub-item, for the month
of enrolment.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gateway.profiles.model import Declares


def declared_rows(declares: Declares, sections: Mapping[str, Mapping[str, Any]], matters: list[str],
                  month: str) -> list[dict[str, Any]]:
    """Rows `{fee_type, levy_item, period_start, period_end, contribution_base?, levy_sub_item?}`; `month` YYYY-MM."""
    rows = []
    wage = Decimal(str(declares.reference_monthly_wage))
    for fee in declares.fees:
        if fee.matter not in matters:
            continue
        section = sections.get(fee.matter, {})
        percent = section.get(fee.base_percent_field) if fee.base_percent_field else fee.base_percent
        row: dict[str, Any] = {"fee_type": fee.fee_type, "levy_item": fee.levy_item,
                               "period_start": month, "period_end": month}
        if percent is not None:
            base = (wage * Decimal(str(percent)) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            row["contribution_base"] = float(base)
        if fee.sub_item_field and section.get(fee.sub_item_field) is not None:
            row["levy_sub_item"] = str(section[fee.sub_item_field])
        rows.append(row)
    return rows
