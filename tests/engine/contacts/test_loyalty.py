"""Loyalty tiers by total spent: defaults, boundaries, and a workspace's own tiers, validated."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.contacts.loyalty import DEFAULT_TIERS, is_upgrade, parse_tiers, tier_for, workspace_tiers
from engine.errors import FieldErrors


@pytest.mark.parametrize(("spent", "tier"), [
    ("0", "novice"), ("199.99", "novice"), ("200", "connoisseur"), ("999.99", "connoisseur"),
    ("1000", "star"), ("4999.99", "star"), ("5000", "guru"), ("250000", "guru"),
])
def test_default_tiers_start_at_the_threshold_reached_exactly(spent: str, tier: str) -> None:
    """novice from 0, connoisseur from 200, star from 1,000, guru from 5,000; a threshold reached counts."""
    assert tier_for(Decimal(spent)) == tier


def test_a_workspace_without_tiers_uses_the_defaults() -> None:
    """No `loyalty_tiers` setting (or no settings at all) means the four default tiers."""
    assert workspace_tiers({}) == DEFAULT_TIERS
    assert workspace_tiers(None) == DEFAULT_TIERS
    assert [t.name for t in DEFAULT_TIERS] == ["novice", "connoisseur", "star", "guru"]


def test_a_workspace_can_set_its_own_tiers() -> None:
    """Custom tiers replace the defaults; amounts may be numbers or decimal strings."""
    tiers = workspace_tiers({"loyalty_tiers": [
        {"name": "bronze", "min_spent": 0},
        {"name": "silver", "min_spent": "50.50"},
        {"name": "gold", "min_spent": 500},
    ]})
    assert [tier_for(Decimal(x), tiers) for x in ("50.49", "50.50", "499", "500")] == [
        "bronze", "silver", "silver", "gold"]


@pytest.mark.parametrize(("tiers", "field", "says"), [
    ([{"name": "a", "min_spent": 0}, {"name": "b", "min_spent": -5}], "loyalty_tiers.1.min_spent", "greater than"),
    ([{"name": "a", "min_spent": 0}, {"min_spent": 10}], "loyalty_tiers.1.name", "required"),
    ([{"name": "a", "min_spent": 0}, {"name": "b c", "min_spent": 10}], "loyalty_tiers.1.name", "pattern"),
    ([{"name": "a", "min_spent": 0, "colour": "red"}], "loyalty_tiers.0.colour", "not permitted"),
    ([{"name": "a", "min_spent": 0}, {"name": "b", "min_spent": "lots"}], "loyalty_tiers.1.min_spent", "decimal"),
    ([{"name": "a", "min_spent": 0}, {"name": "b", "min_spent": "9.999"}], "loyalty_tiers.1.min_spent", "2 decimal"),
    ([{"name": "a", "min_spent": 10}], "loyalty_tiers.0.min_spent", "lowest tier must start at 0"),
    ([{"name": "a", "min_spent": 0}, {"name": "b", "min_spent": 500}, {"name": "c", "min_spent": 500}],
     "loyalty_tiers.2.min_spent", "more than the tier before (500)"),
    ([{"name": "a", "min_spent": 0}, {"name": "a", "min_spent": 5}], "loyalty_tiers.1.name", "used twice"),
    ([], "loyalty_tiers", "at least one tier"),
    ({"name": "a"}, "loyalty_tiers", "list"),
])
def test_bad_tiers_are_refused_naming_the_field(tiers: object, field: str, says: str) -> None:
    """Each mistake in a tier list is reported against the path of the bad field."""
    with pytest.raises(FieldErrors) as caught:
        parse_tiers(tiers)
    assert any(e["field"] == field and says in e["message"] for e in caught.value.errors), caught.value.errors


def test_ranking_says_which_way_a_change_goes() -> None:
    """Moving to a higher tier is an upgrade; back down is not; a tier no longer defined ranks lowest."""
    assert is_upgrade("novice", "star") and not is_upgrade("guru", "star")
    assert is_upgrade("retired-tier", "novice")
