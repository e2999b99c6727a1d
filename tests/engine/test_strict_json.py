"""The strict JSON reader on its own: what it refuses, where it says the problem is, what it keeps."""

from __future__ import annotations

import json

import pytest

from engine.errors import MalformedJson, TooDeepJson
from engine.strict_json import MAX_DEPTH, read_json


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused() -> None:
    """64 levels are fine; 65 are TooDeepJson, as are 50,000 (no RecursionError)."""
    assert read_json(nested(MAX_DEPTH))[1] == []
    for levels in (MAX_DEPTH + 1, 50_000):
        with pytest.raises(TooDeepJson):
            read_json(nested(levels))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """A string of 200 brackets (an emoticon-heavy note, a pasted snippet) is text, not depth."""
    body = json.dumps({"note": "[" * 100 + "]" * 100, "other": "{" * 200}).encode()
    value, problems = read_json(body)
    assert problems == [] and value["other"] == "{" * 200


def test_closing_brackets_in_strings_cannot_hide_a_parser_crash() -> None:
    """Strings of "]" may hide depth from the quick count; the parser's own limit still refuses it."""
    body = b'["' + b"]" * 60_000 + b'", ' + nested(60_000) + b"]"
    with pytest.raises(TooDeepJson):
        read_json(body)


def test_each_unstorable_value_is_named_by_its_path_in_document_order() -> None:
    """NaN, -Infinity, 1e400, NUL in a key and in a value, a lone surrogate: each with its path."""
    body = (b'{"a": NaN, "b": [1, -Infinity, {"c": 1e400}], "k\\u0000": "v", "d": "x\\u0000",'
            b' "e": "\\udc00"}')
    _, problems = read_json(body)
    assert [p.field for p in problems] == ["a", "b.1", "b.2.c", "k\\u0000", "d", "e"]


def test_a_surrogate_pair_is_text_and_big_integers_are_kept_exactly() -> None:
    """"\\ud83d\\ude00" is one emoji; 2**200 stays that integer."""
    value, problems = read_json(b'{"smile": "\\ud83d\\ude00", "big": ' + str(2**200).encode() + b"}")
    assert problems == [] and value == {"smile": "\U0001F600", "big": 2**200}


def test_what_is_not_json_is_malformed() -> None:
    """Syntax errors and bad UTF-8 are MalformedJson, with the parser's own words."""
    for body in (b"{", b"\xff\xfe\xfa", b"{'a': 1}"):
        with pytest.raises(MalformedJson):
            read_json(body)
