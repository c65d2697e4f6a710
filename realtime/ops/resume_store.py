"""Where a session waits for its client: resume tokens and session state, in Redis or memory.

A session that may be resumed (``realtime/session/continuity.py``) keeps here:

- its **state** (the conversation as the model knows it, its counters, when it started, whether
  it is detached), one JSON value per session, written at the end of each turn, when the client's
  socket is lost and when the worker drains; while a worker serves the session the value is kept
  alive by each heartbeat (it expires two heartbeats after the last, plus the resume window: a
  SIGKILLed worker's sessions stay resumable that long), once detached it expires with the resume
  window;
- its **owner**: the connection that serves it now. A write of the state succeeds only for the
  owner, so a connection that lost its session to a resume elsewhere cannot overwrite it;
- its **tokens**: ``<nonce>:<signature>`` (Django's ``Signer`` with the secret key), opaque and
  single-use. The store maps a hash of the nonce to the session and what it is bound to (the
  user); redeeming deletes it in the same step (Redis ``GETDEL``), so of two redeems at once only
  one wins, on any worker. Nothing about the conversation is in a token.

With ``REDIS_URL`` set, every worker shares the store (a client resumes on any worker); without
it the store is this process's memory (one process: the same behaviour, in memory). Redis calls
are bounded by ``RELAY_REDIS_TIMEOUT_SECONDS`` and fail soft: a session whose state cannot be
written still runs (it cannot be resumed elsewhere), a token that cannot be issued is ``null``,
a redeem that cannot be checked is refused; an outage is logged once
(``realtime.compat.redis_pools``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.core import signing

from realtime.compat import redis_pools

log = logging.getLogger("realtime.ops.resume_store")

TOKEN_SALT = "realtime.resume-token"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What a valid, unspent token names: the session and whom it is bound to."""

    session_id: str
    binding: str


def sign(nonce: str) -> str:
    return signing.Signer(salt=TOKEN_SALT).sign(nonce)


def unsign(token: str) -> str | None:
    """The nonce of a token signed with this deployment's secret key, else None (forged)."""
    try:
        return signing.Signer(salt=TOKEN_SALT).unsign(token)
    except signing.BadSignature:
        return None


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _record(raw: str | None) -> Redeemed | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        return Redeemed(str(record["s"]), str(record["b"]))
    except (ValueError, KeyError, TypeError):
        return None


class ResumeStore:
    """The interface; ``MemoryResumeStore`` and ``RedisResumeStore`` implement it."""

    shared = False  # True: every worker sees the same store (Redis)

    async def issue(self, session_id: str, binding: str, ttl: float) -> str | None:
        """A fresh single-use token for this session, valid ``ttl`` seconds at most."""
        nonce = secrets.token_urlsafe(24)
        record = json.dumps({"s": session_id, "b": binding})
        if not await self._put_token(_hash(nonce), record, ttl):
            return None
        return sign(nonce)

    async def redeem(self, token: str, binding: str) -> Redeemed | None:
        """Spend a token presented by ``binding`` (its user): what it names, once. None for a
        forged, unknown or spent token; a token bound to someone else is not spent (whoever
        presents it cannot take it from its owner) and comes back with that binding."""
        nonce = unsign(token)
        if nonce is None:
            return None
        key = _hash(nonce)
        found = _record(await self._peek_token(key))
        if found is None or found.binding != binding:
            return found
        return _record(await self._take_token(key))

    # ---- implemented by each store ------------------------------------------------------------

    async def _put_token(self, key: str, record: str, ttl: float) -> bool:
        raise NotImplementedError

    async def _take_token(self, key: str) -> str | None:
        raise NotImplementedError

    async def _peek_token(self, key: str) -> str | None:
        raise NotImplementedError

    async def save(self, session_id: str, state: dict[str, Any], *, owner: str, ttl: float) -> bool:
        """Write the state if ``owner`` owns the session (or no one does): True if written."""
        raise NotImplementedError

    async def load(self, session_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def owner(self, session_id: str) -> str | None:
        raise NotImplementedError

    async def claim(self, session_id: str, owner: str, ttl: float) -> None:
        """``owner`` serves the session from now on (a resume); the previous owner's writes fail."""
        raise NotImplementedError

    async def touch(self, session_id: str, owner: str, ttl: float) -> None:
        """Keep the state alive ``ttl`` more seconds (the owner's heartbeat)."""
        raise NotImplementedError

    async def discard(self, session_id: str, owner: str) -> None:
        """The session ended: forget its state (only its owner may)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class MemoryResumeStore(ResumeStore):
    """This process's memory: for the embedded defaults (one process, no Redis)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[float, str]] = {}
        self._states: dict[str, tuple[float, dict[str, Any]]] = {}
        self._owners: dict[str, tuple[float, str]] = {}

    def _live(self, table: dict[str, tuple[float, Any]], key: str) -> Any:
        entry = table.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del table[key]
            return None
        return entry[1]

    def _sweep(self) -> None:
        now = self._clock()
        for table in (self._tokens, self._states, self._owners):
            for key in [k for k, (expires, _) in table.items() if expires <= now]:
                del table[key]

    async def _put_token(self, key: str, record: str, ttl: float) -> bool:
        if len(self._tokens) > 1024:
            self._sweep()
        self._tokens[key] = (self._clock() + ttl, record)
        return True

    async def _take_token(self, key: str) -> str | None:
        record = self._live(self._tokens, key)
        self._tokens.pop(key, None)
        return record

    async def _peek_token(self, key: str) -> str | None:
        return self._live(self._tokens, key)

    async def save(self, session_id: str, state: dict[str, Any], *, owner: str, ttl: float) -> bool:
        current = self._live(self._owners, session_id)
        if current is not None and current != owner:
            return False
        expires = self._clock() + ttl
        self._states[session_id] = (expires, json.loads(json.dumps(state)))  # a copy, as Redis
        self._owners[session_id] = (expires, owner)
        return True

    async def load(self, session_id: str) -> dict[str, Any] | None:
        state = self._live(self._states, session_id)
        return json.loads(json.dumps(state)) if state is not None else None

    async def owner(self, session_id: str) -> str | None:
        return self._live(self._owners, session_id)

    async def claim(self, session_id: str, owner: str, ttl: float) -> None:
        self._owners[session_id] = (self._clock() + ttl, owner)

    async def touch(self, session_id: str, owner: str, ttl: float) -> None:
        if self._live(self._owners, session_id) != owner:
            return
        expires = self._clock() + ttl
        self._owners[session_id] = (expires, owner)
        state = self._live(self._states, session_id)
        if state is not None:
            self._states[session_id] = (expires, state)

    async def discard(self, session_id: str, owner: str) -> None:
        if self._live(self._owners, session_id) in (owner, None):
            self._states.pop(session_id, None)
            self._owners.pop(session_id, None)


# KEYS: state, owner; ARGV: owner, state JSON, ttl (ms)
_SAVE = """
local current = redis.call('GET', KEYS[2])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""
# KEYS: state, owner; ARGV: owner, ttl (ms)
_TOUCH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# KEYS: state, owner; ARGV: owner
_DISCARD = """
local current = redis.call('GET', KEYS[2])
if current and current ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


class RedisResumeStore(ResumeStore):
    """Redis (``REDIS_URL``): shared by every worker; every call bounded, failures soft."""

    shared = True

    def __init__(self, url: str, *, prefix: str, timeout_s: float, max_connections: int) -> None:
        import redis.asyncio as aioredis

        self.prefix = f"{prefix}-resume"
        self.timeout_s = timeout_s
        self._pool = redis_pools.async_pool(url, timeout_s, max_connections, "relay-resume")
        self.redis = aioredis.Redis(connection_pool=self._pool)
        self._save = self.redis.register_script(_SAVE)
        self._touch = self.redis.register_script(_TOUCH)
        self._discard = self.redis.register_script(_DISCARD)

    def _keys(self, session_id: str) -> list[str]:
        return [f"{self.prefix}:state:{session_id}", f"{self.prefix}:owner:{session_id}"]

    async def _call(self, use: str, work: Any, default: Any) -> Any:
        if not redis_pools.may_try(use):
            work.close()
            return default
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await work
        except Exception as exc:  # redis errors, OSError, TimeoutError
            redis_pools.unreachable(use, exc)
            return default
        redis_pools.answered()
        return result

    async def _put_token(self, key: str, record: str, ttl: float) -> bool:
        work = self.redis.set(f"{self.prefix}:token:{key}", record, px=max(1, int(ttl * 1000)))
        return bool(await self._call("resume token", work, False))

    async def _take_token(self, key: str) -> str | None:
        raw = await self._call(
            "resume token", self.redis.getdel(f"{self.prefix}:token:{key}"), None
        )
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _peek_token(self, key: str) -> str | None:
        raw = await self._call("resume token", self.redis.get(f"{self.prefix}:token:{key}"), None)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def save(self, session_id: str, state: dict[str, Any], *, owner: str, ttl: float) -> bool:
        work = self._save(
            keys=self._keys(session_id),
            args=[owner, json.dumps(state, separators=(",", ":")), max(1, int(ttl * 1000))],
        )
        return bool(await self._call("resume state", work, 0))

    async def load(self, session_id: str) -> dict[str, Any] | None:
        raw = await self._call("resume state", self.redis.get(self._keys(session_id)[0]), None)
        if raw is None:
            return None
        try:
            state = json.loads(raw)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    async def owner(self, session_id: str) -> str | None:
        raw = await self._call("resume state", self.redis.get(self._keys(session_id)[1]), None)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def claim(self, session_id: str, owner: str, ttl: float) -> None:
        work = self.redis.set(self._keys(session_id)[1], owner, px=max(1, int(ttl * 1000)))
        await self._call("resume state", work, None)

    async def touch(self, session_id: str, owner: str, ttl: float) -> None:
        work = self._touch(keys=self._keys(session_id), args=[owner, max(1, int(ttl * 1000))])
        await self._call("resume state", work, None)

    async def discard(self, session_id: str, owner: str) -> None:
        await self._call(
            "resume state", self._discard(keys=self._keys(session_id), args=[owner]), None
        )

    async def aclose(self) -> None:
        await self._pool.disconnect()


def build(config: Any) -> ResumeStore:
    """Redis when ``REDIS_URL`` is set (every worker shares it), else this process's memory."""
    from django.conf import settings

    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return MemoryResumeStore()
    return RedisResumeStore(
        url,
        prefix=getattr(settings, "REDIS_CHANNEL_PREFIX", "relay"),
        timeout_s=config.redis_timeout_s,
        max_connections=config.redis_max_connections,
    )
