"""realtime.compat.redis_layer: channels-redis must still build its pools through
``create_pool(index)`` and block in receive for ``brpop_timeout`` seconds."""

from __future__ import annotations

import inspect

import redis.asyncio as aioredis
from channels_redis import core

from realtime.compat.redis_layer import BoundedRedisChannelLayer


def test_channels_redis_still_builds_pools_and_blocks_through_the_hooks_the_layer_overrides():
    assert "create_pool(index)" in inspect.getsource(core.RedisLoopLayer.get_connection), (
        "channels-redis no longer calls layer.create_pool: the relay's pool (timeouts, cap) "
        "would not be used"
    )
    receive_source = inspect.getsource(core.RedisChannelLayer.receive_single)
    assert "self.brpop_timeout" in receive_source, "channels-redis changed its blocking receive"
    assert core.RedisChannelLayer.brpop_timeout == 5


def test_the_layer_s_pool_has_the_timeouts_and_the_cap():
    layer = BoundedRedisChannelLayer(
        hosts=["redis://127.0.0.1:6379/0"], timeout=1.5, max_connections=7
    )
    pool = layer.create_pool(0)
    assert isinstance(pool, aioredis.BlockingConnectionPool)
    assert pool.max_connections == 7 and pool.timeout == 1.5
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5 and kwargs["socket_connect_timeout"] == 1.5
    assert kwargs["client_name"] == "relay-layer"
    assert layer.brpop_timeout < kwargs["socket_timeout"]  # an idle receive never times out
