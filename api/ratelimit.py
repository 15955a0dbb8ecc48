"""Rate limits through the ``limits`` library, shared by every API replica when Redis is
configured (``PARLEY_API_REDIS_URL``) and in process memory otherwise (the embedded default).

Two limits: requests per key or user (``rate_burst`` within ``rate_burst / rate_per_sec``
seconds), and failed authentications per client address (checked before a credential is even
looked at, so guessing keys is slow)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


class RateLimiter:
    def __init__(
        self,
        rate_per_sec: float,
        burst: int,
        *,
        failed_auth_per_min: int = 10,
        storage_url: str | None = None,
    ) -> None:
        window = max(1, math.ceil(burst / rate_per_sec))
        self.requests: RateLimitItem = RateLimitItemPerSecond(burst, window)
        self.failed_auth: RateLimitItem = RateLimitItemPerMinute(failed_auth_per_min)
        self.storage: Storage = storage_from_string(  # type: ignore[assignment]
            storage_url.replace("redis://", "async+redis://", 1)
            if storage_url and storage_url.startswith("redis://")
            else (storage_url or "async+memory://")
        )
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def _wait(self, item: RateLimitItem, key: str) -> float:
        stats = await self._limiter.get_window_stats(item, key)
        return max(0.1, stats.reset_time - time.time())

    async def take(self, key: str) -> float:
        """Count one request; 0 if allowed, else the seconds to wait before retrying."""
        if await self._limiter.hit(self.requests, "req", key):
            return 0.0
        return await self._wait(self.requests, key)

    async def auth_blocked(self, address: str) -> float:
        """Seconds this address must wait after too many failed authentications (0: none)."""
        if await self._limiter.test(self.failed_auth, "auth", address):
            return 0.0
        return await self._wait(self.failed_auth, address)

    async def auth_failed(self, address: str) -> None:
        await self._limiter.hit(self.failed_auth, "auth", address)
