"""Step kinds: one module each, found through `HANDLERS` by the step's `type`.

A handler is pure: given the step, when the run entered it and `now`, it returns a
decision. The interpreter turns decisions into a walk over the journey.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.steps import exit, send, wait
from engine.steps.decisions import Decision

Handler = Callable[[Any, datetime, datetime], Decision]

HANDLERS: dict[str, Handler] = {
    "wait": wait.decide,
    "send": send.decide,
    "exit": exit.decide,
}
