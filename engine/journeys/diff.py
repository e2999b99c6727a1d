"""What changed between two journey definitions, step by step id: added, removed, changed, moved.

Step ids are what a run records and what a marketer sees on the tree, so a step is the same
step wherever it went. A step's own fields are compared without its branches (a changed
step inside a branch is that step's change, not its parent's), each side written out in
the canonical form versions are stored in, so a draft that leaves `same_key` out is not
"changed" against a version that spells out its default. Either side may be a draft that
does not validate: a step that cannot be read is compared as written, and steps without an
id cannot be followed and are left out (`problems` names them).

A step "moved" when it sits in another branch, or when its order among the steps that stay
in its branch changed; inserting a step before it moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from engine.journeys.definition import AnyTrigger, Goal, Reentry, Step

SETTINGS: dict[str, tuple[TypeAdapter[Any], Any]] = {  # journey-wide fields: how to read each, its default
    "trigger": (TypeAdapter(AnyTrigger), None),
    "reentry": (TypeAdapter(Reentry), "once_per_key"),
    "goals": (TypeAdapter(list[Goal]), []),
}
_STEP: TypeAdapter[Any] = TypeAdapter(Step)
STEP_MODELS: dict[str, type[BaseModel]] = {get_args(model.model_fields["type"].annotation)[0]: model
                                           for model in get_args(get_args(Step)[0])}
BRANCH_KEYS = ("yes", "no")


@dataclass(frozen=True)
class Placed:
    """A step's own fields (canonical when they validate), where it is, and the branch it is in."""

    fields: dict[str, Any]
    path: str  # e.g. "steps.0.yes.1", as field paths in validation problems start
    branch: tuple[str, str]  # (the id of the step whose branch it is, the branch's label); ("", "") at the top
    position: int


def diff_definitions(old: Any, new: Any) -> dict[str, Any]:
    """The changes from `old` to `new`: lists of added, removed, changed and moved steps (each with its
    id, type and path), and the journey-wide `settings` (trigger, reentry, goals) that changed."""
    before, after = place_steps(old), place_steps(new)
    added = [_entry(step_id, placed) for step_id, placed in after.items() if step_id not in before]
    removed = [_entry(step_id, placed) for step_id, placed in before.items() if step_id not in after]
    changed = []
    for step_id, placed in after.items():
        if step_id in before:
            fields = _changed_fields(before[step_id].fields, placed.fields)
            if fields:
                changed.append(_entry(step_id, placed) | {"fields": fields})
    moved = [{"step_id": step_id, "type": after[step_id].fields.get("type"), "from": before[step_id].path,
              "to": after[step_id].path} for step_id in _moved(before, after)]
    settings = _changed_fields(_settings(old), _settings(new))
    return {"added": added, "removed": removed, "changed": changed, "moved": moved, "settings": settings}


def place_steps(definition: Any) -> dict[str, Placed]:
    """Every identifiable step of a definition, in tree order; of two steps sharing an id, the first
    (the second's branches are still walked)."""
    placed: dict[str, Placed] = {}

    def visit(sequence: Any, path: str, branch: tuple[str, str]) -> None:
        if not isinstance(sequence, list):
            return
        for position, step in enumerate(sequence):
            if not isinstance(step, dict):
                continue
            step_id, step_path = step.get("id"), f"{path}.{position}"
            if not isinstance(step_id, str):
                continue
            placed.setdefault(step_id, Placed(_own_fields(step), step_path, branch, position))
            for key in BRANCH_KEYS:
                visit(step.get(key), f"{step_path}.{key}", (step_id, key))
            arms = step.get("arms")
            for index, arm in enumerate(arms if isinstance(arms, list) else []):
                if isinstance(arm, dict):
                    visit(arm.get("steps"), f"{step_path}.arms.{index}.steps", (step_id, str(arm.get("name"))))

    visit(definition.get("steps") if isinstance(definition, dict) else None, "steps", ("", ""))
    return placed


def _own_fields(step: dict[str, Any]) -> dict[str, Any]:
    """The step without the steps of its branches, canonical if it validates so."""
    own = {key: value for key, value in step.items() if key not in BRANCH_KEYS}
    if isinstance(own.get("arms"), list):
        own["arms"] = [{k: v for k, v in arm.items() if k != "steps"} if isinstance(arm, dict) else arm
                       for arm in own["arms"]]
    try:
        canonical = _STEP.dump_python(_STEP.validate_python(own), mode="json", by_alias=True)
    except (ValidationError, ValueError, TypeError):
        return _with_defaults(own)
    canonical = {key: value for key, value in canonical.items() if key not in BRANCH_KEYS}
    if isinstance(canonical.get("arms"), list):
        canonical["arms"] = [{k: v for k, v in arm.items() if k != "steps"} for arm in canonical["arms"]]
    return dict(canonical)


def _with_defaults(step: dict[str, Any]) -> dict[str, Any]:
    """A step that does not validate, with the defaults of its type filled in where it leaves a field out,
    as the canonical form of the other side has them: only what was written differs."""
    kind = step.get("type")
    model = STEP_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return step
    defaults = {name: to_jsonable_python(field.get_default(call_default_factory=True))
                for name, field in model.model_fields.items() if not field.is_required() and name not in BRANCH_KEYS}
    return defaults | step


def _settings(definition: Any) -> dict[str, Any]:
    data = definition if isinstance(definition, dict) else {}
    result = {}
    for name, (adapter, default) in SETTINGS.items():
        value = data.get(name, default)
        try:
            result[name] = adapter.dump_python(adapter.validate_python(value), mode="json", by_alias=True)
        except (ValidationError, ValueError, TypeError):
            result[name] = value
    return result


def _changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field whose value differs, with both values (None where a side has no such field)."""
    names = [*old, *(name for name in new if name not in old)]
    return [{"field": name, "from": old.get(name), "to": new.get(name)}
            for name in names if old.get(name) != new.get(name)]


def _moved(before: dict[str, Placed], after: dict[str, Placed]) -> list[str]:
    """Ids of steps now in another branch, or out of order among the steps that stayed in theirs."""
    moved = {step_id for step_id, placed in after.items()
             if step_id in before and before[step_id].branch != placed.branch}
    branches = {placed.branch for placed in after.values()}
    for branch in branches:
        stayed = [step_id for step_id, placed in after.items()
                  if placed.branch == branch and step_id in before and before[step_id].branch == branch]
        old_order = sorted(stayed, key=lambda step_id: before[step_id].position)
        new_order = sorted(stayed, key=lambda step_id: after[step_id].position)
        kept = _longest_common_order(old_order, new_order)
        moved |= set(stayed) - kept
    return [step_id for step_id in after if step_id in moved]


def _longest_common_order(first: list[str], second: list[str]) -> set[str]:
    """The longest run of ids in the same order in both lists: those did not move (a branch holds at
    most 200 steps, so the quadratic table is small)."""
    lengths = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            lengths[i + 1][j + 1] = lengths[i][j] + 1 if a == b else max(lengths[i][j + 1], lengths[i + 1][j])
    kept, i, j = set(), len(first), len(second)
    while i and j:
        if first[i - 1] == second[j - 1]:
            kept.add(first[i - 1])
            i, j = i - 1, j - 1
        elif lengths[i - 1][j] >= lengths[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return kept


def _entry(step_id: str, placed: Placed) -> dict[str, Any]:
    return {"step_id": step_id, "type": placed.fields.get("type"), "path": placed.path}
