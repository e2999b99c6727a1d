"""Reason codes: why a run ended early, a contact was not enrolled, a message was skipped,
deferred or held. The one list every module that decides (and the journal that keeps the
decision) reads.

A journal line keeps the sentence a person reads ("skipped: contact opted out of email")
and, beside it, one of these codes, which stats and reports count: the code names the
cause, the sentence its particulars (which channel, until when, which filter). A code is
stored as its value, so a value once written is never renamed.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    # A run ended before its last step (journal kind `exited`).
    GOAL_REACHED = "goal_reached"  # the goal column says which goal
    EXIT_STEP = "exit_step"  # the journey's own exit step; the sentence is its reason
    JOURNEY_ARCHIVED = "journey_archived"

    # An event did not enroll its contact (`not_enrolled`).
    NO_KEY = "no_key"  # the event lacks the journey's correlation key
    ENTRY_FILTER = "entry_filter"
    REENTRY_RULE = "reentry_rule"

    # Why a channel could not take a message (routing and its policies). A message that no
    # channel could take is skipped with the code of its step's first channel.
    TOPIC_UNSUBSCRIBED = "topic_unsubscribed"
    NO_ADDRESS = "no_address"  # no email address, phone number or linked chat
    OPTED_OUT = "opted_out"
    CONSENT_PENDING = "consent_pending"  # double opt-in not confirmed
    NO_OPT_IN = "no_opt_in"  # SMS and WhatsApp marketing need an explicit opt-in
    SUPPRESSED = "suppressed"  # the address bounced or complained
    NO_TEMPLATE = "no_template"
    CHANNEL_PAUSED = "channel_paused"  # its breaker opened, or a person paused it: held or passed over
    NO_CHANNEL = "no_channel"  # the step named no channel that exists for the contact

    # Why a message waits, or was dropped, after routing chose its channel.
    FREQUENCY_CAP = "frequency_cap"
    QUIET_HOURS = "quiet_hours"
    RATE_LIMITED = "rate_limited"  # the provider's rate, kept by the workers
    HELD_TOO_LONG = "held_too_long"  # marketing held on a paused channel past the workspace's limit
    CHANNEL_NOT_CONFIGURED = "channel_not_configured"
    CONTACT_ERASED = "contact_erased"
