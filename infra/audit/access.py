"""The record of audit reads: its own event log (``audit_events``), chained like the others.

Every audit endpoint call appends one ``AuditAccess.Recorded`` event before it answers. The log
is a fourth application beside catalog, commerce and identity, not published on Kafka (it is
for auditors of the auditors, not a contract for analysts), and `audit verify` checks it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from commands.applications import ContextApplication, persistence_env
from domain.audit_access import AuditAccess
from infra.settings import Settings

AUDIT_CONTEXT = "audit"


class AuditApplication(ContextApplication):
    name = "Audit"
    context = AUDIT_CONTEXT


AUDIT_POOL_SIZE = "2"


def build_audit_application(settings: Settings | None) -> AuditApplication:
    """On PostgreSQL from ``settings``; in memory when ``settings`` is None. Audit reads are
    few, so its connection pool is small (each process that serves one opens it)."""
    env = persistence_env(settings)
    if settings is not None:
        env = {
            **env,
            "POSTGRES_POOL_SIZE": AUDIT_POOL_SIZE,
            "POSTGRES_MAX_OVERFLOW": AUDIT_POOL_SIZE,
        }
    return AuditApplication(env=env)


def record_access(
    app: AuditApplication,
    *,
    actor: str,
    roles: frozenset[str],
    operation: str,
    target: str,
    parameters: Mapping[str, object],
    correlation_id: str,
) -> int:
    """Append one read's record; returns its position in the audit log."""
    access = AuditAccess.record(
        operation=operation,
        target=target,
        parameters={key: str(value) for key, value in parameters.items() if value is not None},
        roles=sorted(roles),
        actor=actor,
        correlation_id=correlation_id,
    )
    recordings = app.save(access)
    return recordings[-1].notification.id
