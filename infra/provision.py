"""Create what the app expects to exist in its services (idempotent): tables, topics, buckets."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from infra.bootstrap import Container
from stream.topics import all_topics

Report = Callable[[str], None]


def ensure_topics(container: Container, report: Report) -> None:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = container.kafka_admin()
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in all_topics() if topic not in existing]
        if missing:
            partitions = container.settings.kafka_partitions
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(topic, partitions, 1) for topic in missing], timeout_ms=10_000
                )
            report(f"kafka: created topics {', '.join(missing)}")
    finally:
        admin.close()


def ensure_buckets(container: Container, report: Report) -> None:
    s = container.settings
    existing = {bucket["Name"] for bucket in container.s3.list_buckets().get("Buckets", [])}
    for bucket in (s.s3_bucket_private, s.s3_bucket_public):
        if bucket not in existing:
            container.s3.create_bucket(Bucket=bucket)
            report(f"s3: created bucket {bucket}")


def ensure_event_store(container: Container, report: Report) -> None:
    """Building the applications creates their tables (events, idempotency keys) if missing."""
    apps = container.applications
    report(f"event store: {', '.join(app.name.lower() + '_events' for app in apps.all())} ready")


def ensure_catalog_index(container: Container, report: Report) -> None:
    """The catalog alias and its first index, so queries work before anything is projected."""
    from projections.catalog_alias import CATALOG_ALIAS, ensure_live_index, live_index

    if live_index(container.opensearch, CATALOG_ALIAS) is None:
        report(f"opensearch: created {ensure_live_index(container.opensearch, CATALOG_ALIAS)}")


def ensure_audit_chain(container: Container, report: Report) -> None:
    """The audit-read log's table, the checkpoints table, and a hash for every event written
    before the tamper-evidence chain existed (see docs/audit.md)."""
    if container.settings.event_store != "postgres":
        return
    from infra.audit.chain import seal_all

    logs = [*container.applications.all(), container.audit_application]
    seal_all(container.settings.postgres_dsn, [app.context for app in logs], report)


def provision(container: Container, report: Report) -> None:
    ensure_event_store(container, report)
    ensure_audit_chain(container, report)
    ensure_topics(container, report)
    ensure_buckets(container, report)
    ensure_catalog_index(container, report)
