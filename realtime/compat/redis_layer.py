"""The channels-redis layer with timeouts and a capped pool (channels-redis 4.3.0, redis 7.4).

``RedisChannelLayer`` builds each shard's pool with ``create_pool(index)`` from its ``hosts``
entry: a plain ``redis.asyncio.ConnectionPool`` (no socket timeouts, no size limit that waits).
``BoundedRedisChannelLayer`` overrides that method to build the relay's pool
(``realtime.compat.redis_pools``: connect/read/pool-wait timeouts, ``max_connections``), and lowers
``brpop_timeout`` (the layer's blocking receive, a class attribute, 5 s) below the read
timeout, or every idle receive would end in a read timeout. Each operation the relay awaits is
also bounded as a whole by ``timeout`` (``realtime.compat.consumer``).
``tests/compat/test_redis_layer.py`` fails when either hook changes.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer

from realtime.compat import redis_pools


class BoundedRedisChannelLayer(RedisChannelLayer):
    def __init__(
        self, hosts: Any = None, *, timeout: float = 2.0, max_connections: int = 20, **kwargs: Any
    ) -> None:
        super().__init__(hosts=hosts, **kwargs)
        self.timeout = timeout
        self.max_connections = max_connections
        # BZPOPMIN accepts a float timeout (Redis ≥ 6); it must return before a read times out.
        self.brpop_timeout = timeout / 2

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # sentinel or host/port entries: channels-redis builds those
            return super().create_pool(index)
        options = redis_pools.pool_options(self.timeout, self.max_connections, "relay-layer")
        return redis_pools.aioredis.BlockingConnectionPool.from_url(address, **(options | host))
