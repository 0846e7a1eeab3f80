"""A small demo catalog, loaded through the real commands (idempotently: a second load appends
nothing). Originals go to S3, the full derivative set is rendered by the media pipeline's
renderer (the same keys the media workers use, so they find it stored), icons are published."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands import messages as m
from commands.errors import AlreadyExists
from commands.results import CommandContext
from domain.account import Account
from infra.bootstrap import Container
from pipelines.derivatives import MediaStores, RenderJob, produce
from pipelines.render import RENDERER_VERSION

Report = Callable[[str], None]
PNG_SIZES = (64, 128, 192, 256)

# Our own 24x24 line drawings: name -> SVG path data.
ICONS: dict[str, dict[str, str]] = {
    "Arrows": {
        "arrow left": "M20 12H4M10 6l-6 6 6 6",
        "arrow right": "M4 12h16M14 6l6 6-6 6",
        "arrow up": "M12 20V4M6 10l6-6 6 6",
        "arrow down": "M12 4v16M6 14l6 6 6-6",
    },
    "Office": {
        "calendar": "M4 6h16v14H4zM4 10h16M8 3v5M16 3v5",
        "trash": "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
        "search": "M10 4a6 6 0 1 0 0 12 6 6 0 1 0 0-12zM15 15l5 5",
        "home": "M3 11l9-8 9 8M5 10v10h14V10",
    },
}


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    roles: tuple[str, ...]


CONTRIBUTOR = DemoAccount(
    "contributor@demo.iconmarket.dev", "demo-contributor-pw", ("contributor",)
)
CUSTOMER = DemoAccount("customer@demo.iconmarket.dev", "demo-customer-pw", ("customer",))


def svg_for(path_data: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" '
        'fill="none" stroke="#1f2937" stroke-width="2" stroke-linecap="round" '
        f'stroke-linejoin="round"><path d="{path_data}"/></svg>'
    ).encode()


def _context(actor: str, roles: tuple[str, ...], key: str) -> CommandContext:
    return CommandContext(
        actor=actor, roles=frozenset(roles), correlation_id="demo-load", idempotency_key=key
    )


def _register(container: Container, account: DemoAccount) -> str:
    command = m.RegisterAccount(email=account.email, password=account.password, roles=account.roles)
    with contextlib.suppress(AlreadyExists):
        container.bus.execute(command, _context("demo-loader", (), f"register:{account.email}"))
    return str(Account.create_id(account.email))


def _put(container: Container, key: str, body: bytes, content_type: str) -> None:
    container.s3.put_object(
        Bucket=container.settings.s3_bucket_private, Key=key, Body=body, ContentType=content_type
    )


def _icon(container: Container, *, owner: str, set_id: UUID, name: str, path: str, n: int) -> None:
    run: Any = container.bus.execute
    who = ("contributor",)
    icon_id = run(
        m.CreateIcon(
            set_id=set_id,
            name=name,
            tags=tuple(name.split()),
            price=m.Money(amount_minor=0 if n % 2 else 299, currency="USD"),
        ),
        _context(owner, who, f"demo:icon:{name}"),
    ).aggregate_id
    svg = svg_for(path)
    digest = hashlib.sha256(svg).hexdigest()
    original_key = f"originals/{digest}.svg"
    _put(container, original_key, svg, "image/svg+xml")
    original = m.SvgOriginal(
        key=original_key, content_hash=digest, size_bytes=len(svg), width=24, height=24
    )
    run(
        m.RecordOriginal(icon_id=icon_id, original=original),
        _context(owner, who, f"demo:original:{name}"),
    )
    stores = MediaStores(container.private_store, container.public_store)
    produced = produce(RenderJob(icon_id, digest, original_key, "demo-load"), stores)
    run(
        produced.command(),
        _context("service:demo", ("service",), f"demo:derivatives:{RENDERER_VERSION}:{name}"),
    )
    run(m.PublishIcon(icon_id=icon_id), _context(owner, who, f"demo:publish-icon:{name}"))


def load_demo(container: Container, report: Report) -> None:
    owner = _register(container, CONTRIBUTOR)
    _register(container, CUSTOMER)
    who = ("contributor",)
    run = container.bus.execute
    family_id = run(
        m.CreateFamily(
            name="Demo Essentials",
            description="A small demo family.",
            categories=("ui",),
            tags=("demo",),
        ),
        _context(owner, who, "demo:family"),
    ).aggregate_id
    for n_set, (set_name, icons) in enumerate(ICONS.items()):
        set_id = run(
            m.CreateIconSet(
                family_id=family_id,
                name=set_name,
                style="line",
                bundle_price=m.Money(amount_minor=499 + n_set * 100, currency="USD"),
            ),
            _context(owner, who, f"demo:set:{set_name}"),
        ).aggregate_id
        for n, (name, path) in enumerate(icons.items()):
            _icon(container, owner=owner, set_id=set_id, name=name, path=path, n=n)
        run(m.PublishIconSet(set_id=set_id), _context(owner, who, f"demo:publish-set:{set_name}"))
    run(m.PublishFamily(family_id=family_id), _context(owner, who, "demo:publish-family"))
    count = sum(len(icons) for icons in ICONS.values())
    report(
        f"demo: catalog loaded ({len(ICONS)} sets, {count} icons). Sign in with "
        f"{CONTRIBUTOR.email} / {CONTRIBUTOR.password} (contributor) or "
        f"{CUSTOMER.email} / {CUSTOMER.password} (customer)."
    )
