"""Paying an order, refunding it (administrators), and Stripe's webhook endpoint."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, post
from litestar.params import FromPath, JSONBody

from api.commanding import command_context
from api.contract import STRIPE_SIGNATURE, facts
from api.controllers.deps import ContainerDep
from api.schemas import Reason
from commands.payments.webhooks import handle_event, parse_event
from infra.stripe_provider import verify_webhook

Req = Request[Any, Any, Any]


class AmountView(msgspec.Struct):
    amount_minor: int
    currency: str


class PaymentView(msgspec.Struct):
    """A payment attempt: confirm it on the client with ``client_secret`` (Stripe.js). A free
    order has no attempt: it is paid and fulfilled already (``client_secret`` is null)."""

    order_id: str
    transaction_id: str | None
    status: str
    amount: AmountView
    client_secret: str | None
    position: int


class RefundBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "refunded by an administrator"


class RefundView(msgspec.Struct):
    order_id: str
    transaction_id: str
    refund_id: str
    position: int


class WebhookAck(msgspec.Struct):
    """``outcome``: applied, duplicate (this event id was applied before) or ignored."""

    event_id: str
    type: str
    outcome: str
    position: int | None


class PaymentController(Controller):
    path = "/v1/orders"
    tags = ["payments"]  # noqa: RUF012

    @post(
        "/{order_id:uuid}/payments",
        operation_id="payOrder",
        opt=facts(problems=(502,)),  # Stripe refused
        status_code=201,
        summary="Start paying an order (its owner): opens a payment attempt and answers the "
        "Stripe PaymentIntent's client secret. Repeating it while the attempt is pending answers "
        "the same intent. A free order is completed at once. 503 with Retry-After while Stripe "
        "is unavailable.",
    )
    async def pay(
        self, request: Req, container: ContainerDep, order_id: FromPath[UUID]
    ) -> Response[PaymentView]:
        ctx = command_context(request, container)
        outcome = await asyncio.to_thread(container.payments.pay, order_id, ctx)
        view = PaymentView(
            order_id=str(outcome.order_id),
            transaction_id=str(outcome.transaction_id) if outcome.transaction_id else None,
            status=outcome.status,
            amount=AmountView(outcome.amount.amount_minor, outcome.amount.currency),
            client_secret=outcome.client_secret,
            position=outcome.position,
        )
        return Response(view, status_code=201)

    @post(
        "/{order_id:uuid}/refund",
        operation_id="refundOrder",
        opt=facts(problems=(502,)),  # Stripe refused
        status_code=202,
        summary="Refund a paid order in full through Stripe and revoke what it granted "
        "(administrators only).",
    )
    async def refund(
        self,
        request: Req,
        container: ContainerDep,
        order_id: FromPath[UUID],
        data: JSONBody[RefundBody | None] = None,
    ) -> Response[RefundView]:
        ctx = command_context(request, container)
        reason = data.reason if data else RefundBody().reason
        outcome = await asyncio.to_thread(container.payments.refund, order_id, ctx, reason=reason)
        view = RefundView(
            str(outcome.order_id),
            str(outcome.transaction_id),
            outcome.refund_reference,
            outcome.position,
        )
        return Response(view, status_code=202)


class StripeWebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["payments"]  # noqa: RUF012

    @post(
        "/stripe",
        operation_id="stripeWebhook",
        # Stripe signs it instead of a token; its events run commands without the command headers.
        opt=facts(public=True, security=STRIPE_SIGNATURE, command=False, problems=(400, 401, 503)),
        status_code=200,
        summary="Stripe's webhook endpoint: verifies the Stripe-Signature header (400 when "
        "missing, wrong or stale; nothing recorded), then applies each event id once.",
    )
    async def stripe(self, request: Req, container: ContainerDep) -> Response[WebhookAck]:
        settings = container.settings
        document = verify_webhook(
            await request.body(),
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secret,
            settings.stripe_webhook_tolerance_s,
        )
        event = parse_event(document)
        outcome = await asyncio.to_thread(
            handle_event, container.bus, container.payment_provider, event
        )
        ack = WebhookAck(outcome.event_id, outcome.type, outcome.outcome, outcome.position)
        return Response(ack, status_code=200)
