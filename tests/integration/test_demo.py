"""The demo catalog is loaded through the real commands and a second load appends nothing."""

from __future__ import annotations

from PIL import Image

from domain.icon import Icon
from domain.publication import PublicationStatus
from infra.bootstrap import Container
from infra.demo import ICONS, PNG_SIZES, load_demo


def _heads(container: Container) -> list[int]:
    return [app.recorder.max_notification_id() or 0 for app in container.applications.all()]


def test_demo_load_is_real_and_idempotent(container: Container) -> None:
    messages: list[str] = []
    load_demo(container, messages.append)
    heads = _heads(container)
    load_demo(container, messages.append)
    assert _heads(container) == heads
    assert messages[-1].startswith("demo: catalog loaded (2 sets, 8 icons)")

    catalog = container.applications.catalog
    created = [
        n
        for n in catalog.recorder.select_notifications(start=None, limit=10**6)
        if n.topic.endswith("Icon.Created")
    ]
    demo_icons = []
    for notification in created:
        icon = catalog.repository.get(notification.originator_id)
        if isinstance(icon, Icon) and icon.owner_id == _demo_owner():
            demo_icons.append(icon)
    names = sorted(icon.name for icon in demo_icons)
    assert names == sorted(name for icons in ICONS.values() for name in icons)
    for icon in demo_icons:
        assert icon.status is PublicationStatus.PUBLISHED
        assert icon.sellable
        pngs = [d for d in icon.derivatives if d.kind.value == "png"]
        assert [d.size for d in pngs] == list(PNG_SIZES)
        assert sorted(d.kind.value for d in icon.derivatives if d.kind.value != "png") == [
            "pdf",
            "webp",
        ]
        body = container.s3.get_object(
            Bucket=container.settings.s3_bucket_private, Key=pngs[-1].key
        )["Body"]
        image = Image.open(body)
        assert image.size == (256, 256)
        assert image.mode == "RGBA"


def _demo_owner() -> str:
    from domain.account import Account
    from infra.demo import CONTRIBUTOR

    return str(Account.create_id(CONTRIBUTOR.email))
