"""What the Redis stores keep where, and the Lua scripts that change it atomically.

Every key starts with ``renewal:<namespace>:``, so that several apps share one Redis:

``lineage:<id>``
    JSON ``{"g": generation, "s": sealed, "e": 0|1}``, expiring (``PX``) with its TTL.
``lock:<id>``
    The holder's random token (``SET NX PX``); the release publishes on ``done:<id>``.
``tombstones`` and ``tombstones:expires``
    Sorted sets of the tombstone keys, scored by their time and by when they expire
    (Redis time, in milliseconds); expired members are pruned on each burial.
``claim:<key>``
    Set once (``SET NX PX``) for the replay checks.

Both twins (:mod:`.redis_sync`, :mod:`.redis_async`) share this module; it does not
import redis itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from .base import Lineage, StoreUnavailable, Tombstone

PREFIX = "renewal:"

# The scripts read the time from Redis so that every host expires entries alike.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

#: KEYS: lineage. ARGV: generation, JSON, TTL (ms). A newer or ended stored lineage wins.
WRITE = """
local stored = redis.call('GET', KEYS[1])
if stored then
  local ok, old = pcall(cjson.decode, stored)
  if ok and type(old) == 'table' and (old.e == 1 or old.e == true
      or (tonumber(old.g) or -1) > tonumber(ARGV[1])) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

#: KEYS: lock. ARGV: token, TTL (ms). 0 when taken, else the holder's milliseconds left.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  return tonumber(ARGV[2])
end
return math.max(left, 1)
"""

#: KEYS: lock. ARGV: token, channel. Deletes the lock only if it is still this holder's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
"""

#: KEYS: tombstones, their expiries, then the lineage of each ``s:`` tombstone in order.
#: ARGV: TTL (ms), then key and time of each tombstone.
BURY = _NOW + """
local ttl = tonumber(ARGV[1])
local expires = string.format('%d', now + ttl)
local lineage = 3
for i = 2, #ARGV, 2 do
  local key, at = ARGV[i], ARGV[i + 1]
  local old = redis.call('ZSCORE', KEYS[2], key)
  if old and tonumber(old) > now then
    -- A live tombstone keeps the later time (it ends more sessions of a subject).
    local prior = redis.call('ZSCORE', KEYS[1], key)
    if not prior or tonumber(at) > tonumber(prior) then
      redis.call('ZADD', KEYS[1], at, key)
    end
    if tonumber(expires) > tonumber(old) then
      redis.call('ZADD', KEYS[2], expires, key)
    end
  else
    redis.call('ZADD', KEYS[1], at, key)
    redis.call('ZADD', KEYS[2], expires, key)
  end
  if string.sub(key, 1, 2) == 's:' then
    local generation, px = 0, ttl
    local stored = redis.call('GET', KEYS[lineage])
    if stored then
      local ok, previous = pcall(cjson.decode, stored)
      if ok and type(previous) == 'table' then
        generation = tonumber(previous.g) or 0
      end
      px = math.max(px, redis.call('PTTL', KEYS[lineage]))
    end
    redis.call('SET', KEYS[lineage], string.format('{"g":%d,"s":"","e":1}', generation),
               'PX', string.format('%d', px))
    lineage = lineage + 1
  end
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(dead))
end
-- The sets outlive their longest-lived member, then vanish with an idle app.
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""

#: KEYS: tombstones, their expiries. ARGV: since. Key and time of each live one, by time.
TOMBSTONES = _NOW + """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES')
local live = {}
for i = 1, #found, 2 do
  local expires = redis.call('ZSCORE', KEYS[2], found[i])
  if expires and tonumber(expires) > now then
    live[#live + 1] = found[i]
    live[#live + 1] = found[i + 1]
  end
end
return live
"""


@dataclasses.dataclass(eq=False)
class RedisLock:
    """A renewal lock held in Redis: ``lock:<id>`` holds ``token`` until released."""

    session_id: str
    #: Tells this holder apart from a later one that took the lock after it expired.
    token: str
    acquired_at: float


class Keys:
    """The names of one app's keys and channels."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"{PREFIX}{namespace}:"
        self.tombstones = f"{self.prefix}tombstones"
        self.expiries = f"{self.prefix}tombstones:expires"

    def lineage(self, session_id: str) -> str:
        return f"{self.prefix}lineage:{session_id}"

    def lock(self, session_id: str) -> str:
        return f"{self.prefix}lock:{session_id}"

    def done(self, session_id: str) -> str:
        """The channel a release publishes on."""
        return f"{self.prefix}done:{session_id}"

    def claim(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> tuple[list[str], list[str]]:
        """The keys and arguments of :data:`BURY`."""
        keys = [self.tombstones, self.expiries]
        args = [str(milliseconds(ttl))]
        for tombstone in tombstones:
            args += [tombstone.key, score(tombstone.at)]
            if tombstone.key.startswith("s:"):
                keys.append(self.lineage(tombstone.key[2:]))
        return keys, args


#: What a lock key without an expiry (which these stores never set) counts as: held a day.
NO_EXPIRY_MS = 86_400_000


def held_for(reply: Any) -> int:
    """The milliseconds ``PTTL`` of a lock key answered it is held for; 0 when it is free."""
    if not isinstance(reply, int) or isinstance(reply, bool) or reply < -2:
        raise StoreUnavailable("Redis answered a malformed PTTL reply")
    if reply == -2:  # no such key
        return 0
    if reply == -1:
        return NO_EXPIRY_MS
    return max(reply, 1)  # 0: it expires within the millisecond


def milliseconds(seconds: float) -> int:
    """A TTL for ``PX`` (which refuses 0)."""
    return max(1, math.ceil(seconds * 1000))


def score(at: float) -> str:
    """A time as a sorted-set score, exactly (``repr`` round-trips a float)."""
    if math.isnan(at):
        raise ValueError("a tombstone's time is NaN")
    return repr(float(at))


def encode_lineage(lineage: Lineage) -> str:
    return json.dumps({"g": lineage.generation, "s": lineage.sealed, "e": int(lineage.ended)},
                      separators=(",", ":"))


def decode_lineage(raw: Any) -> Lineage | None:
    """The lineage a ``GET`` answered, or ``None`` for a missing key."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        generation, sealed, ended = data["g"], data["s"], data["e"]
    except (ValueError, TypeError, KeyError):
        raise StoreUnavailable("Redis holds a malformed lineage") from None
    if (not isinstance(generation, int) or isinstance(generation, bool)
            or not isinstance(sealed, str) or ended not in (0, 1)):
        raise StoreUnavailable("Redis holds a malformed lineage")
    return Lineage(generation, sealed, bool(ended))


def decode_tombstones(raw: Any) -> list[Tombstone]:
    """The tombstones :data:`TOMBSTONES` answered (key, time, key, time, ...)."""
    try:
        pairs = list(raw)
        found = [Tombstone(_text(pairs[i]), float(pairs[i + 1]))
                 for i in range(0, len(pairs), 2)]
    except (ValueError, TypeError, IndexError):
        raise StoreUnavailable("Redis answered malformed tombstones") from None
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"not a string: {type(value).__name__}")


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The error every Redis failure becomes; its message names no host or password."""
    return StoreUnavailable(f"Redis failed: {type(exc).__name__}")
