"""Accounts and tokens: register, token (password or refresh), logout, me, role changes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody

from api.commanding import ANONYMOUS, CommandAccepted, actor_of, claims_of, dispatch
from api.contract import facts
from api.controllers.deps import ContainerDep
from api.schemas import (
    MeResponse,
    RegisterBody,
    RegistrationAccepted,
    RolesBody,
    TokenBody,
    TokenResponse,
)
from commands import messages as m
from commands.authentication import account_for, authenticated, current_account, hash_to_check
from commands.errors import AccessDenied, AlreadyExists, Unauthenticated
from commands.password_hashing import check_strength
from commands.policy import Action, Resource, decide

REGISTRATION_ACCEPTED = RegistrationAccepted(
    status="accepted",
    detail="If this address had no account, it has one now; an account it had is unchanged. "
    "Sign in with POST /v1/auth/token.",
)


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]  # noqa: RUF012

    @post(
        "/register",
        operation_id="registerAccount",
        opt=facts(public=True, command=True),
        status_code=202,
        summary="Create an account (roles: customer and/or contributor).",
        description=(
            "Answers 202 with the same body whether the address was free (the account now "
            "exists) or already registered (that account is left exactly as it was): the answer "
            "must not tell anyone which addresses have accounts. Either way the password is "
            "hashed first, so both take about as long. Sign in with POST /v1/auth/token."
        ),
    )
    async def register(
        self, request: Request[Any, Any, Any], container: ContainerDep, data: JSONBody[RegisterBody]
    ) -> Response[RegistrationAccepted]:
        check_strength(data.password)
        command = m.RegisterAccount(
            email=data.email,
            password=data.password,
            roles=tuple(data.roles),
            password_hash=await container.password_hashing.hash(data.password),
        )
        with contextlib.suppress(AlreadyExists):
            await dispatch(request, container, command, actor=ANONYMOUS)
        return Response(REGISTRATION_ACCEPTED, status_code=202)

    @post(
        "/token",
        operation_id="issueToken",
        opt=facts(public=True, problems=(401,)),  # refused credentials
        status_code=200,
        summary="Exchange e-mail and password, or a refresh token, for a token pair.",
    )
    async def token(self, container: ContainerDep, data: JSONBody[TokenBody]) -> TokenResponse:
        sessions = container.sessions
        if data.refresh_token is not None:
            claims = container.tokens.claims(data.refresh_token, kind="refresh")
            actor, version = await asyncio.to_thread(
                current_account, container.applications, claims.actor.id
            )
            pair = await sessions.rotate(claims, actor, version)
        elif data.email is not None and data.password is not None:
            account = await asyncio.to_thread(account_for, container.applications, data.email)
            hashing = container.password_hashing
            matched = await hashing.matches(hash_to_check(account), data.password)
            actor = authenticated(account, matched)
            pair = await sessions.start(actor, account.sessions_version if account else 0)
        else:
            raise Unauthenticated("send email and password, or refresh_token")
        return TokenResponse(pair.access_token, pair.refresh_token, "Bearer", pair.expires_in)

    @post(
        "/logout",
        operation_id="logout",
        opt=facts(command=False),
        status_code=204,
        summary="End the session of the bearer token: its refresh token and access tokens.",
        description=(
            "Ends the session (refresh-token family) the access token belongs to: its refresh "
            "token, and every access token issued in it, are refused from now on (other API "
            "workers within ICONMARKET_SESSIONS_CACHE_S). Other sessions of the account are "
            "left as they are. Answers 204 also when the session had ended already; a blocked "
            "account may log out too. Records no event."
        ),
    )
    async def logout(self, request: Request[Any, Any, Any], container: ContainerDep) -> None:
        claims = claims_of(request, container)
        if claims.family is not None:
            await container.sessions.revoke(claims.family)

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
        actor = actor_of(request, container)
        if not decide(actor, Action.ACCOUNT_CHANGE_ROLES, Resource("account")).allowed:
            return await dispatch(request, container, command, actor=actor)  # its refusal
        # Tokens issued before the change are refused once it is saved (api/sessions.py).
        async with container.sessions.changing(str(account_id)):
            return await dispatch(request, container, command, actor=actor)
