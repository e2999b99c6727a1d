"""The hand-written OpenAPI description: valid, and in step with the /api/v1 routes."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from webapp.api import (
    channels as channels_api,
)
from webapp.api import (
    contacts as api,
)
from webapp.api import (
    dead_letters as dead_letters_api,
)
from webapp.api import (
    journey_drafts as journey_drafts_api,
)
from webapp.api import (
    journeys as journeys_api,
)
from webapp.api import (
    provider_webhooks,
    shop_webhooks,
)
from webapp.api import (
    templates as templates_api,
)
from webapp.api.openapi import SPEC

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_spec_is_valid_openapi_3_1() -> None:
    """SPEC passes openapi-spec-validator's OpenAPI 3.1 checks."""
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(SPEC, cls=validator.OpenAPIV31SpecValidator)


def test_spec_paths_match_api_routes() -> None:
    """Every /api/v1 route and method in the blueprints is in SPEC, and SPEC documents no others."""
    app = Flask(__name__)
    for blueprint in (api.bp, journeys_api.bp, journey_drafts_api.bp, journeys_api.recipes_bp, shop_webhooks.bp,
                      channels_api.bp, provider_webhooks.bp, dead_letters_api.bp, templates_api.bp):
        app.register_blueprint(blueprint)
    routes = {
        (re.sub(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) & METHODS
    }
    documented = {
        (path, method)
        for path, item in SPEC["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method.upper() in METHODS
    }
    assert routes, "no /api/v1 routes found"
    assert routes - documented == set(), "routes missing from SPEC"
    assert documented - routes == set(), "SPEC documents routes that do not exist"
