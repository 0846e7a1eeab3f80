"""The API contract: the OpenAPI document, made exact in one place.

Litestar generates the document from the routes; this package finishes it, once, when the app
is built (`document`), and makes the API take requests as the document says:

- **Problems.** Every refusal is an RFC 9457 problem (`api/errors.py`), described once as the
  ``Problem`` schema and one shared response component per status (``#/components/responses``).
  Each operation gets exactly the problem responses its route can give, derived from facts
  about the route (`RouteFacts`): a token is needed (401, 403), a path names a resource (404),
  it takes input (422), a JSON or upload body (400, 413; 415 for an upload of another type), it
  runs a command (409, 422, 503 command_timeout / store_unavailable, and the command headers),
  it waits for ``min_position`` (409 position_beyond_head, 503 stale), the rate limiter meters
  it (429 and 503 rate_limiter_unavailable), a route's own (`facts`). A route states
  only what no rule can see (`facts`: no token needed, a refusal of its own, the kind of
  resource it creates, which links its answer's ``id`` to the operations that take it).
  Litestar's own ``400 ValidationException`` response is dropped: validation failures are 422
  problems.
- **Bounds.** Request and response bodies are msgspec structs, and so are the parameters'
  checks, so their JSON Schemas are msgspec's own (`msgspec.json.schema_components`): the
  library that validates a request also says what it accepts (item bounds, ``additionalProperties:
  false`` for a struct that refuses unknown fields, a bound of 0). Litestar's rendering drops
  some of these (constraints of list items, a minimum of 0 on an optional parameter).
- **Parameters as documented.** Litestar takes the last of a repeated parameter, ``null`` as
  absent, a number as a time; `exact_parameters` refuses what the document does not allow.
  (api/options.py makes OPTIONS name every method of its path, which Litestar 2 does not.)

Post-processing the generated document, rather than ``responses=`` on every handler, is what
keeps this in one place: a handler's ``responses`` cannot point at shared components nor drop
the generated 400, and a new route gets its problems from the same facts without a list to
keep in step. ``tests/unit/test_contract_rules.py`` checks the rules; the e2e contract test runs
schemathesis over the whole document against the real API.
"""

from __future__ import annotations

from api.contract.document import BEARER, STRIPE_SIGNATURE, document, operations
from api.contract.facts import Facts, RouteFacts, facts, route_facts
from api.contract.parameters import exact_parameters

__all__ = [
    "BEARER",
    "STRIPE_SIGNATURE",
    "Facts",
    "RouteFacts",
    "document",
    "exact_parameters",
    "facts",
    "operations",
    "route_facts",
]
