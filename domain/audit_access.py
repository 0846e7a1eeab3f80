"""The AuditAccess aggregate: one audit read (who looked at what, when), recorded as it happens."""

from typing import Self

from eventsourcing.domain import event

from domain.traced_aggregate import TracedAggregate


class AuditAccess(TracedAggregate):
    """One per audit read. ``operation`` names the endpoint, ``target`` what it read (an
    aggregate id, or ``log``), ``parameters`` the query as given; ``actor`` is the auditor."""

    class Recorded(TracedAggregate.Created):
        operation: str
        target: str
        parameters: dict[str, str]
        roles: list[str]

    @classmethod
    def record(
        cls,
        *,
        operation: str,
        target: str,
        parameters: dict[str, str],
        roles: list[str],
        actor: str,
        correlation_id: str,
    ) -> Self:
        return cls(
            operation=operation,
            target=target,
            parameters=dict(sorted(parameters.items())),
            roles=sorted(roles),
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Recorded)
    def __init__(
        self,
        *,
        operation: str,
        target: str,
        parameters: dict[str, str],
        roles: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._operation = operation
        self._target = target
        self._parameters = dict(parameters)
        self._roles = list(roles)

    @property
    def operation(self) -> str:
        return self._operation

    @property
    def target(self) -> str:
        return self._target
