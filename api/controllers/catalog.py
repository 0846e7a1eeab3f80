"""Catalog management for contributors: families, sets and icons."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, patch, post, put
from litestar.params import FromPath, JSONBody

from api.commanding import CommandAccepted, dispatch
from api.contract import facts
from api.controllers.catalog_queries import FamilyQueries, IconQueries, SetQueries
from api.controllers.deps import ContainerDep
from api.schemas import (
    FamilyBody,
    IconBody,
    IconPatch,
    IconSetBody,
    IconSetPatch,
    LicenceBody,
    MoneyBody,
    PriceBody,
)
from commands import messages as m

Req = Request[Any, Any, Any]
Accepted = Response[CommandAccepted]


def _money(body: MoneyBody) -> m.Money:
    return m.Money(amount_minor=body.amount_minor, currency=body.currency)


class FamilyController(FamilyQueries):
    path = "/v1/families"
    tags = ["catalog"]  # noqa: RUF012

    @post(
        "/",
        operation_id="createFamily",
        opt=facts(creates="family"),
        status_code=201,
        summary="Create a family.",
    )
    async def create(
        self, request: Req, container: ContainerDep, data: JSONBody[FamilyBody]
    ) -> Accepted:
        command = m.CreateFamily(
            name=data.name,
            description=data.description,
            categories=tuple(data.categories),
            tags=tuple(data.tags),
        )
        return await dispatch(request, container, command, status_code=201)

    @patch(
        "/{family_id:uuid}",
        operation_id="updateFamily",
        status_code=202,
        summary="Replace a family's details.",
    )
    async def update(
        self,
        request: Req,
        container: ContainerDep,
        family_id: FromPath[UUID],
        data: JSONBody[FamilyBody],
    ) -> Accepted:
        command = m.UpdateFamily(
            family_id=family_id,
            name=data.name,
            description=data.description,
            categories=tuple(data.categories),
            tags=tuple(data.tags),
        )
        return await dispatch(request, container, command)

    @post(
        "/{family_id:uuid}/publish",
        operation_id="publishFamily",
        status_code=202,
        summary="Publish a family.",
    )
    async def publish(
        self, request: Req, container: ContainerDep, family_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.PublishFamily(family_id=family_id))

    @post(
        "/{family_id:uuid}/unpublish",
        operation_id="unpublishFamily",
        status_code=202,
        summary="Withdraw a family from the catalog.",
    )
    async def unpublish(
        self, request: Req, container: ContainerDep, family_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.UnpublishFamily(family_id=family_id))

    @post(
        "/{family_id:uuid}/sets",
        operation_id="createIconSet",
        opt=facts(creates="set"),
        status_code=201,
        summary="Create a set in a family.",
    )
    async def create_set(
        self,
        request: Req,
        container: ContainerDep,
        family_id: FromPath[UUID],
        data: JSONBody[IconSetBody],
    ) -> Accepted:
        command = m.CreateIconSet(
            family_id=family_id,
            name=data.name,
            style=data.style,
            bundle_price=_money(data.bundle_price) if data.bundle_price else None,
        )
        return await dispatch(request, container, command, status_code=201)


class IconSetController(SetQueries):
    path = "/v1/sets"
    tags = ["catalog"]  # noqa: RUF012

    @patch(
        "/{set_id:uuid}",
        operation_id="updateIconSet",
        status_code=202,
        summary="Rename, restyle or reprice a set.",
    )
    async def update(
        self,
        request: Req,
        container: ContainerDep,
        set_id: FromPath[UUID],
        data: JSONBody[IconSetPatch],
    ) -> Accepted:
        command = m.UpdateIconSet(
            set_id=set_id,
            name=data.name,
            style=data.style,
            bundle_price=_money(data.bundle_price) if data.bundle_price else None,
            clear_bundle_price=data.clear_bundle_price,
        )
        return await dispatch(request, container, command)

    @post(
        "/{set_id:uuid}/publish",
        operation_id="publishIconSet",
        status_code=202,
        summary="Publish a set.",
    )
    async def publish(
        self, request: Req, container: ContainerDep, set_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.PublishIconSet(set_id=set_id))

    @post(
        "/{set_id:uuid}/unpublish",
        operation_id="unpublishIconSet",
        status_code=202,
        summary="Withdraw a set.",
    )
    async def unpublish(
        self, request: Req, container: ContainerDep, set_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.UnpublishIconSet(set_id=set_id))

    @post(
        "/{set_id:uuid}/icons",
        operation_id="createIcon",
        opt=facts(creates="icon"),
        status_code=201,
        summary="Create an icon in a set (its SVG is uploaded separately).",
    )
    async def create_icon(
        self,
        request: Req,
        container: ContainerDep,
        set_id: FromPath[UUID],
        data: JSONBody[IconBody],
    ) -> Accepted:
        command = m.CreateIcon(
            set_id=set_id,
            name=data.name,
            price=_money(data.price),
            licence=data.licence,
            tags=tuple(data.tags),
            categories=tuple(data.categories),
        )
        return await dispatch(request, container, command, status_code=201)


class IconController(IconQueries):
    path = "/v1/icons"
    tags = ["catalog"]  # noqa: RUF012

    @patch(
        "/{icon_id:uuid}",
        operation_id="updateIcon",
        status_code=202,
        summary="Replace an icon's name, tags and categories.",
    )
    async def update(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        data: JSONBody[IconPatch],
    ) -> Accepted:
        command = m.UpdateIconDetails(
            icon_id=icon_id,
            name=data.name,
            tags=tuple(data.tags),
            categories=tuple(data.categories),
        )
        return await dispatch(request, container, command)

    @put(
        "/{icon_id:uuid}/price",
        operation_id="changeIconPrice",
        status_code=202,
        summary="Change an icon's price (integer minor units).",
    )
    async def price(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        data: JSONBody[PriceBody],
    ) -> Accepted:
        command = m.ChangeIconPrice(icon_id=icon_id, price=_money(data.price))
        return await dispatch(request, container, command)

    @put(
        "/{icon_id:uuid}/licence",
        operation_id="changeIconLicence",
        status_code=202,
        summary="Change an icon's licence (standard or extended).",
    )
    async def licence(
        self,
        request: Req,
        container: ContainerDep,
        icon_id: FromPath[UUID],
        data: JSONBody[LicenceBody],
    ) -> Accepted:
        command = m.ChangeIconLicence(icon_id=icon_id, licence=data.licence)
        return await dispatch(request, container, command)

    @post(
        "/{icon_id:uuid}/publish",
        operation_id="publishIcon",
        status_code=202,
        summary="Publish an icon (needs its original and derivatives).",
    )
    async def publish(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.PublishIcon(icon_id=icon_id))

    @post(
        "/{icon_id:uuid}/unpublish",
        operation_id="unpublishIcon",
        status_code=202,
        summary="Withdraw an icon.",
    )
    async def unpublish(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.UnpublishIcon(icon_id=icon_id))

    @post(
        "/{icon_id:uuid}/retire",
        operation_id="retireIcon",
        status_code=202,
        summary="Retire an icon for good (buyers keep it).",
    )
    async def retire(
        self, request: Req, container: ContainerDep, icon_id: FromPath[UUID]
    ) -> Accepted:
        return await dispatch(request, container, m.RetireIcon(icon_id=icon_id))
