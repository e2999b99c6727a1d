"""Validation errors as the API, the CLI and forms show them: one entry per bad field, named by its path.

`[{"field": "steps.3.yes.0.timeout", "message": "..."}]` — a path a person (or a form)
can follow to the field, a message without pydantic's "Value error, " prefix. The root
of the document is "(root)". Callers whose documents sit under a key pass `prefix`, and
callers whose paths need a domain rule (a journey's trigger kind is implied by its
fields) pass `rename`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import ValidationError

Location = tuple[int | str, ...]


def field_path(loc: Location, *, prefix: Sequence[str] = ()) -> str:
    """Dotted path of a pydantic location ("[key]" marks an invalid key of a mapping)."""
    return ".".join((*prefix, *(str(part) for part in loc))) or "(root)"


def key_names_its_mapping(loc: Location) -> Location:
    """For documents whose readers know the mapping, not pydantic's "[key]" marker."""
    return tuple(part for part in loc if part != "[key]")


def field_errors(
    exc: ValidationError, *, prefix: Sequence[str] = (), rename: Callable[[Location], Location] | None = None,
) -> list[dict[str, str]]:
    """Every error of a failed validation as {"field", "message"}."""
    return [
        {"field": field_path(rename(err["loc"]) if rename else err["loc"], prefix=prefix),
         "message": err["msg"].removeprefix("Value error, ")}
        for err in exc.errors()
    ]
