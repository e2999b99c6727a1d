"""The delivery state machine, one for every channel.

    scheduled -> claimed -> sending -> sent -> delivered -> opened -> clicked -> replied
                               \\-> bounced | failed        \\-> complained

A receipt moves a message only forward: a `delivered` that arrives after the
`opened` it preceded changes nothing but its own timestamp, and a bounce or a
complaint is final. `unknown` (a worker died after handing the message over) is
the one state a receipt may lift: the provider saying "delivered" is the answer.
"""

from __future__ import annotations

from engine.store.models import MessageStatus as S

_RANK = {
    S.SCHEDULED: 0, S.CLAIMED: 0, S.SENDING: 1, S.UNKNOWN: 1, S.SENT: 2, S.DELIVERED: 3, S.OPENED: 4, S.CLICKED: 5,
    S.REPLIED: 6,
}
FINAL = frozenset({S.BOUNCED, S.FAILED, S.COMPLAINED, S.SKIPPED})
# Where a bad outcome may come from: a bounce or a failure report only before engagement;
# a spam complaint after the recipient saw the message.
_NEGATIVE_FROM = {
    S.BOUNCED: frozenset({S.SENDING, S.UNKNOWN, S.SENT, S.DELIVERED}),
    S.FAILED: frozenset({S.SENDING, S.UNKNOWN, S.SENT, S.DELIVERED}),
    S.COMPLAINED: frozenset({S.SENDING, S.UNKNOWN, S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.REPLIED}),
}


def next_status(current: str, reported: str) -> str | None:
    """The status after a receipt saying `reported`, or None if the message stays as it is."""
    now, new = S(current), S(reported)
    if now in FINAL or now in (S.SCHEDULED, S.CLAIMED):
        return None
    if new in _NEGATIVE_FROM:
        return new.value if now in _NEGATIVE_FROM[new] else None
    if new not in _RANK or new in (S.SCHEDULED, S.CLAIMED, S.SENDING, S.UNKNOWN):
        return None
    return new.value if _RANK[new] > _RANK[now] else None


ENGAGED = frozenset({S.OPENED, S.CLICKED, S.REPLIED})
COUNTED = frozenset(S) - {S.SKIPPED, S.FAILED}  # what frequency caps count as "sent or about to be"
