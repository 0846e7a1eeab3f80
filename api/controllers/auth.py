"""Accounts and tokens: register, token (password or refresh), me, role changes."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody

from api.commanding import ANONYMOUS, CommandAccepted, actor_of, dispatch
from api.controllers.deps import ContainerDep
from api.schemas import MeResponse, RegisterBody, RolesBody, TokenBody, TokenResponse
from commands import messages as m
from commands.authentication import authenticate, current_roles
from commands.errors import AccessDenied, Unauthenticated
from commands.policy import Action, Actor, Resource, decide


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]  # noqa: RUF012

    @post(
        "/register",
        operation_id="registerAccount",
        status_code=201,
        summary="Create an account (roles: customer and/or contributor).",
    )
    async def register(
        self, request: Request[Any, Any, Any], container: ContainerDep, data: JSONBody[RegisterBody]
    ) -> Response[CommandAccepted]:
        command = m.RegisterAccount(
            email=data.email, password=data.password, roles=tuple(data.roles)
        )
        return await dispatch(request, container, command, status_code=201, actor=ANONYMOUS)

    @post(
        "/token",
        operation_id="issueToken",
        status_code=200,
        summary="Exchange e-mail and password, or a refresh token, for a token pair.",
    )
    async def token(self, container: ContainerDep, data: JSONBody[TokenBody]) -> TokenResponse:
        if data.refresh_token is not None:
            claimed = container.tokens.verify(data.refresh_token, kind="refresh")
            roles = await asyncio.to_thread(current_roles, container.applications, claimed.id)
            actor = Actor(claimed.id, roles)
        elif data.email is not None and data.password is not None:
            actor = await asyncio.to_thread(
                authenticate, container.applications, data.email, data.password
            )
        else:
            raise Unauthenticated("send email and password, or refresh_token")
        pair = container.tokens.issue(actor)
        return TokenResponse(pair.access_token, pair.refresh_token, "Bearer", pair.expires_in)

    @get("/me", operation_id="getMe", summary="Who the bearer token says you are.")
    async def me(self, request: Request[Any, Any, Any], container: ContainerDep) -> MeResponse:
        actor = actor_of(request, container)
        decision = decide(actor, Action.ACCOUNT_READ_SELF, Resource("account", actor.id))
        if not decision.allowed:
            raise AccessDenied(decision.reason)
        return MeResponse(id=actor.id, roles=sorted(actor.roles))


class AccountController(Controller):
    path = "/v1/accounts"
    tags = ["auth"]  # noqa: RUF012

    @put(
        "/{account_id:uuid}/roles",
        operation_id="changeRoles",
        status_code=202,
        summary="Replace an account's roles (admins; admin roles by superadmins only).",
    )
    async def change_roles(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        account_id: FromPath[UUID],
        data: JSONBody[RolesBody],
    ) -> Response[CommandAccepted]:
        command = m.ChangeRoles(account_id=account_id, roles=tuple(data.roles))
        return await dispatch(request, container, command)
