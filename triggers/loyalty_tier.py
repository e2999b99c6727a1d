"""Loyalty tier reached: congratulate a customer who moves up to a tier.

Starts on `loyalty_tier_changed`, which the metrics service records when a contact's
total spent moves them to another tier (properties from, to, direction,
total_spent, orders_count), filtered to upward moves into one of `tiers` (default:
every tier above the lowest of the default ladder novice / connoisseur / star /
guru). Keyed by the tier reached, so each tier is celebrated once per contact, even
if a refund moves them down and a new order up again. Sends the congratulation at
once and ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NAME = "Loyalty tier reached"
DEFAULT_TIERS = ("connoisseur", "star", "guru")


def recipe(*, tiers: Sequence[str] = DEFAULT_TIERS) -> dict[str, Any]:
    if not tiers:
        raise ValueError("name at least one tier")
    return {
        "trigger": {"event": "loyalty_tier_changed", "key": "to",
                    "filter": {"all": [{"property": "direction", "value": "up"},
                                       {"property": "to", "op": "in", "value": list(tiers)}]}},
        "steps": [{"type": "send", "id": "congratulate", "channel": "email", "template": "loyalty_tier_reached"}],
    }
