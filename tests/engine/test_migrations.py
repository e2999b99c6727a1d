"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from engine.models import Base


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_the_migrated_database_matches_the_models(db_engine: Engine) -> None:
    """No table, column or index of the models is missing from the migrations, nor the reverse.

    Expression indexes (the messenger-id lookups on PostgreSQL) cannot be compared this way:
    tests/engine/test_contact_lookups.py checks that the lookups use them."""
    with db_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert differences == []
