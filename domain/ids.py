"""Deterministic aggregate ids (uuid5): a repeated creation collides instead of duplicating.

Never change a namespace: stored ids were derived from it.
"""

from uuid import UUID, uuid5

ICONMARKET_NAMESPACE = UUID("5d0c6f1e-8b7a-4f43-9a52-1c3f0e6b2d47")

_ACCOUNTS = uuid5(ICONMARKET_NAMESPACE, "account")
_LIBRARIES = uuid5(ICONMARKET_NAMESPACE, "library")
_ORDERS = uuid5(ICONMARKET_NAMESPACE, "order")
_TRANSACTIONS = uuid5(ICONMARKET_NAMESPACE, "transaction")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def account_id_for(email: str) -> UUID:
    return uuid5(_ACCOUNTS, normalise_email(email))


def library_id_for(customer_id: str) -> UUID:
    return uuid5(_LIBRARIES, customer_id)


def order_id_for_cart(cart_id: UUID) -> UUID:
    return uuid5(_ORDERS, str(cart_id))


def transaction_id_for(order_id: UUID, attempt: int) -> UUID:
    return uuid5(_TRANSACTIONS, f"{order_id}:{attempt}")
