"""Failed sign-ins counted per username and per client address, in memory."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]

#: Keys remembered at most per kind; the stalest are forgotten first beyond this.
_MAX_KEYS = 10_000


class LoginLimiter:
    """Refuses sign-in for a while after too many failures.

    A username with ``max_failures`` failed sign-ins within ``window_seconds``, or a
    client address with ``max_failures_per_address``, is refused until the oldest of
    those failures is ``window_seconds`` old. Attempts refused this way are not
    counted, so a refusal never lasts longer than the window. A successful sign-in
    clears the username's failures (not the address's).

    The counts live in this process's memory: they restart with it, and several API
    processes count apart (each applies the limits to what it sees).

    Parameters
    ----------
    max_failures:
        Failures of one username allowed within the window.
    max_failures_per_address:
        Failures from one client address allowed within the window.
    window_seconds:
        How long a failure counts.
    clock:
        Monotonic seconds (for tests).
    """

    def __init__(
        self,
        *,
        max_failures: int,
        max_failures_per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"`max_failures` must be >= 1, {max_failures} is given")
        if max_failures_per_address < 1:
            raise ValueError(
                f"`max_failures_per_address` must be >= 1, {max_failures_per_address} is given"
            )
        if window_seconds <= 0:
            raise ValueError(f"`window_seconds` must be > 0, {window_seconds} is given")
        self.max_failures = max_failures
        self.max_failures_per_address = max_failures_per_address
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._by_user: dict[str, deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait before ``username`` may try from ``address``; ``None``: now."""
        now = self._clock()
        with self._lock:
            waits = [
                self._wait(self._by_user, username.casefold(), self.max_failures, now),
                self._wait(self._by_address, address, self.max_failures_per_address, now),
            ]
        longest = max(waits)
        return math.ceil(longest) if longest > 0 else None

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in of ``username`` from ``address``."""
        now = self._clock()
        with self._lock:
            for table, key in ((self._by_user, username.casefold()), (self._by_address, address)):
                failures = table.pop(key, None) or deque()
                self._expire(failures, now)
                failures.append(now)
                table[key] = failures  # re-inserted: the dict stays ordered by last failure
                while len(table) > _MAX_KEYS:
                    del table[next(iter(table))]

    def succeeded(self, username: str) -> None:
        """Forget the failures of ``username`` after a successful sign-in."""
        with self._lock:
            self._by_user.pop(username.casefold(), None)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()

    def _wait(self, table: dict[str, deque[float]], key: str, limit: int, now: float) -> float:
        failures = table.get(key)
        if not failures:
            return 0.0
        self._expire(failures, now)
        if not failures:
            del table[key]
            return 0.0
        if len(failures) < limit:
            return 0.0
        return failures[-limit] + self.window_seconds - now
