"""The upload path of one SVG: check the actor, sanitise, store the original, record it.

Order matters: the owner check and the SVG policy run before anything is written, so a refused
upload leaves no object and no event. The original goes to a content-addressed key in the
private bucket (an existing object is not written again); then ``RecordOriginal`` (first upload)
or ``ReviseSvg`` (later uploads) appends the event with its hash, size and dimensions.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from uuid import UUID

from commands import messages as m
from commands.applications import Applications
from commands.bus import CommandBus
from commands.errors import IdempotencyKeyReused
from commands.handlers.common import authorize
from commands.policy import Action
from commands.results import CommandContext, CommandResult
from commands.unit_of_work import UnitOfWork
from domain.errors import ErrorCode, InvariantViolated
from domain.icon import Icon
from domain.publication import PublicationStatus
from pipelines.errors import MediaRefused, RefusalCode
from pipelines.object_store import ObjectNotFound, ObjectStore
from pipelines.svg_policy import SVG_MEDIA_TYPE, SanitisedSvg, SvgLimits, sanitise_svg

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def original_message(svg: SanitisedSvg) -> m.SvgOriginal:
    """What a command records of a stored, sanitised original."""
    return m.SvgOriginal(
        key=svg.key,
        content_hash=svg.content_hash,
        size_bytes=svg.size_bytes,
        width=svg.width,
        height=svg.height,
        render_cost=svg.render_cost,
    )


@dataclass(frozen=True)
class PresignedUpload:
    """Where a client POSTs a large SVG (a form: ``fields``, then the file), at most
    ``max_bytes`` of it, and the id to complete the upload with."""

    upload_id: str
    url: str
    fields: dict[str, str]
    expires_in_s: int
    max_bytes: int
    content_type: str = SVG_MEDIA_TYPE


@dataclass(frozen=True)
class StoredSvg:
    """An upload's outcome: the command result and the stored original."""

    result: CommandResult
    svg: SanitisedSvg


STAGING_PREFIX = "incoming/"


def incoming_key(icon_id: UUID, upload_id: str) -> str:
    """The private staging key of a presigned upload (deleted once it is completed)."""
    return f"{STAGING_PREFIX}{icon_id}/{upload_id}.svg"


@dataclass
class SvgIngestion:
    """Sanitise-and-store for icon uploads (direct and presigned) and zip imports."""

    apps: Applications
    bus: CommandBus
    store: ObjectStore
    limits: SvgLimits
    upload_url_ttl_s: int = 900

    def upload(self, icon_id: UUID, raw: bytes, ctx: CommandContext) -> StoredSvg:
        """Store ``raw`` as the icon's SVG; raises `MediaRefused` (nothing written) on refusal."""
        icon = self.editable_icon(icon_id, ctx)
        svg = sanitise_svg(raw, self.limits)
        self.store_original(svg)
        return StoredSvg(self.record(icon, svg, ctx), svg)

    def presign(self, icon_id: UUID, ctx: CommandContext) -> PresignedUpload:
        """A presigned form upload to a private staging key, which the object store takes only
        up to the SVG size limit; complete it with `complete`. A staged object never completed
        is removed by `sweep_staged` once its URL has expired."""
        self.editable_icon(icon_id, ctx)
        upload_id = uuid.uuid4().hex
        post = self.store.presigned_post(
            incoming_key(icon_id, upload_id),
            expires_s=self.upload_url_ttl_s,
            content_type=SVG_MEDIA_TYPE,
            max_bytes=self.limits.max_bytes,
        )
        return PresignedUpload(
            upload_id, post.url, post.fields, self.upload_url_ttl_s, self.limits.max_bytes
        )

    def sweep_staged(self, grace_s: float = 60.0) -> int:
        """Delete every staged upload older than its URL's lifetime plus ``grace_s`` (one that
        was never completed: `complete` deletes its own). Returns how many were deleted."""
        stale = self.store.keys_older_than(STAGING_PREFIX, self.upload_url_ttl_s + grace_s)
        for key in stale:
            self.store.delete(key)
        return len(stale)

    def complete(self, icon_id: UUID, upload_id: str, ctx: CommandContext) -> StoredSvg:
        """Sanitise the staged object exactly like a direct upload, then drop the staged copy."""
        icon = self.editable_icon(icon_id, ctx)
        if not _UPLOAD_ID.match(upload_id):
            raise MediaRefused(RefusalCode.UPLOAD_MISSING, "an upload id is 32 hex digits")
        key = incoming_key(icon_id, upload_id)
        try:
            raw = self.store.get_bytes(key, max_bytes=self.limits.max_bytes)
        except ObjectNotFound:
            raise MediaRefused(
                RefusalCode.UPLOAD_MISSING, "nothing was uploaded to this upload's URL"
            ) from None
        try:
            svg = sanitise_svg(raw, self.limits)
        finally:
            self.store.delete(key)
        self.store_original(svg)
        return StoredSvg(self.record(icon, svg, ctx), svg)

    def editable_icon(self, icon_id: UUID, ctx: CommandContext) -> Icon:
        """The icon, if ``ctx``'s actor may change its SVG (raises otherwise, writing nothing)."""
        icon = UnitOfWork.read(self.apps.catalog, Icon, icon_id)
        authorize(ctx, Action.ICON_UPDATE, "icon", icon.owner_id)
        if icon.status is PublicationStatus.RETIRED:
            raise InvariantViolated(ErrorCode.ICON_RETIRED, "a retired icon cannot be changed")
        return icon

    def store_original(self, svg: SanitisedSvg) -> None:
        if not self.store.exists(svg.key):
            self.store.put_bytes(svg.key, svg.data, content_type=SVG_MEDIA_TYPE)

    def record(self, icon: Icon, svg: SanitisedSvg, ctx: CommandContext) -> CommandResult:
        """Append OriginalRecorded (first upload) or SvgRevised (later ones)."""
        original = original_message(svg)
        first = m.RecordOriginal(icon_id=icon.id, original=original)
        later = m.ReviseSvg(icon_id=icon.id, original=original)
        primary, other = (first, later) if icon.original is None else (later, first)
        try:
            return self.bus.execute(primary, ctx)
        except IdempotencyKeyReused:
            if ctx.idempotency_key is None:
                raise
            # A repeat of a request whose key recorded the other kind (e.g. a retried first
            # upload, now that the original exists): the bus replays that one's result.
            return self.bus.execute(other, ctx)


def with_key(ctx: CommandContext, key: str) -> CommandContext:
    """``ctx`` with its own idempotency key (one per step of a batch) and no version guard."""
    return dataclasses.replace(ctx, idempotency_key=key, expected_version=None)
