"""Installing the trigger library's recipes into a workspace: every one installs, with templates that ship."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import JourneyConflict
from engine.workspaces.accounts import create_workspace
from tests.conftest import SEED_TEMPLATES, FakeClock
from triggers import install
from triggers.library import RECIPES
from workers.dev.demo import create_demo_workspace

ROOT = Path(install.__file__).resolve().parents[1]
REQUIRED_OPTIONS = {"holiday_greeting": {"dates": ["12-25"]}}


def test_every_recipe_installs_and_each_template_it_sends_ships_with_rapport(
    sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    """All recipes install side by side into one workspace; each template they name is a folder in templates/."""
    credentials = create_workspace_for_test(sessions, clock)
    with sessions.begin() as session:
        for slug in RECIPES:
            saved = install.install_recipe(session, credentials, slug, options=REQUIRED_OPTIONS.get(slug),
                                           templates=SEED_TEMPLATES, now=clock())
            assert saved.journey.recipe == slug and saved.journey.status == "draft"
            used = install.templates_used(saved.journey.draft or {}, templates=SEED_TEMPLATES, workspace_id=credentials)
            assert used, slug
            for template in used:
                assert (ROOT / template["path"]).is_dir(), template


def test_the_demo_workspace_already_has_the_abandoned_cart_recipe(sessions: sessionmaker[Session],
                                                                 clock: FakeClock) -> None:
    """Installing abandoned_cart into the demo workspace names its demo journey instead of doubling reminders."""
    with sessions.begin() as session:
        credentials = create_demo_workspace(session, "Demo", now=clock())
    with sessions.begin() as session, pytest.raises(JourneyConflict, match="already installed as journey"):
        install.install_recipe(session, credentials.workspace_id, "abandoned_cart", templates=SEED_TEMPLATES,
                               now=clock())


def create_workspace_for_test(sessions: sessionmaker[Session], clock: FakeClock) -> str:
    with sessions.begin() as session:
        return create_workspace(session, "Recipe Shop", now=clock()).workspace_id
