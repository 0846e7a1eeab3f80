"""The stack's Mailpit is a real SMTP server whose mail is read back over its HTTP API: a mail
sent with smtplib is stored by the time the server accepts it, and the list, the search and the
message by id show exactly what was sent. Every test uses a recipient and subject of its own and
deletes only its own messages (by id), so it can run next to anything else using the mailbox."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from infra.stack import manager
from infra.stack.base import StackContext
from infra.stack.mailpit import MAILPIT_VERSION, Mailpit

SENDER = "Iconmarket Shop <shop@iconmarket.test>"
TEXT = "Hello Ada,\n\nyour icons are ready: https://iconmarket.test/library\n\n-- iconmarket\n"
HTML = '<p>Hello Ada,</p><p>your icons are <a href="https://iconmarket.test/library">ready</a>.</p>'


class Mailbox:
    """Mailpit's HTTP API with a token of this test's own (in its subjects and recipients),
    remembering every message id it saw for cleanup."""

    def __init__(self, settings: Settings) -> None:
        self.client = httpx.Client(base_url=settings.mailpit_url, timeout=5)
        self.token = uuid.uuid4().hex[:16]
        self.seen: set[str] = set()

    def search(self, query: str) -> dict[str, Any]:
        response = self.client.get("/api/v1/search", params={"query": query, "limit": 50})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.seen |= {message["ID"] for message in body["messages"]}
        return body

    def delete(self, ids: list[str]) -> None:
        response = self.client.request("DELETE", "/api/v1/messages", json={"IDs": ids})
        assert response.status_code == 200, response.text


@pytest.fixture
def mailbox(settings: Settings) -> Iterator[Mailbox]:
    box = Mailbox(settings)
    try:
        yield box
    finally:
        box.search(box.token)  # also what a failed test sent but never looked up
        if box.seen:
            box.delete(sorted(box.seen))
        box.client.close()


def _mail(token: str, recipient: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = f"Ada Lovelace <{recipient}>"
    mail["Subject"] = f"Your order {token} is ready"
    mail["Message-ID"] = make_msgid(idstring=token, domain="iconmarket.test")
    mail.set_content(TEXT)
    mail.add_alternative(HTML, subtype="html")
    return mail


def test_a_mail_sent_over_smtp_is_listed_found_and_read_back_exactly(
    settings: Settings, mailbox: Mailbox
) -> None:
    token = mailbox.token
    recipient = f"ada-{token}@customers.iconmarket.test"
    mail = _mail(token, recipient)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        refused = smtp.send_message(mail)
    assert refused == {}

    # Accepted means stored: Mailpit saves the mail before it answers 250, so no wait here.
    found = mailbox.search(f'to:"{recipient}"')
    assert found["messages_count"] == 1
    [summary] = found["messages"]
    message_id = summary["ID"]
    assert summary["Subject"] == f"Your order {token} is ready"
    assert summary["From"] == {"Name": "Iconmarket Shop", "Address": "shop@iconmarket.test"}
    assert summary["To"] == [{"Name": "Ada Lovelace", "Address": recipient}]
    assert summary["MessageID"] == mail["Message-ID"].strip("<>")
    assert mailbox.search(f'subject:"Your order {token} is ready"')["messages"][0]["ID"] == (
        message_id
    )

    listed = mailbox.client.get("/api/v1/messages", params={"limit": 200})
    assert listed.status_code == 200
    assert message_id in [message["ID"] for message in listed.json()["messages"]]

    full = mailbox.client.get(f"/api/v1/message/{message_id}")
    assert full.status_code == 200
    body = full.json()
    assert body["Subject"] == f"Your order {token} is ready"
    assert body["From"] == {"Name": "Iconmarket Shop", "Address": "shop@iconmarket.test"}
    assert body["To"] == [{"Name": "Ada Lovelace", "Address": recipient}]
    assert body["Cc"] == []
    assert body["Bcc"] == []
    # SMTP carries lines ending in CRLF, and Mailpit keeps the parts as they travelled;
    # set_content ends every part with a line end.
    assert body["Text"] == TEXT.replace("\n", "\r\n")
    assert body["HTML"] == HTML + "\r\n"
    assert body["Attachments"] == []

    mailbox.delete([message_id])
    assert mailbox.client.get(f"/api/v1/message/{message_id}").status_code == 404
    assert mailbox.search(f'to:"{recipient}"')["messages_count"] == 0


def test_envelope_recipients_are_what_is_delivered_and_a_login_is_recorded(
    settings: Settings, mailbox: Mailbox
) -> None:
    """A mailer that logs in (as a relay in prod requires) works against the local stack: any
    credentials are accepted and recorded; a Bcc recipient is only on the envelope."""
    token = mailbox.token
    to = f"to-{token}@customers.iconmarket.test"
    hidden = f"bcc-{token}@team.iconmarket.test"
    mail = _mail(token, to)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        smtp.login(f"mailer-{token}", "any-password")
        refused = smtp.sendmail("bounces@iconmarket.test", [to, hidden], mail.as_bytes())
    assert refused == {}

    [summary] = mailbox.search(f'subject:"Your order {token} is ready"')["messages"]
    body = mailbox.client.get(f"/api/v1/message/{summary['ID']}").json()
    assert body["To"] == [{"Name": "Ada Lovelace", "Address": to}]
    assert body["Bcc"] == [{"Name": "", "Address": hidden}]
    assert body["ReturnPath"] == "bounces@iconmarket.test"
    assert body["Username"] == f"mailer-{token}"


def test_the_api_refuses_a_foreign_host_header(settings: Settings) -> None:
    """A page that rebinds its own DNS name to 127.0.0.1 cannot read the mailbox."""
    with httpx.Client(base_url=settings.mailpit_url, timeout=5) as client:
        rebound = client.get("/api/v1/messages", headers={"Host": "attacker.example:28025"})
        direct = client.get("/api/v1/messages", params={"limit": 1})
    assert rebound.status_code == 403
    assert direct.status_code == 200


def test_stack_status_reports_it_healthy_with_its_mailbox_under_the_state_dir(
    settings: Settings,
) -> None:
    ctx = StackContext.from_settings(settings)
    [row] = manager.status(ctx, ["mailpit"])
    assert (row.name, row.version, row.port) == ("mailpit", MAILPIT_VERSION, settings.smtp_port)
    assert row.healthy, row.detail
    assert row.pid is not None
    database = Mailpit().database(ctx)
    assert database.is_relative_to(ctx.state_dir)
    assert database.exists()
    info = httpx.get(f"{settings.mailpit_url}/api/v1/info", timeout=5).json()
    assert info["Version"] == MAILPIT_VERSION
    assert info["Database"] == str(database)
