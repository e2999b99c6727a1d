"""Every exception Rapport raises on purpose, in one flat module."""

from __future__ import annotations


class RapportError(Exception):
    """Base class: something a caller can report as one clear line."""


class FieldErrors(RapportError):
    """Input failed validation; `errors` lists {"field", "message"} pairs."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class MalformedJson(RapportError):
    """A body that is not JSON, or nests deeper than engine.strict_json.MAX_DEPTH: refused whole."""


class TooDeepJson(MalformedJson):
    """JSON nested past engine.strict_json.MAX_DEPTH: refused even where unreadable bodies are kept."""


class UnstorableJson(FieldErrors):
    """JSON whose values cannot be stored (non-finite numbers, NUL, lone surrogates), by field."""


class DefinitionError(FieldErrors):
    """A journey definition is invalid."""


class NotFound(RapportError):
    pass


class AuthError(RapportError):
    """Bad API key or signature. The message is safe to show the caller."""


class TemplateError(RapportError):
    """A template is missing, fails to compile, or uses a variable it was not given."""


class SendError(RapportError):
    """A channel adapter could not hand a message over."""


class TransientSendError(SendError):
    """Worth retrying: timeouts, connection loss, 4xx SMTP replies, 429, 5xx HTTP.

    `retry_after` (seconds) is the provider's own wish (HTTP 429 Retry-After, Telegram's
    `parameters.retry_after`); it overrides the backoff when it is longer.
    """

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying cannot help: rejected recipient, invalid address.

    `address_dead`: the address itself is gone (hard bounce, bot blocked by the user,
    number not in service), so it is suppressed and routing falls back to another channel.
    """

    def __init__(self, message: str, *, address_dead: bool = False):
        super().__init__(message)
        self.address_dead = address_dead


class ChannelUnavailable(SendError):
    """No adapter is configured for the channel, or the channel is paused."""


class SendInDoubt(SendError):
    """The message may have reached the provider; its answer was lost.

    The whole message was handed over (for SMTP: the body up to its end-of-data), then the
    connection broke, timed out or answered something unreadable. Sending it again at once
    could deliver it twice, so the adapter never does; what happens next is the dispatcher's
    in-doubt policy.
    """


class ClaimLost(SendError):
    """Raised by dispatch's hand-over callback when the worker's claim on the message went to another
    worker: the adapter must abandon the send before anything reaches the provider."""


class JourneyConflict(RapportError):
    """The journey already exists (a recipe installed before, a file whose journey is archived).

    `journey_id` names the existing journey; the caller may ask for a copy instead.
    """

    def __init__(self, message: str, *, journey_id: int):
        super().__init__(message)
        self.journey_id = journey_id


class StaleDraft(RapportError):
    """A change to a journey's draft was based on a revision that is no longer the current one
    (another tab or another person saved in between): refused, never silently overwritten.

    `current_revision` is the draft's revision now, for the client to reload and reapply.
    """

    def __init__(self, message: str, *, current_revision: int):
        super().__init__(message)
        self.current_revision = current_revision


class InvalidTemplate(TemplateError):
    """A template draft that cannot be saved, published or rendered (a TemplateError: a send that meets one
    fails like any other template error). `errors` lists {"field", "message",
    "line"}: the part (subject, body_mjml, body_text, buttons.0.url, ...), what is wrong, and the line of
    that part it is on (None when the error has no line, such as a missing part)."""

    def __init__(self, errors: list[dict[str, str | int | None]]):
        self.errors = errors
        super().__init__("; ".join(
            f"{e['field']}" + (f" line {e['line']}" if e.get("line") else "") + f": {e['message']}" for e in errors))


class StaleTemplateDraft(RapportError):
    """The draft was saved by someone else since the editor read it (its revision moved on): saving over it
    would lose their change. `revision` is the current one."""

    def __init__(self, message: str, *, revision: int):
        super().__init__(message)
        self.revision = revision
