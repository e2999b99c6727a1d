"""Referral reward: thank a customer whose referred friend placed a first order.

Starts on `referral_converted`, sent by the shop's referral programme to the
referrer when a friend they invited places their first order (properties
friend_name, optional, and reward_code, the referrer's reward). Keyed by the reward
code, so each reward is announced once however often the webhook repeats, while a
second converted friend (a new code) gets its own email. Sends the reward email at
once and ends.
"""

from __future__ import annotations

from typing import Any

NAME = "Referral reward"


def recipe() -> dict[str, Any]:
    return {
        "trigger": {"event": "referral_converted", "key": "reward_code"},
        "steps": [{"type": "send", "id": "reward", "channel": "email", "template": "referral_reward"}],
    }
