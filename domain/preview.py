"""Grid previews of a set's or a family's icons, recorded on the set or family."""

from typing import TypedDict
from uuid import UUID

from domain.errors import ErrorCode, InvalidValue


class PreviewState(TypedDict):
    """A recorded grid preview, as held in set and family state."""

    key: str
    member_hash: str
    icon_ids: list[UUID]


def check_preview(key: str, member_hash: str, icon_ids: list[UUID]) -> None:
    if not key or not member_hash or not icon_ids:
        raise InvalidValue(
            ErrorCode.INVALID_PREVIEW, "a preview needs a key, a member hash and its icons"
        )


class Previewed:
    """The preview half of `IconSet` and `Family`; each declares its own ``PreviewRecorded``
    event and the ``_preview_recorded`` method that applies it."""

    _preview: PreviewState | None

    @property
    def preview_key(self) -> str | None:
        return None if self._preview is None else self._preview["key"]

    @property
    def preview_members(self) -> tuple[UUID, ...]:
        return () if self._preview is None else tuple(self._preview["icon_ids"])

    def record_preview(
        self, *, key: str, member_hash: str, icon_ids: list[UUID], actor: str, correlation_id: str
    ) -> None:
        """Records a composed preview; the same members recorded again record nothing."""
        check_preview(key, member_hash, icon_ids)
        if self._preview is not None and self._preview["member_hash"] == member_hash:
            return
        self._preview_recorded(
            key=key,
            member_hash=member_hash,
            icon_ids=list(icon_ids),
            actor=actor,
            correlation_id=correlation_id,
        )

    def _preview_recorded(
        self, *, key: str, member_hash: str, icon_ids: list[UUID], actor: str, correlation_id: str
    ) -> None:
        raise NotImplementedError
