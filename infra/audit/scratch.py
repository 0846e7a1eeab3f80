"""A throwaway event store on the same PostgreSQL server, for tamper drills and tests.

Tampering with the shared store would break everyone else's history; a drill builds its own
database, writes a scenario into it through the real applications, tampers, verifies, and drops
it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.sql import SQL, Identifier

from infra.settings import Settings


@contextmanager
def scratch_database(settings: Settings, prefix: str = "iconmarket_audit") -> Iterator[Settings]:
    """Create ``{prefix}_{random}``, yield ``settings`` pointing at it, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(SQL("CREATE DATABASE {name}").format(name=Identifier(name)))
    try:
        yield dataclasses.replace(settings, postgres_db=name)
    finally:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
            conn.execute(
                SQL("DROP DATABASE IF EXISTS {name} WITH (FORCE)").format(name=Identifier(name))
            )
