"""Failed sign-ins per username and per address, within a sliding window."""

from __future__ import annotations

import pytest

from soi.auth import LoginLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def limiter(clock: _Clock) -> LoginLimiter:
    return LoginLimiter(max_failures=5, max_failures_per_address=8, window_seconds=300, clock=clock)


class TestLoginLimiter:
    def test_five_failures_of_a_username_block_it_for_the_window(
        self, limiter: LoginLimiter, clock: _Clock
    ) -> None:
        for _ in range(4):
            limiter.failed("Lan", "10.0.0.1")
            clock.now += 10
        assert limiter.retry_after("lan", "10.0.0.1") is None
        limiter.failed("lan", "10.0.0.2")
        # The first failure (at 1000) counts until 1300; it is 1040 now.
        assert limiter.retry_after("LAN", "10.0.0.3") == 260
        clock.now = 1299.5
        assert limiter.retry_after("lan", "10.0.0.3") == 1
        clock.now = 1300.0
        assert limiter.retry_after("lan", "10.0.0.3") is None
        assert limiter.retry_after("minh", "10.0.0.1") is None

    def test_an_address_is_blocked_across_usernames(
        self, limiter: LoginLimiter, clock: _Clock
    ) -> None:
        for index in range(8):
            limiter.failed(f"user{index}", "10.0.0.9")
        assert limiter.retry_after("someone-else", "10.0.0.9") == 300
        assert limiter.retry_after("someone-else", "10.0.0.10") is None

    def test_success_clears_the_username_only(self, limiter: LoginLimiter) -> None:
        for _ in range(5):
            limiter.failed("lan", "10.0.0.1")
        for index in range(3):
            limiter.failed(f"u{index}", "10.0.0.1")
        limiter.succeeded("lan")
        assert limiter.retry_after("lan", "10.0.0.2") is None
        assert limiter.retry_after("lan", "10.0.0.1") == 300

    @pytest.mark.parametrize(
        ("arguments", "name"),
        [
            (
                {"max_failures": 0, "max_failures_per_address": 1, "window_seconds": 1},
                "max_failures",
            ),
            (
                {"max_failures": 1, "max_failures_per_address": 0, "window_seconds": 1},
                "max_failures_per_address",
            ),
            ({"max_failures": 1, "max_failures_per_address": 1, "window_seconds": 0}, "window"),
        ],
    )
    def test_invalid_limits(self, arguments: dict[str, float], name: str) -> None:
        with pytest.raises(ValueError, match=name):
            LoginLimiter(**arguments)  # type: ignore[arg-type]
