"""The import worker: a consumer-runner handler that processes each requested zip batch import.

For every ``IconImport.ImportRequested`` of a batch it runs `ZipImporter.process`: the staged
zip is read and checked, its icons are created and the report recorded (or the zip's refusal),
then the staged zip is deleted. Other events are ignored.

Delivery is at-least-once and processing is idempotent: every command of an import carries an
idempotency key derived from the import id, so a redelivered request (the worker killed before
its commit, a retried batch) replays what was done, and an import already done or refused is
left as it is. A dependency that is down (PostgreSQL, S3, a command past its deadline) raises a
transient failure, which the runner waits out with capped backoff, never dead-lettering it;
the import stays pending meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from pipelines.import_batch import ZipImporter
from stream.consumer import Delivery
from stream.metrics import counter

log = logging.getLogger("iconmarket.imports")

REQUESTED = "IconImport.ImportRequested"
GROUP_ID = "zip-imports"

IMPORTS = counter(
    "iconmarket_zip_imports",
    "Zip batch imports handled by the import worker, by outcome (done, refused, skipped).",
    ["outcome"],
)


@dataclass
class ImportWorker:
    """The handler: process every requested import of the batch, in order."""

    importer: ZipImporter

    def __call__(self, deliveries: Sequence[Delivery], /) -> None:
        for delivery in deliveries:
            event = delivery.event
            if event.type != REQUESTED:
                continue
            import_id = UUID(event.aggregate_id)
            found = self.importer.process(import_id)
            if found is None:
                # Not in this event store (a topic shared with another store): nothing to do.
                log.warning("requested import not found", extra={"import_id": str(import_id)})
                IMPORTS.labels("skipped").inc()
                continue
            IMPORTS.labels(found.status.value).inc()
            log.info(
                "zip import processed",
                extra={
                    "import_id": str(import_id),
                    "status": found.status.value,
                    "icons_created": len(found.created),
                    "files_rejected": len(found.rejected),
                },
            )
