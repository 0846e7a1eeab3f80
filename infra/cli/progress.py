"""The CLI's progress bars for long work over events: one bar per label, with a rate and ETA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from commands import log


@contextmanager
def event_progress(console: Console) -> Iterator[log.Progress]:
    """A progress callback ``(label, done, total)`` showing one bar per label, with a rate."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, tuple[Any, float]] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = (bar.add_task(label, total=total, rate="-"), time.perf_counter())
            task, began = tasks[label]
            rate = done / max(time.perf_counter() - began, 1e-9)
            bar.update(task, completed=done, total=max(total, done), rate=f"{rate:,.0f}")

        yield update
