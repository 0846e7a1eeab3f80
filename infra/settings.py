"""One typed settings object, read from the environment.

Every field maps to one ``ICONMARKET_*`` variable; its docstring-like ``doc`` is the source of
``.env.example`` and ``docs/configuration.md`` (``iconmarket config docs`` regenerates both).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limits import parse_many

PREFIX = "ICONMARKET_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be read as its setting's type, or a
    value refused by ``Settings.validate`` (the message names the variable, never a secret)."""


DEV_STRIPE_SECRET_KEY = "sk_test_123"  # noqa: S105 - a public development default
"""stripe-mock's key: refused in prod."""
DEV_STRIPE_WEBHOOK_SECRET = "whsec_test_iconmarket"  # noqa: S105 - public, refused in prod
"""A public signing secret for local development and tests: refused in prod."""
RATE_LIMIT_BUDGETS = tuple(
    f"rate_limit_{budget}_per_{partition}"
    for budget in ("auth", "commands", "uploads", "reads")
    for partition in ("ip", "account")
)
"""The settings that hold a rate-limit budget (``api/rate_limits.py`` meters them)."""
MAX_CART_TTL_S = 7 * 24 * 3600
"""The longest cart TTL: the cart view keeps a cart a day past it (``CART_VIEW_TTL_S``)."""
ENVIRONMENTS = ("dev", "test", "prod")
"""The modes ``ICONMARKET_ENV`` must name: ``dev`` and ``test`` accept the public development
secrets and serve on loopback only; ``prod`` refuses them. Unset or anything else is refused."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_SESSIONS_CACHE_S = 5.0
JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret
"""In dev and test, the token signing secret generated once per install, under the state dir."""
MIN_JWT_SECRET = 32


def _setting(default: Any, doc: str, *, secret: bool = False, group: str = "general") -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret, "group": group})


def _default_cache_dir() -> str:
    if os.geteuid() == 0:
        return "/var/cache/iconmarket"
    return str(Path.home() / ".cache" / "iconmarket")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything iconmarket reads from its environment."""

    env: str = _setting(
        "",
        "Mode: dev, test or prod (required; unset or another value is refused). dev and test "
        "(what `make run` and `make test` set) accept the public development secrets, serve on "
        "loopback only and sign tokens with a secret generated once per install under the state "
        "dir; prod requires real secrets.",
    )
    log_level: str = _setting("INFO", "Log level of the JSON logs (DEBUG, INFO, WARNING, ERROR).")

    api_host: str = _setting("127.0.0.1", "Address the HTTP API binds to.", group="api")
    api_port: int = _setting(8000, "Port the HTTP API listens on.", group="api")
    api_workers: int = _setting(1, "Uvicorn worker processes for the API.", group="api")
    health_timeout_s: float = _setting(
        2.0, "Seconds each dependency check in /health/ready may take.", group="api"
    )
    health_cache_s: float = _setting(
        1.0,
        "Seconds /health/ready answers from its last probes before probing again (concurrent "
        "requests share one probe round).",
        group="api",
    )
    health_slow_probe_s: float = _setting(
        60.0,
        "Seconds between two readiness probes of a paid or rate-limited API (Stripe).",
        group="api",
    )
    metrics_token: str = _setting(
        "",
        "Bearer token /metrics requires (401 without it); empty leaves /metrics open, for a "
        "loopback-only dev stack.",
        secret=True,
        group="api",
    )
    read_your_writes_timeout_s: float = _setting(
        2.0,
        "How long a query given a min_position waits for the read model to reach it before "
        "answering 503 stale.",
        group="api",
    )
    read_your_writes_max_waiters: int = _setting(
        64,
        "Most queries one API worker lets wait for a min_position at once (each holds a Redis "
        "connection while it waits); one more answers 503 stale at once, with Retry-After.",
        group="api",
    )
    jwt_access_ttl_s: int = _setting(900, "Lifetime of an access token in seconds.", group="api")
    jwt_refresh_ttl_s: int = _setting(
        1_209_600, "Lifetime of a refresh token in seconds (14 days).", group="api"
    )
    sessions_prefix: str = _setting(
        "sessions",
        "Prefix of the sessions' Redis keys (accounts' sessions versions, refresh-token "
        "families; docs/api.md, Sessions). Every API worker of a deployment must use the same one.",
        group="api",
    )
    sessions_cache_s: float = _setting(
        1.0,
        "Seconds an API worker may reuse what it read of an account's sessions version or a "
        "session's state: a block, role change or logout reaches every worker within it (0 "
        "reads Redis on every request). Sessions always fail closed: when Redis cannot be "
        "read, an authenticated request answers 503 `sessions_unavailable`.",
        group="api",
    )
    sessions_change_horizon_s: float = _setting(
        60.0,
        "Seconds after a role change's deadline (ICONMARKET_COMMAND_DEADLINE_S) during which "
        "checks of that account also read the event store, in case the API worker that made "
        "it died before recording the new sessions version in Redis.",
        group="api",
    )
    jwt_secret: str = _setting(
        "",
        "HMAC secret that signs access and refresh tokens, at least 32 characters; use a long "
        "random value. Required when ICONMARKET_ENV=prod. Unset in dev and test: a random "
        "secret generated once per install and kept in `<state dir>/jwt-secret`.",
        secret=True,
        group="api",
    )

    event_store: str = _setting(
        "postgres",
        "Where events are stored: `postgres`, or `memory` (an in-process store for unit tests "
        "and demos; everything is lost on exit).",
        group="postgres",
    )
    group_commit: bool = _setting(
        True,
        "Batch concurrent commands of one bounded context into one store transaction.",
        group="postgres",
    )
    command_deadline_s: float = _setting(
        10.0,
        "Seconds a command may take from submission to its saved result. A command the writer "
        "has not taken by then is dropped unapplied; the caller gets 503 `command_timeout` with "
        "Retry-After, and /health/ready reports a writer whose oldest command waited longer.",
        group="postgres",
    )
    postgres_host: str = _setting("127.0.0.1", "PostgreSQL host.", group="postgres")
    postgres_port: int = _setting(15432, "PostgreSQL port.", group="postgres")
    postgres_db: str = _setting(
        "iconmarket", "PostgreSQL database of the event store.", group="postgres"
    )
    postgres_user: str = _setting("iconmarket", "PostgreSQL user.", group="postgres")
    postgres_password: str = _setting(
        "iconmarket", "PostgreSQL password.", secret=True, group="postgres"
    )
    postgres_connect_timeout_s: int = _setting(
        5, "Seconds to wait for a PostgreSQL connection.", group="postgres"
    )
    postgres_lock_timeout_s: int = _setting(
        5, "Seconds a writer waits for the event table lock before failing.", group="postgres"
    )
    postgres_pool_size: int = _setting(
        10,
        "Connections kept in each event-store pool (one pool per bounded context).",
        group="postgres",
    )

    redis_host: str = _setting("127.0.0.1", "Redis host.", group="redis")
    redis_port: int = _setting(16379, "Redis port.", group="redis")
    cart_ttl_s: int = _setting(
        7 * 24 * 3600,
        "Seconds an open cart may stay idle (no change) before the sweeper expires it "
        "(`Cart.Expired`; reads then answer 410 `cart_expired`). At most 7 days: the cart view "
        "keeps a cart one day past that, so the sweeper always gets there first.",
        group="redis",
    )
    cart_sweep_interval_s: float = _setting(
        300.0,
        "Seconds between two passes of the cart expiry sweeper (`iconmarket carts sweep --loop`).",
        group="redis",
    )

    kafka_bootstrap: str = _setting(
        "127.0.0.1:19092", "Kafka bootstrap servers, comma separated.", group="kafka"
    )
    kafka_controller_port: int = _setting(
        19093, "Port of the local KRaft controller listener (local stack only).", group="kafka"
    )
    kafka_partitions: int = _setting(3, "Partitions per iconmarket topic.", group="kafka")
    kafka_session_timeout_s: float = _setting(
        10.0,
        "Seconds a consumer may go without a heartbeat before Kafka hands its partitions to "
        "another member of its group. A worker that crashed (kill -9) and was restarted gets "
        "its partitions back only after this, so its read model waits that long; heartbeats "
        "come from a background thread, so long batches do not count against it. The broker "
        "accepts 6 to 1800 by default.",
        group="kafka",
    )

    opensearch_url: str = _setting(
        "http://127.0.0.1:19200", "OpenSearch base URL.", group="opensearch"
    )
    opensearch_transport_port: int = _setting(
        19300, "OpenSearch transport port (local stack only).", group="opensearch"
    )
    opensearch_heap: str = _setting(
        "512m", "OpenSearch JVM heap (local stack only).", group="opensearch"
    )

    s3_endpoint: str = _setting(
        "http://127.0.0.1:19000",
        "S3 endpoint URL; leave empty to use AWS's own endpoints.",
        group="s3",
    )
    s3_region: str = _setting("us-east-1", "S3 region.", group="s3")
    s3_access_key: str = _setting("iconmarket", "S3 access key id.", secret=True, group="s3")
    s3_secret_key: str = _setting(
        "iconmarket-secret", "S3 secret access key.", secret=True, group="s3"
    )
    s3_bucket_private: str = _setting(
        "iconmarket-private", "Bucket for originals and paid derivatives.", group="s3"
    )
    s3_bucket_public: str = _setting(
        "iconmarket-public", "Bucket for public watermarked previews.", group="s3"
    )
    s3_console_port: int = _setting(
        19001, "Port of the object server's web console (local stack only).", group="s3"
    )
    download_url_ttl_s: int = _setting(
        300,
        "Lifetime of a presigned download URL (the 302 target of /v1/icons/{id}/download), in "
        "seconds.",
        group="s3",
    )

    svg_max_bytes: int = _setting(
        524_288, "Largest SVG upload accepted, in bytes (svg_too_large above).", group="ingest"
    )
    svg_max_elements: int = _setting(
        10_000,
        "Most elements an SVG may hold, counting <use> expansions (svg_too_many_elements).",
        group="ingest",
    )
    svg_max_depth: int = _setting(
        48, "Deepest element nesting an SVG may have (svg_too_deep).", group="ingest"
    )
    svg_max_dimension: int = _setting(
        4096,
        "Largest declared width, height or viewBox side of an SVG, in px (svg_dimensions).",
        group="ingest",
    )
    svg_max_render_cost: int = _setting(
        2_000_000,
        "Largest estimated render cost an SVG may have, in cost units (svg_too_costly above). "
        "A unit is about a microsecond of CPU time of the reference renderer for the whole "
        "derivative set; the model is in docs/media.md.",
        group="ingest",
    )
    upload_url_ttl_s: int = _setting(
        900, "Lifetime of a presigned SVG upload URL in seconds.", group="ingest"
    )
    zip_max_bytes: int = _setting(
        33_554_432, "Largest zip batch accepted, in bytes (zip_too_large).", group="ingest"
    )
    zip_max_entries: int = _setting(
        500, "Most entries a zip batch may hold (zip_too_many_entries).", group="ingest"
    )
    zip_max_uncompressed_bytes: int = _setting(
        67_108_864,
        "Most bytes a zip batch may expand to, declared and counted while reading (zip_bomb).",
        group="ingest",
    )
    zip_max_ratio: int = _setting(
        100, "Highest compression ratio of any zip entry (zip_bomb).", group="ingest"
    )
    import_staged_ttl_s: int = _setting(
        604_800,
        "Seconds a requested zip import's staged zip is kept for the import worker; "
        "`iconmarket media sweep-staged` deletes older ones (an import the worker reaches "
        "after that is refused: import_zip_missing).",
        group="ingest",
    )

    media_render_deadline_s: float = _setting(
        5.0,
        "CPU seconds one render pass (one output: a PNG size with what is made from it, or the "
        "PDF) may take; past it the render process is killed and the icon quarantined "
        "(Icon.RenderRefused, render_timeout), never retried for that original.",
        group="media",
    )
    media_render_processes: int = _setting(
        2,
        "Render processes of the media worker for icons estimated cheap (at most "
        "ICONMARKET_MEDIA_HEAVY_RENDER_COST).",
        group="media",
    )
    media_heavy_render_cost: int = _setting(
        400_000,
        "Estimated render cost (cost units) above which an icon is rendered by the heavy lane: "
        "a consumer group and render processes of its own, so costly icons never hold up cheap "
        "ones.",
        group="media",
    )
    media_heavy_render_processes: int = _setting(
        1,
        "Render processes of the heavy lane (run at a lower CPU priority).",
        group="media",
    )

    stripe_api_base: str = _setting(
        "http://127.0.0.1:12111",
        "Stripe API base URL; the local stack runs stripe-mock here. Use https://api.stripe.com "
        "in prod.",
        group="stripe",
    )
    stripe_secret_key: str = _setting(
        DEV_STRIPE_SECRET_KEY,
        "Stripe secret API key. Required when ICONMARKET_ENV=prod (the default is refused).",
        secret=True,
        group="stripe",
    )
    stripe_webhook_secret: str = _setting(
        DEV_STRIPE_WEBHOOK_SECRET,
        "Stripe webhook endpoint signing secret. Required when ICONMARKET_ENV=prod (the public "
        "default is refused: anyone could sign webhooks with it).",
        secret=True,
        group="stripe",
    )
    stripe_webhook_tolerance_s: int = _setting(
        300,
        "Seconds a signed webhook stays acceptable; an older signature timestamp is refused. "
        "Must be at least 1 (0 would disable the replay window).",
        group="stripe",
    )
    stripe_timeout_s: float = _setting(
        10.0, "Seconds one Stripe HTTP request may take before it is retried.", group="stripe"
    )
    stripe_max_retries: int = _setting(
        2,
        "Retries of a failed Stripe request (network errors, 409, 5xx), with the same "
        "idempotency key.",
        group="stripe",
    )
    stripe_breaker_failures: int = _setting(
        5,
        "Consecutive Stripe outages that open the circuit breaker (calls then fail fast with 503).",
        group="stripe",
    )
    stripe_breaker_cooldown_s: float = _setting(
        30.0, "Seconds the open breaker waits before one trial call to Stripe.", group="stripe"
    )
    payment_pending_timeout_s: int = _setting(
        1800,
        "Seconds a payment attempt may stay pending before reconciliation asks Stripe about it "
        "(and cancels an abandoned intent).",
        group="stripe",
    )
    payment_reconcile_interval_s: float = _setting(
        60.0,
        "Seconds between two reconciliation passes of `iconmarket run`'s payments process.",
        group="stripe",
    )

    smtp_host: str = _setting(
        "127.0.0.1",
        "SMTP server outgoing mail is handed to; the local stack runs Mailpit here (it keeps "
        "every mail instead of delivering it).",
        group="mail",
    )
    smtp_port: int = _setting(11025, "SMTP server port.", group="mail")
    mailpit_url: str = _setting(
        "http://127.0.0.1:18025",
        "Base URL of Mailpit's web UI and HTTP API (`/api/v1/...`), where the mail the local "
        "stack's SMTP server received can be read; tests read delivered mail through it (local "
        "stack only).",
        group="mail",
    )

    supervisor_max_crashes: int = _setting(
        5,
        "`iconmarket run` restarts a process that exits unexpectedly; when one process has "
        "crashed this many times within ICONMARKET_SUPERVISOR_CRASH_WINDOW_S, it stops every "
        "process instead and exits non-zero. 1 stops everything at the first crash.",
        group="supervisor",
    )
    supervisor_crash_window_s: float = _setting(
        60.0,
        "Seconds over which one process's crashes are counted against "
        "ICONMARKET_SUPERVISOR_MAX_CRASHES.",
        group="supervisor",
    )
    supervisor_restart_backoff_s: float = _setting(
        0.5,
        "Seconds `iconmarket run` waits before restarting a crashed process; doubled for each "
        "further crash of it within the crash window, up to "
        "ICONMARKET_SUPERVISOR_RESTART_BACKOFF_MAX_S.",
        group="supervisor",
    )
    supervisor_restart_backoff_max_s: float = _setting(
        10.0,
        "The longest wait before restarting a crashed process, in seconds.",
        group="supervisor",
    )

    rate_limit_enabled: bool = _setting(
        True,
        "Meter requests against the budgets below (false turns every budget off: for "
        "benchmarks of the service itself, never for a deployment).",
        group="limits",
    )
    rate_limit_fail_open: bool = _setting(
        True,
        "What a request gets when Redis, which holds the budgets' counters, does not answer "
        "within ICONMARKET_RATE_LIMIT_TIMEOUT_S: true serves it unmetered (a warning is logged, "
        "at most every 10 s per process, and `iconmarket_rate_limiter_unavailable_total` "
        "counts it); false refuses it with 503 `rate_limiter_unavailable` and Retry-After.",
        group="limits",
    )
    rate_limit_timeout_s: float = _setting(
        1.0,
        "Seconds one request's budget check may wait for Redis before Redis counts as down "
        "(a check takes well under a millisecond when Redis is up; a short bound lets a "
        "flood on an overloaded process through unmetered when the limiter fails open).",
        group="limits",
    )
    rate_limit_prefix: str = _setting(
        "ratelimit",
        "Prefix of the budgets' Redis keys. Every API worker of a deployment must use the same "
        "one: the workers share budgets through it (the test suite uses one per run).",
        group="limits",
    )
    rate_limit_trusted_proxies: str = _setting(
        "",
        "Comma-separated addresses or CIDR networks of the reverse proxies in front of the API. "
        "A request whose connection comes from one of them is counted against the right-most "
        "X-Forwarded-For entry that is not a trusted proxy; any other request against its "
        "connection's address, whatever X-Forwarded-For says. Empty trusts no proxy.",
        group="limits",
    )
    rate_limit_auth_per_ip: str = _setting(
        "60/minute;600/hour",
        "Budget of login, registration and password requests (POST, PUT, PATCH, DELETE under "
        "/v1/auth/) per client address. Every budget is in `limits` notation, `N/second`, "
        "`N/minute`, `N/hour` or `N/day` (also `N per 10 minutes`), several joined by `;` "
        "when each must hold (`5/second;30/minute`); windows slide.",
        group="limits",
    )
    rate_limit_auth_per_account: str = _setting(
        "20/minute",
        "Budget of login, registration and password requests per account (those that carry a "
        "valid access token).",
        group="limits",
    )
    rate_limit_commands_per_ip: str = _setting(
        "1200/minute",
        "Budget of commands (every other POST, PUT, PATCH and DELETE, except Stripe's webhook) "
        "per client address.",
        group="limits",
    )
    rate_limit_commands_per_account: str = _setting(
        "600/minute", "Budget of commands per account.", group="limits"
    )
    rate_limit_uploads_per_ip: str = _setting(
        "300/minute",
        "Budget of uploads (SVG upload, presigned upload and its completion, zip import) per "
        "client address.",
        group="limits",
    )
    rate_limit_uploads_per_account: str = _setting(
        "120/minute", "Budget of uploads per account.", group="limits"
    )
    rate_limit_reads_per_ip: str = _setting(
        "600/minute",
        "Budget of expensive reads (search, suggest, and any read given `min_position` or "
        "`X-Min-Position`) per client address; other reads are not metered.",
        group="limits",
    )
    rate_limit_reads_per_account: str = _setting(
        "300/minute", "Budget of expensive reads per account.", group="limits"
    )
    password_hash_workers: int = _setting(
        2,
        "Threads of the API process that hash and check passwords (argon2, about 64 MiB of "
        "memory each while hashing). Logins and registrations use only these, never the "
        "command threads.",
        group="limits",
    )
    password_hash_queue: int = _setting(
        8,
        "Password hashes that may wait for a free hashing thread; a login or registration "
        "that finds the queue full is refused at once with 503 `password_hashing_busy` and "
        "Retry-After.",
        group="limits",
    )

    state_dir: str = _setting(
        str(REPO_ROOT / ".stack"),
        "Local stack: data, logs and pid files of the services (git-ignored).",
        group="stack",
    )
    cache_dir: str = _setting(
        "",
        "Local stack: downloads and builds, kept outside the repo so a second `stack up` is "
        "fast. Empty means /var/cache/iconmarket for root, else ~/.cache/iconmarket.",
        group="stack",
    )
    service_user: str = _setting(
        "iconmarket",
        "Local stack: unprivileged user the services run as when the stack is started by root "
        "(PostgreSQL and OpenSearch refuse to run as root).",
        group="stack",
    )
    stack_ready_timeout_s: float = _setting(
        180.0, "Local stack: seconds to wait for one service to become ready.", group="stack"
    )

    def __post_init__(self) -> None:
        self.validate()
        self.validate_limits()

    def validate(self) -> None:
        """Refuse settings that would run unsafely: a webhook replay window of 0 or less
        (the ``stripe`` library skips the timestamp check when the tolerance is 0), a cart TTL
        the cart view would not outlive, a supervisor that would give up before any crash, a
        mode other than dev, test or prod, a token signing secret shorter than 32 characters,
        in dev and test an API bound beyond loopback, and in prod an empty or default Stripe
        secret key, webhook signing secret or metrics token."""
        if self.stripe_webhook_tolerance_s <= 0:
            raise SettingsError(
                f"{env_name('stripe_webhook_tolerance_s')}={self.stripe_webhook_tolerance_s} "
                "must be at least 1: 0 or less would accept replayed webhooks of any age"
            )
        if not 1 <= self.cart_ttl_s <= MAX_CART_TTL_S:
            raise SettingsError(
                f"{env_name('cart_ttl_s')}={self.cart_ttl_s} must be between 1 and "
                f"{MAX_CART_TTL_S}: the cart view keeps an idle cart only a day longer"
            )
        if self.supervisor_max_crashes < 1:
            raise SettingsError(
                f"{env_name('supervisor_max_crashes')}={self.supervisor_max_crashes} must be at "
                "least 1"
            )
        if not 0 <= self.sessions_cache_s <= MAX_SESSIONS_CACHE_S:
            raise SettingsError(
                f"{env_name('sessions_cache_s')}={self.sessions_cache_s} must be between 0 and "
                f"{MAX_SESSIONS_CACHE_S}: a block must reach every API worker within seconds"
            )
        if self.env not in ENVIRONMENTS:
            raise SettingsError(
                f"{env_name('env')}={self.env!r} is not a mode: set it to one of "
                f"{', '.join(ENVIRONMENTS)} (`make run` sets dev, `make test` sets test; prod "
                "requires real secrets)"
            )
        if len(self.jwt_secret.strip()) < MIN_JWT_SECRET:
            raise SettingsError(
                f"{env_name('jwt_secret')} must be at least {MIN_JWT_SECRET} characters (in dev "
                "and test, leave it unset to use the install's generated secret)"
            )
        if self.env != "prod":
            if self.api_host not in LOOPBACK_HOSTS:
                raise SettingsError(
                    f"{env_name('api_host')}={self.api_host!r}: ICONMARKET_ENV={self.env} "
                    "serves on loopback only (its secrets are public); use prod to serve "
                    "beyond this machine"
                )
            return
        for name, default in (
            ("stripe_secret_key", DEV_STRIPE_SECRET_KEY),
            ("stripe_webhook_secret", DEV_STRIPE_WEBHOOK_SECRET),
            ("metrics_token", ""),
        ):
            if getattr(self, name).strip() in ("", default):
                raise SettingsError(
                    f"{env_name(name)} must be set to a real secret when ICONMARKET_ENV=prod "
                    "(it is empty or the public development default)"
                )

    def validate_limits(self) -> None:
        """Refuse a budget that is not in `limits` notation or allows nothing, a trusted proxy
        that is not an address or network, and a hashing pool without threads."""
        for name in RATE_LIMIT_BUDGETS:
            value = getattr(self, name)
            try:
                items = parse_many(value)
            except ValueError:
                items = []
            if not items or any(item.amount < 1 for item in items):
                raise SettingsError(
                    f"{env_name(name)}={value!r} is not a budget such as 30/minute or "
                    "5/second;30/minute"
                )
        for entry in self.trusted_proxies():
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"{env_name('rate_limit_trusted_proxies')}: {entry!r} is not an address "
                    "or CIDR network"
                ) from None
        if self.rate_limit_timeout_s <= 0:
            raise SettingsError(f"{env_name('rate_limit_timeout_s')} must be more than 0")
        if self.password_hash_workers < 1 or self.password_hash_queue < 0:
            raise SettingsError(
                f"{env_name('password_hash_workers')} must be at least 1 and "
                f"{env_name('password_hash_queue')} at least 0"
            )

    def trusted_proxies(self) -> list[str]:
        """The entries of ``rate_limit_trusted_proxies``."""
        return [part.strip() for part in self.rate_limit_trusted_proxies.split(",") if part.strip()]

    @property
    def postgres_dsn(self) -> str:
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password}@{self.postgres_host}:"
            f"{self.postgres_port}/{self.postgres_db}?connect_timeout={self.postgres_connect_timeout_s}"
        )

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir or _default_cache_dir())

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced, safe to log or print."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata.get("secret") and value else value
        return out

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _convert(raw: str, target: Any, name: str) -> Any:
    try:
        if target in (int, "int"):
            return int(raw)
        if target in (float, "float"):
            return float(raw)
        if target in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {target}") from exc
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: the process environment). In dev and test
    an unset token signing secret is the install's own (``install_secret``)."""
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        name = env_name(f.name)
        if name in source:
            values[f.name] = _convert(source[name], f.type, name)
    mode = values.get("env", "")
    if mode in ENVIRONMENTS and mode != "prod" and not values.get("jwt_secret", "").strip():
        state = values.get("state_dir", Settings.__dataclass_fields__["state_dir"].default)
        values["jwt_secret"] = install_secret(Path(state))
    return Settings(**values)


def install_secret(state_dir: Path) -> str:
    """This install's token signing secret in dev and test: made once (random, 0600) and read
    ever after. Processes starting at once agree: the file appears whole (a hard link of a
    finished temporary file) or not at all, and the first link wins."""
    path = state_dir / JWT_SECRET_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=state_dir, prefix=".jwt-secret-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def setting_docs() -> list[dict[str, Any]]:
    """One row per setting: variable name, default, group, secret flag and description."""
    rows = []
    for f in dataclasses.fields(Settings):
        rows.append(
            {
                "name": env_name(f.name),
                "default": f.default,
                "group": f.metadata["group"],
                "secret": f.metadata["secret"],
                "doc": f.metadata["doc"],
            }
        )
    return rows
