"""Journeys as code: a YAML file with the journey's name and its definition.

    name: Abandoned cart
    uuid: 6f1c0a4e-...        # written by export: importing the file updates that journey
    definition:
      trigger: {event: cart_updated, key: cart_id}
      steps:
        - {type: wait, id: wait-1h, hours: 1}
        - {type: send, id: reminder, channel: email, template: abandoned_cart}

Loading validates like the API does (the templates it names are looked for in the
workspace the file is loaded into), and every error names the path of the bad field
(or the line, for YAML that does not parse). `uuid` is optional: a file without one
(written by hand) makes a new journey on import.
"""

from __future__ import annotations

import re
import uuid as uuids
from dataclasses import dataclass
from typing import Any

import yaml

from engine.delivery.templates import Templates
from engine.errors import DefinitionError
from engine.journeys.versions import validate_definition
from engine.strict_json import MAX_DEPTH, problems_in


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. In YAML 1.1 the branch keys `yes:` and `no:`
    (and on/off) would silently become booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


@dataclass(frozen=True)
class JourneyFile:
    name: str
    definition: dict[str, Any]
    uuid: str | None = None  # the journey the file was exported from


def dump(name: str, definition: dict[str, Any], uuid: str | None = None) -> str:
    data: dict[str, Any] = {"name": name} | ({"uuid": uuid} if uuid else {}) | {"definition": definition}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def load(text: str, *, templates: Templates, workspace_id: str) -> JourneyFile:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # thousands of nested brackets: refused as the strict JSON reader refuses them
        raise DefinitionError([{"field": "(yaml)", "message": f"nested deeper than {MAX_DEPTH} levels"}]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise DefinitionError([{"field": "(yaml)", "message": f"{where}{problem}"}]) from None
    if not isinstance(data, dict):
        raise DefinitionError([{"field": "(root)", "message": "expected a mapping with name and definition"}])
    # What JSON bodies may not hold, a file may not either: .nan, .inf, NUL ("\0") cannot be stored.
    errors = [{"field": p.field, "message": p.message} for p in problems_in(data)]
    if errors:
        raise DefinitionError(errors)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append({"field": "name", "message": "a journey needs a name"})
    extra = set(data) - {"name", "uuid", "definition"}
    if extra:
        errors.append({"field": sorted(extra)[0], "message": "unknown key; expected name, uuid and definition"})
    journey_uuid = _canonical_uuid(data.get("uuid"))
    if data.get("uuid") is not None and journey_uuid is None:
        errors.append({"field": "uuid", "message": "expected the uuid an export wrote (or no uuid at all)"})
    try:
        validate_definition(data.get("definition"), templates=templates, workspace_id=workspace_id)
    except DefinitionError as exc:
        errors.extend({"field": f"definition.{e['field']}", "message": e["message"]} for e in exc.errors)
    if errors:
        raise DefinitionError(errors)
    return JourneyFile(str(name).strip(), data["definition"], journey_uuid)


def _canonical_uuid(value: object) -> str | None:
    """The uuid as an export writes it, or None when `value` is not a uuid string."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuids.UUID(value))
    except ValueError:
        return None


def line_of(text: str, field: str) -> int | None:
    """The 1-based line where `field` (a dotted error path) sits in the YAML text, if found.

    Path segments that name no key (a union's tag, such as the "wait" in
    "steps.0.wait.hours") are skipped.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = None
    for part in field.split("."):
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                continue  # a tag segment
            node = match
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            break
        line = node.start_mark.line + 1
    return line
