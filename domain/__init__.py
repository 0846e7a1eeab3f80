"""The pure domain: aggregates, their events, value objects and errors.

Imports only the standard library and ``eventsourcing.domain``. One module per aggregate:
catalog (``family``, ``icon_set``, ``icon``), commerce (``cart``, ``order``, ``transaction``,
``library``) and identity (``account``).
"""
