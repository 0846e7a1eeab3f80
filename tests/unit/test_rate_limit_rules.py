"""The rate limits' pure parts: which budget a request draws on, whom it is counted against
(trusted proxies and X-Forwarded-For), the RateLimit fields, and the budget settings."""

from __future__ import annotations

import dataclasses
import ipaddress
import threading

import pytest

from api.rate_limits import (
    Policy,
    Standing,
    asks_min_position,
    budget_of,
    client_address,
    policies_of,
    ratelimit_fields,
)
from commands.errors import HashingBusy
from commands.password_hashing import PasswordHashing
from infra.settings import Settings, SettingsError

ICON = "/v1/icons/6c1f4a3e-0000-4000-8000-000000000001"
SET = "/v1/sets/6c1f4a3e-0000-4000-8000-000000000002"


@pytest.mark.parametrize(
    ("method", "path", "min_position", "budget"),
    [
        ("POST", "/v1/auth/token", False, "auth"),
        ("POST", "/v1/auth/register", False, "auth"),
        ("GET", "/v1/auth/me", False, None),
        ("PUT", f"{ICON}/svg", False, "uploads"),
        ("POST", f"{ICON}/svg/uploads", False, "uploads"),
        ("POST", f"{ICON}/svg/uploads/up-1/complete", False, "uploads"),
        ("POST", f"{SET}/imports", False, "uploads"),
        ("POST", f"{SET}/imports/", False, "uploads"),
        ("POST", "/v1/families", False, "commands"),
        ("PATCH", ICON, False, "commands"),
        ("PUT", f"{ICON}/price", False, "commands"),
        ("DELETE", "/v1/carts/c/lines", False, "commands"),
        ("POST", "/v1/webhooks/stripe", False, None),
        ("GET", "/v1/icons/search", False, "reads"),
        ("GET", "/v1/icons/suggest", False, "reads"),
        ("HEAD", "/v1/icons/search", False, "reads"),
        ("GET", ICON, False, None),
        ("GET", ICON, True, "reads"),
        ("GET", "/v1/carts/c", True, "reads"),
        ("GET", "/v1/imports/i", False, None),
        ("GET", "/health/ready", False, None),
        ("OPTIONS", "/v1/families", False, None),
    ],
)
def test_each_request_draws_on_its_budget(
    method: str, path: str, min_position: bool, budget: str | None
) -> None:
    assert budget_of(method, path, min_position=min_position) == budget


def test_a_min_position_in_the_query_or_a_header_makes_a_read_expensive() -> None:
    assert asks_min_position(b"min_position=12", [])
    assert asks_min_position(b"q=a&min_position=", [])
    assert asks_min_position(b"", [(b"X-Min-Position", b"12")])
    assert not asks_min_position(b"q=min_position", [(b"accept", b"*/*")])


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.1")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "counted"),
    [
        pytest.param("203.0.113.9", ["198.51.100.1"], "203.0.113.9", id="untrusted-peer"),
        pytest.param("10.1.2.3", [], "10.1.2.3", id="trusted-peer-no-header"),
        pytest.param("10.1.2.3", ["198.51.100.1"], "198.51.100.1", id="one-hop"),
        pytest.param(
            "10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1", id="spoofed-left-entry"
        ),
        pytest.param(
            "10.1.2.3", ["6.6.6.6, 198.51.100.1, 192.0.2.1"], "198.51.100.1", id="proxy-chain"
        ),
        pytest.param(
            "10.1.2.3", ["6.6.6.6", "198.51.100.1"], "198.51.100.1", id="two-header-lines"
        ),
        pytest.param("10.1.2.3", ["10.9.9.9, 192.0.2.1"], "10.9.9.9", id="all-trusted"),
        pytest.param("10.1.2.3", ["198.51.100.1:4711"], "198.51.100.1", id="v4-with-port"),
        pytest.param("10.1.2.3", ["[2001:db8:1:2::7]:443"], "2001:db8:1:2::/64", id="v6-with-port"),
        pytest.param("10.1.2.3", ["junk"], "unparsed:junk", id="unparsable"),
        pytest.param("2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64", id="v6-by-64"),
        pytest.param("::ffff:203.0.113.9", [], "203.0.113.9", id="v4-mapped"),
        pytest.param("testclient", ["198.51.100.1"], "testclient", id="not-an-address"),
        pytest.param(None, [], "unknown", id="no-peer"),
    ],
)
def test_the_client_address_is_the_connection_unless_it_is_a_trusted_proxy(
    peer: str | None, forwarded_for: list[str], counted: str
) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == counted


def test_without_trusted_proxies_x_forwarded_for_is_ignored() -> None:
    assert client_address("10.1.2.3", ["198.51.100.1"], []) == "10.1.2.3"


def _settings(**changes: object) -> Settings:
    return dataclasses.replace(
        Settings(env="test", jwt_secret="unit-test-signing-secret-0123456789abcdef"), **changes
    )


def test_policies_are_named_by_budget_and_partition_and_carry_quota_and_window() -> None:
    policies = policies_of(
        _settings(
            rate_limit_auth_per_ip="30/minute", rate_limit_uploads_per_account="2/second;50/hour"
        )
    )
    assert [p.field for p in policies[("auth", "ip")]] == ['"auth-ip";q=30;w=60']
    assert [p.field for p in policies[("uploads", "account")]] == [
        '"uploads-account-1s";q=2;w=1',
        '"uploads-account-3600s";q=50;w=3600',
    ]


def test_the_ratelimit_fields_follow_the_draft_s_structured_lists() -> None:
    policies = policies_of(
        _settings(rate_limit_auth_per_ip="30/minute", rate_limit_auth_per_account="10/minute")
    )
    [auth_ip], [auth_account] = policies[("auth", "ip")], policies[("auth", "account")]
    fields = ratelimit_fields(
        [Standing(auth_ip, True, 29, 60), Standing(auth_account, False, 0, 17)]
    )
    assert fields == {
        "RateLimit-Policy": '"auth-ip";q=30;w=60, "auth-account";q=10;w=60',
        "RateLimit": '"auth-ip";r=29;t=60, "auth-account";r=0;t=17',
    }
    assert isinstance(auth_ip, Policy)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("rate_limit_commands_per_ip", "lots"),
        ("rate_limit_commands_per_ip", "0/minute"),
        ("rate_limit_reads_per_account", ""),
        ("rate_limit_trusted_proxies", "10.0.0.0/8, proxy.example"),
        ("rate_limit_timeout_s", 0.0),
        ("password_hash_workers", 0),
        ("password_hash_queue", -1),
    ],
)
def test_a_budget_or_bound_that_cannot_work_is_refused(name: str, value: object) -> None:
    with pytest.raises(SettingsError, match=name.upper()):
        _settings(**{name: value})


def test_the_hashing_pool_refuses_beyond_workers_plus_queue_and_gives_places_back() -> None:
    pool = PasswordHashing(workers=1, queue=1)
    gate = threading.Event()
    try:
        held = [pool.submit(gate.wait, 10) for _ in range(2)]
        with pytest.raises(HashingBusy) as busy:
            pool.submit(gate.wait, 10)
        assert (busy.value.code, busy.value.retry_after_s) == ("password_hashing_busy", 1)
        gate.set()
        assert [f.result(timeout=10) for f in held] == [True, True]
        assert pool.submit(lambda: 7).result(timeout=10) == 7
        # A hash cancelled before it ran (its caller went away) gives its place back too.
        gate.clear()
        running = pool.submit(gate.wait, 10)
        queued = pool.submit(gate.wait, 10)
        assert queued.cancel()
        also = pool.submit(gate.wait, 10)
        gate.set()
        assert [running.result(timeout=10), also.result(timeout=10)] == [True, True]
    finally:
        gate.set()
        pool.close()
