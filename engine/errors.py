"""Every exception Rapport raises on purpose, in one flat module."""

from __future__ import annotations


class RapportError(Exception):
    """Base class: something a caller can report as one clear line."""


class FieldErrors(RapportError):
    """Input failed validation; `errors` lists {"field", "message"} pairs."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


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
    """Worth retrying: timeouts, connection loss, 4xx SMTP replies, 429, 5xx HTTP."""


class PermanentSendError(SendError):
    """Retrying cannot help: rejected recipient, invalid address."""
