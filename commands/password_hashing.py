"""Passwords: the one argon2 hasher, the strength rule, and a bounded pool of threads that does
nothing but hash, so that a flood of logins or registrations can never take the threads that
commands run in (argon2 takes tens of milliseconds and 64 MiB per hash by design)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from commands.errors import HashingBusy, WeakPassword

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
T = TypeVar("T")


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class PasswordHashing:
    """``workers`` hashing threads and at most ``queue`` hashes waiting for one. A hash that
    finds every place taken is refused at once with `HashingBusy` (503 with Retry-After) rather
    than queued without bound. argon2-cffi releases the GIL while it hashes, so the threads
    hash in parallel and the event loop keeps serving."""

    def __init__(self, workers: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._places = threading.BoundedSemaphore(workers + queue)

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """Run ``fn(*args)`` on a hashing thread. Its place is given back as soon as it has run
        (before its future completes), or when it is cancelled before it ran (its caller went
        away): a place is never lost."""
        if not self._places.acquire(blocking=False):
            raise HashingBusy("too many password checks at once; retry shortly")

        def run() -> T:
            try:
                return fn(*args)
            finally:
                self._places.release()

        try:
            future = self._pool.submit(run)
        except BaseException:
            self._places.release()
            raise
        future.add_done_callback(lambda done: self._places.release() if done.cancelled() else None)
        return future

    async def hash(self, password: str) -> str:
        return await asyncio.wrap_future(self.submit(hash_password, password))

    async def matches(self, password_hash: str, password: str) -> bool:
        return await asyncio.wrap_future(self.submit(password_matches, password_hash, password))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
