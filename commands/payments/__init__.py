"""Payments: the provider port, its errors and in-memory fake, and the services that drive the
payment commands (paying an order, refunding it, reconciling attempts left pending)."""
