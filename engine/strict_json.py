"""The one JSON reader for everything that comes in over HTTP: what it accepts, a database can store.

Python's json module takes `NaN`, `Infinity` and `-Infinity`, turns `1e400` into infinity,
and keeps NUL characters and lone UTF-16 surrogates in strings. None of these can be
stored as they are: PostgreSQL's jsonb has no non-finite numbers (orjson writes null in
their place) and refuses NUL in text, psycopg cannot encode a lone surrogate, and SQLite
keeps `NaN` as text that its own JSON functions then call malformed. A body nested tens
of thousands of levels deep makes the parser raise RecursionError.

`read_json(body)` parses and reports instead of failing:

- `MalformedJson` (not JSON at all) or `TooDeepJson` (nested deeper than MAX_DEPTH) refuses
  the whole body;
- every other problem is a `Problem` with the path of the field it is in, so a caller can
  refuse the body naming the fields (`refuse_problems`), or refuse just the items of a batch
  that hold them and keep the rest.

Integers of any length up to Python's limit are kept exactly (jsonb stores them as
numeric, SQLite as the text they came in); longer ones are a Problem.

Problems are looked for only when the parser or a quick scan of the raw bytes saw a hint
of one, so the common body costs one json.loads with two hooks and a few byte searches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import MalformedJson, TooDeepJson, UnstorableJson

MAX_DEPTH = 64
NON_FINITE = "not a finite number (NaN, Infinity and numbers beyond ±1.8e308 cannot be stored)"
HUGE_INTEGER = "an integer with more than 4300 digits"
NUL = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE = "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    @property
    def field(self) -> str:
        return field_name(self.path)


class _Refused:
    """Put in place of a number the parser met that cannot be stored; found again by the walk."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def read_json(body: bytes | str) -> tuple[Any, list[Problem]]:
    """The parsed body and what in it cannot be stored. Raises MalformedJson."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and nests_deeper_than(raw, MAX_DEPTH):
        raise TooDeepJson(f"nested deeper than {MAX_DEPTH} levels")
    refused: list[_Refused] = []
    try:
        value = json.loads(body, parse_constant=_constant(refused), parse_float=_float(refused),
                           parse_int=_int(refused))
    except RecursionError:  # a depth the quick scan missed (brackets hidden from it); never a 500
        raise TooDeepJson(f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(str(exc)) from None
    # A str may hold a NUL or a lone surrogate as itself rather than as an escape: always looked at.
    text_hints = isinstance(body, str) or b"\\u0000" in raw or _SURROGATE_ESCAPE.search(raw) is not None
    if not refused and not text_hints:
        return value, []
    return value, list(problems_in(value))


def refuse_problems(problems: list[Problem]) -> None:
    """Raise UnstorableJson naming each field that cannot be stored."""
    if problems:
        raise UnstorableJson([{"field": p.field, "message": p.message} for p in problems])


def problems_by_item(problems: list[Problem], *, under: str) -> dict[int, list[dict[str, str]]]:
    """The problems of a batch's items (paths `under.<index>...`) as field errors per item index,
    each field named from the item down; any problem outside the items refuses the whole body."""
    refuse_problems([p for p in problems if not _in_item(p.path, under)])
    by_item: dict[int, list[dict[str, str]]] = {}
    for problem in problems:
        index, rest = problem.path[1], problem.path[2:]
        assert isinstance(index, int)
        by_item.setdefault(index, []).append({"field": field_name(rest), "message": problem.message})
    return by_item


def _in_item(path: Path, under: str) -> bool:
    return len(path) >= 2 and path[0] == under and isinstance(path[1], int)


def problems_in(value: Any, path: Path = ()) -> Iterator[Problem]:
    """What in an already parsed value cannot be stored, by path (iterative: depth costs no stack)."""
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            entries: list[tuple[Path, Any]] = []
            for key, child in item.items():
                key_problem = _text_problem(key)
                if key_problem:
                    entries.append(((*where, key), _Refused(f"the key {key_problem}")))
                entries.append(((*where, key), child))
            stack.extend(reversed(entries))  # popped in document order
        elif isinstance(item, list):
            stack.extend(((*where, index), item[index]) for index in reversed(range(len(item))))
        elif isinstance(item, _Refused):
            yield Problem(where, item.message)
        elif isinstance(item, float) and not math.isfinite(item):
            yield Problem(where, NON_FINITE)
        elif isinstance(item, str):
            text_problem = _text_problem(item)
            if text_problem:
                yield Problem(where, text_problem)


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than `limit`, brackets in strings not counted.

    First counted over every bracket, stopping at the first level past the limit: within the
    limit that way, the text is (brackets in strings are few and rarely all opening). Only a
    text that seems deeper is counted again without its strings, which costs a regular
    expression over the whole text. What this misses (closing brackets in strings hiding
    depth) the parser's own RecursionError catches.
    """
    if not _pairs_nest_deeper(raw.translate(None, _NOT_BRACKETS), limit):
        return False
    return _pairs_nest_deeper(_JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS), limit)


def _pairs_nest_deeper(brackets: bytes, limit: int) -> bool:
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENING else -1
        if depth > limit:
            return True
    return False


def field_name(path: Path) -> str:
    """A path as the API's field errors write it: "events.3.properties.total"."""
    return ".".join(str(part).replace("\x00", "\\u0000") for part in path) or "(root)"


def storable_text(text: str) -> str:
    """Text with what a database cannot store replaced by U+FFFD, for keeping a refused body to inspect."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def _refuse(refused: list[_Refused], message: str) -> _Refused:
    marker = _Refused(message)
    refused.append(marker)
    return marker


def _constant(refused: list[_Refused]) -> Any:
    def parse_constant(_name: str) -> _Refused:
        return _refuse(refused, NON_FINITE)

    return parse_constant


def _float(refused: list[_Refused]) -> Any:
    def parse_float(text: str) -> float | _Refused:
        number = float(text)
        return _refuse(refused, NON_FINITE) if math.isinf(number) else number

    return parse_float


def _int(refused: list[_Refused]) -> Any:
    def parse_int(text: str) -> int | _Refused:
        try:
            return int(text)
        except ValueError:  # past sys.int_info.default_max_str_digits
            return _refuse(refused, HUGE_INTEGER)

    return parse_int
