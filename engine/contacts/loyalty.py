"""Loyalty tiers: which tier a contact's total spent puts them in.

Tiers are steps on total spent (historic lifetime value), in the shop's currency.
The defaults are novice (from 0), connoisseur (from 200), star (from 1,000) and guru
(from 5,000): roughly "has bought", "buys regularly", "a top customer", "the top few".
A workspace sets its own in `Workspace.settings["loyalty_tiers"]`, a list of
`{"name": ..., "min_spent": ...}` from the lowest tier up; the lowest must start at 0,
so every contact has a tier.

Pure: no database. The metrics service asks `tier_for` after it has added orders up.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.errors import FieldErrors
from engine.field_errors import field_errors

SETTINGS_KEY = "loyalty_tiers"
MAX_TIERS = 20
TierName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TierName
    min_spent: Annotated[Decimal, Field(ge=0, lt=Decimal(10) ** 12, decimal_places=2, allow_inf_nan=False)]


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(name="novice", min_spent=Decimal(0)),
    Tier(name="connoisseur", min_spent=Decimal(200)),
    Tier(name="star", min_spent=Decimal(1000)),
    Tier(name="guru", min_spent=Decimal(5000)),
)

_TIER_LIST = TypeAdapter(list[Tier])


def parse_tiers(value: Any) -> tuple[Tier, ...]:
    """Validate a `loyalty_tiers` setting; FieldErrors name the bad field (`loyalty_tiers.2.min_spent`)."""
    try:
        tiers = _TIER_LIST.validate_python(value)
    except ValidationError as exc:
        raise FieldErrors(field_errors(exc, prefix=(SETTINGS_KEY,))) from None
    errors: list[dict[str, str]] = []
    if not tiers:
        errors.append({"field": SETTINGS_KEY, "message": "needs at least one tier"})
    elif len(tiers) > MAX_TIERS:
        errors.append({"field": SETTINGS_KEY, "message": f"{len(tiers)} tiers; the limit is {MAX_TIERS}"})
    elif tiers[0].min_spent != 0:
        errors.append({"field": f"{SETTINGS_KEY}.0.min_spent",
                       "message": "the lowest tier must start at 0, so every contact has a tier"})
    seen: set[str] = set()
    for index, tier in enumerate(tiers):
        if tier.name in seen:
            errors.append({"field": f"{SETTINGS_KEY}.{index}.name", "message": f"{tier.name!r} is used twice"})
        seen.add(tier.name)
        if index and tier.min_spent <= tiers[index - 1].min_spent:
            errors.append({"field": f"{SETTINGS_KEY}.{index}.min_spent",
                           "message": f"must be more than the tier before ({tiers[index - 1].min_spent})"})
    if errors:
        raise FieldErrors(errors)
    return tuple(tiers)


def workspace_tiers(settings: dict[str, Any] | None) -> tuple[Tier, ...]:
    """The workspace's tiers, or the defaults when it has set none."""
    value = (settings or {}).get(SETTINGS_KEY)
    return DEFAULT_TIERS if value is None else parse_tiers(value)


def tier_for(total_spent: Decimal, tiers: Sequence[Tier] = DEFAULT_TIERS) -> str:
    """The highest tier whose threshold `total_spent` reaches (a threshold reached exactly counts)."""
    reached = tiers[0]
    for tier in tiers[1:]:
        if total_spent < tier.min_spent:
            break
        reached = tier
    return reached.name


def is_upgrade(before: str, after: str, tiers: Sequence[Tier] = DEFAULT_TIERS) -> bool:
    """Whether `after` ranks above `before`; a name no longer in the tiers ranks lowest."""
    rank = {tier.name: index for index, tier in enumerate(tiers)}
    return rank.get(after, -1) > rank.get(before, -1)
