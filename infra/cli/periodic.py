"""The loop of the housekeeping processes of `iconmarket run` (`carts sweep --loop`,
`payments reconcile --loop`, `media sweep-staged --loop`): one pass every interval until SIGTERM
or Ctrl-C, a failed pass logged and retried at the next one."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable


def every(interval_s: float, one_pass: Callable[[], None], what: str, log: logging.Logger) -> None:
    """Run ``one_pass`` every ``interval_s`` seconds until SIGTERM or SIGINT. The first pass
    waits one interval: `iconmarket run` starts every process at once, and none of these
    passes has anything to do that cannot wait that long. A pass that raises (a store or a
    dependency down for a moment) must not stop `iconmarket run`: it is logged as ``what``
    failing, and the next pass tries again."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(interval_s):
        try:
            one_pass()
        except Exception:
            log.exception(f"{what} pass failed")
