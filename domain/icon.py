"""The Icon aggregate: one sellable SVG icon, its media records and its publication life cycle."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import event

from domain.choices import parse_choice
from domain.errors import ErrorCode, InvariantViolated, NotFound
from domain.media import (
    Derivative,
    DerivativeData,
    MediaFormat,
    RenderRefusal,
    RenderRefusalData,
    SvgOriginal,
    SvgOriginalData,
)
from domain.money import Money, MoneyData
from domain.products import Licence
from domain.publication import PublicationStatus, check_publication_transition
from domain.text import clean_labels, clean_name
from domain.traced_aggregate import TracedAggregate

VECTOR_FORMATS = frozenset({MediaFormat.SVG, MediaFormat.PDF})


@dataclass(frozen=True, slots=True)
class IconFile:
    """One downloadable file of an icon: its format, pixel size (None for vector formats),
    object-store key and byte count."""

    format: MediaFormat
    size: int | None
    key: str
    size_bytes: int


class Icon(TracedAggregate):
    """An icon in a set. ``svg_revision`` counts recorded originals (0 until the first upload).

    It can be published once its original has derivatives rendered from the current content
    hash; a revised SVG invalidates them until new ones are recorded. A retired icon stays (for
    its buyers) but can no longer be edited, published or sold.
    """

    class Created(TracedAggregate.Created):
        set_id: UUID
        family_id: UUID
        owner_id: str
        name: str
        tags: list[str]
        categories: list[str]
        price: MoneyData
        licence: str

    class DetailsUpdated(TracedAggregate.Event):
        name: str
        tags: list[str]
        categories: list[str]

    class PriceChanged(TracedAggregate.Event):
        price: MoneyData

    class LicenceChanged(TracedAggregate.Event):
        licence: str

    class OriginalRecorded(TracedAggregate.Event):
        """The first original (schema version 2 added ``original.render_cost``)."""

        class_version = 2

        original: SvgOriginalData

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["original"] = {**state["original"], "render_cost": None}

    class SvgRevised(TracedAggregate.Event):
        """A later original (schema version 2 added ``original.render_cost``)."""

        class_version = 2

        original: SvgOriginalData
        svg_revision: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["original"] = {**state["original"], "render_cost": None}

    class DerivativesRecorded(TracedAggregate.Event):
        """Renderings of the original with ``source_hash`` and their lineage: the renderer
        version, the parameters it ran with, and the public watermarked preview's key."""

        class_version = 2

        source_hash: str
        renderer_version: str
        items: list[DerivativeData]
        parameters: dict[str, int | str]
        preview_key: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["parameters"] = {}
            state["preview_key"] = None

    class RenderRefused(TracedAggregate.Event):
        """The media workers quarantined the original with ``source_hash``: rendering it with
        ``renderer_version`` failed or took longer than its deadline (``code``, ``detail``),
        and it is not rendered again. The icon cannot be published until another original
        renders."""

        refusal: RenderRefusalData

    class Published(TracedAggregate.Event):
        pass

    class Unpublished(TracedAggregate.Event):
        pass

    class Retired(TracedAggregate.Event):
        pass

    @classmethod
    def create(
        cls,
        *,
        set_id: UUID,
        family_id: UUID,
        owner_id: str,
        name: str,
        tags: Iterable[str] = (),
        categories: Iterable[str] = (),
        price: Money,
        licence: Licence = Licence.STANDARD,
        actor: str,
        correlation_id: str,
    ) -> Self:
        return cls(
            set_id=set_id,
            family_id=family_id,
            owner_id=owner_id,
            name=clean_name(name),
            tags=clean_labels(tags),
            categories=clean_labels(categories),
            price=price.to_data(),
            licence=parse_choice(Licence, licence).value,
            actor=actor,
            correlation_id=correlation_id,
        )

    @event(Created)
    def __init__(
        self,
        *,
        set_id: UUID,
        family_id: UUID,
        owner_id: str,
        name: str,
        tags: list[str],
        categories: list[str],
        price: MoneyData,
        licence: str,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._set_id = set_id
        self._family_id = family_id
        self._owner_id = owner_id
        self._name = name
        self._tags = list(tags)
        self._categories = list(categories)
        self._price = price
        self._licence = licence
        self._status = PublicationStatus.DRAFT.value
        self._original: SvgOriginalData | None = None
        self._svg_revision = 0
        self._derivatives: list[DerivativeData] = []
        self._derivatives_source_hash: str | None = None
        self._renderer_version: str | None = None
        self._render_parameters: dict[str, int | str] = {}
        self._preview_key: str | None = None
        self._render_refusal: RenderRefusalData | None = None

    @property
    def set_id(self) -> UUID:
        return self._set_id

    @property
    def family_id(self) -> UUID:
        return self._family_id

    @property
    def owner_id(self) -> str:
        return self._owner_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._tags)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self._categories)

    @property
    def price(self) -> Money:
        return Money.from_data(self._price)

    @property
    def is_free(self) -> bool:
        return self.price.is_zero

    @property
    def licence(self) -> Licence:
        return Licence(self._licence)

    @property
    def status(self) -> PublicationStatus:
        return PublicationStatus(self._status)

    @property
    def original(self) -> SvgOriginal | None:
        return None if self._original is None else SvgOriginal.from_data(self._original)

    @property
    def svg_revision(self) -> int:
        return self._svg_revision

    @property
    def derivatives(self) -> tuple[Derivative, ...]:
        """The derivatives of the current original (empty while they are being re-rendered)."""
        if not self.has_current_derivatives:
            return ()
        return tuple(Derivative.from_data(item) for item in self._derivatives)

    @property
    def renderer_version(self) -> str | None:
        return self._renderer_version if self.has_current_derivatives else None

    @property
    def render_parameters(self) -> dict[str, int | str]:
        return dict(self._render_parameters) if self.has_current_derivatives else {}

    @property
    def preview_key(self) -> str | None:
        """The public watermarked preview of the current original, once rendered."""
        return self._preview_key if self.has_current_derivatives else None

    @property
    def render_refusal(self) -> RenderRefusal | None:
        """Why the current original will not be rendered (quarantined), if it will not."""
        refusal = self._render_refusal
        if refusal is None or self._original is None:
            return None
        if refusal["source_hash"] != self._original["content_hash"]:
            return None
        return RenderRefusal.from_data(refusal)

    @property
    def has_current_derivatives(self) -> bool:
        return self._original is not None and (
            self._derivatives_source_hash == self._original["content_hash"]
        )

    @property
    def is_publishable(self) -> bool:
        return self.has_current_derivatives

    @property
    def sellable(self) -> bool:
        return self.status is PublicationStatus.PUBLISHED and self.has_current_derivatives

    def file_for(self, format: str, size: int | None = None) -> IconFile:
        """The file of the current original in ``format``: the SVG original itself, or a
        derivative (``size`` picks the raster edge, default the largest; vector formats ignore
        it). Raises NotFound when the icon has no such file."""
        wanted = parse_choice(MediaFormat, format)
        if wanted is MediaFormat.SVG:
            original = self.original
            if original is None:
                raise NotFound(ErrorCode.FORMAT_UNAVAILABLE, "the icon has no SVG original yet")
            return IconFile(wanted, None, original.key, original.size_bytes)
        found = sorted(
            (d for d in self.derivatives if d.kind is wanted), key=lambda d: d.size, reverse=True
        )
        if wanted not in VECTOR_FORMATS and size is not None:
            found = [d for d in found if d.size == size]
        if not found:
            sizes = sorted(d.size for d in self.derivatives if d.kind is wanted)
            raise NotFound(
                ErrorCode.FORMAT_UNAVAILABLE,
                f"no {wanted.value} at size {size} (available sizes: {sizes})",
            )
        chosen = found[0]
        edge = None if wanted in VECTOR_FORMATS else chosen.size
        return IconFile(wanted, edge, chosen.key, chosen.size_bytes)

    def update_details(
        self,
        *,
        name: str,
        tags: Iterable[str],
        categories: Iterable[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._check_not_retired()
        self._details_updated(
            name=clean_name(name),
            tags=clean_labels(tags),
            categories=clean_labels(categories),
            actor=actor,
            correlation_id=correlation_id,
        )

    def change_price(self, *, price: Money, actor: str, correlation_id: str) -> None:
        self._check_not_retired()
        self._price_changed(price=price.to_data(), actor=actor, correlation_id=correlation_id)

    def change_licence(self, *, licence: Licence, actor: str, correlation_id: str) -> None:
        self._check_not_retired()
        self._licence_changed(
            licence=parse_choice(Licence, licence).value,
            actor=actor,
            correlation_id=correlation_id,
        )

    def record_original(self, *, original: SvgOriginal, actor: str, correlation_id: str) -> None:
        self._check_not_retired()
        self._check_no_original()
        self._original_recorded(
            original=original.to_data(), actor=actor, correlation_id=correlation_id
        )

    def revise_svg(self, *, original: SvgOriginal, actor: str, correlation_id: str) -> None:
        self._check_not_retired()
        self._check_has_original()
        self._check_svg_changed(original)
        self._svg_revised(
            original=original.to_data(),
            svg_revision=self._svg_revision + 1,
            actor=actor,
            correlation_id=correlation_id,
        )

    def record_derivatives(
        self,
        *,
        source_hash: str,
        renderer_version: str,
        items: Sequence[Derivative],
        parameters: Mapping[str, int | str] | None = None,
        preview_key: str | None = None,
        actor: str,
        correlation_id: str,
    ) -> None:
        """Records renderings of the original with ``source_hash``; replaces earlier ones.

        Recording exactly what is already recorded records nothing (a redelivered rendering).
        Allowed on a retired icon: its buyers still download it.
        """
        self._check_has_original()
        self._check_source_is_current(source_hash)
        self._check_has_items(items)
        data = [item.to_data() for item in items]
        params = dict(parameters or {})
        if self._is_recorded(source_hash, renderer_version, data, params, preview_key):
            return
        self._derivatives_recorded(
            source_hash=source_hash,
            renderer_version=renderer_version,
            items=data,
            parameters=params,
            preview_key=preview_key,
            actor=actor,
            correlation_id=correlation_id,
        )

    def record_render_refusal(
        self, *, refusal: RenderRefusal, actor: str, correlation_id: str
    ) -> None:
        """Quarantines the current original: the media workers will not render it again.

        Recording the refusal already recorded records nothing (a redelivered failure); a
        refusal of an original revised since is stale. Allowed on a retired icon, like
        derivatives.
        """
        self._check_has_original()
        self._check_source_is_current(refusal.source_hash)
        if self._render_refusal == refusal.to_data():
            return
        self._render_refused(refusal=refusal.to_data(), actor=actor, correlation_id=correlation_id)

    def _is_recorded(
        self,
        source_hash: str,
        renderer_version: str,
        items: list[DerivativeData],
        parameters: dict[str, int | str],
        preview_key: str | None,
    ) -> bool:
        return (
            self._derivatives_source_hash == source_hash
            and self._renderer_version == renderer_version
            and self._derivatives == items
            and self._render_parameters == parameters
            and self._preview_key == preview_key
        )

    def publish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.PUBLISHED)
        self._check_publishable()
        self._published(actor=actor, correlation_id=correlation_id)

    def unpublish(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.UNPUBLISHED)
        self._unpublished(actor=actor, correlation_id=correlation_id)

    def retire(self, *, actor: str, correlation_id: str) -> None:
        self._check_transition(PublicationStatus.RETIRED)
        self._retired(actor=actor, correlation_id=correlation_id)

    def _check_transition(self, target: PublicationStatus) -> None:
        check_publication_transition("Icon", self.status, target)

    def _check_not_retired(self) -> None:
        if self.status is PublicationStatus.RETIRED:
            raise InvariantViolated(ErrorCode.ICON_RETIRED, "a retired icon cannot be changed")

    def _check_no_original(self) -> None:
        if self._original is not None:
            raise InvariantViolated(
                ErrorCode.ORIGINAL_ALREADY_RECORDED, "use revise_svg to replace the original"
            )

    def _check_has_original(self) -> None:
        if self._original is None:
            raise InvariantViolated(ErrorCode.ORIGINAL_MISSING, "no SVG original recorded yet")

    def _check_svg_changed(self, original: SvgOriginal) -> None:
        if self._original is not None and (original.content_hash == self._original["content_hash"]):
            raise InvariantViolated(
                ErrorCode.SVG_UNCHANGED, "the revised SVG has the current content hash"
            )

    def _check_source_is_current(self, source_hash: str) -> None:
        if self._original is not None and source_hash != self._original["content_hash"]:
            raise InvariantViolated(
                ErrorCode.STALE_DERIVATIVES,
                f"derivatives of {source_hash!r} do not match the current original",
            )

    def _check_has_items(self, items: Sequence[Derivative]) -> None:
        if not items:
            raise InvariantViolated(ErrorCode.DERIVATIVES_EMPTY, "no derivatives given")

    def _check_publishable(self) -> None:
        if not self.is_publishable:
            raise InvariantViolated(
                ErrorCode.ICON_NOT_PUBLISHABLE,
                "an icon needs an original and derivatives of it to be published",
            )

    @event(DetailsUpdated)
    def _details_updated(
        self,
        *,
        name: str,
        tags: list[str],
        categories: list[str],
        actor: str,
        correlation_id: str,
    ) -> None:
        self._name = name
        self._tags = list(tags)
        self._categories = list(categories)

    @event(PriceChanged)
    def _price_changed(self, *, price: MoneyData, actor: str, correlation_id: str) -> None:
        self._price = price

    @event(LicenceChanged)
    def _licence_changed(self, *, licence: str, actor: str, correlation_id: str) -> None:
        self._licence = licence

    @event(OriginalRecorded)
    def _original_recorded(
        self, *, original: SvgOriginalData, actor: str, correlation_id: str
    ) -> None:
        self._original = original
        self._svg_revision = 1
        self._render_refusal = None

    @event(SvgRevised)
    def _svg_revised(
        self, *, original: SvgOriginalData, svg_revision: int, actor: str, correlation_id: str
    ) -> None:
        self._original = original
        self._svg_revision = svg_revision
        self._derivatives = []
        self._derivatives_source_hash = None
        self._renderer_version = None
        self._render_parameters = {}
        self._preview_key = None
        self._render_refusal = None

    @event(DerivativesRecorded)
    def _derivatives_recorded(
        self,
        *,
        source_hash: str,
        renderer_version: str,
        items: list[DerivativeData],
        parameters: dict[str, int | str],
        preview_key: str | None,
        actor: str,
        correlation_id: str,
    ) -> None:
        self._derivatives = list(items)
        self._derivatives_source_hash = source_hash
        self._renderer_version = renderer_version
        self._render_parameters = dict(parameters)
        self._preview_key = preview_key
        self._render_refusal = None

    @event(RenderRefused)
    def _render_refused(
        self, *, refusal: RenderRefusalData, actor: str, correlation_id: str
    ) -> None:
        self._render_refusal = refusal

    @event(Published)
    def _published(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.PUBLISHED.value

    @event(Unpublished)
    def _unpublished(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.UNPUBLISHED.value

    @event(Retired)
    def _retired(self, *, actor: str, correlation_id: str) -> None:
        self._status = PublicationStatus.RETIRED.value
