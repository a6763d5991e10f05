"""A work queue in the event loop, as controller-runtime's: one key, one worker at a time.

- ``add(key)``: queue now; a key already queued is not queued twice; a key being worked on is
  marked dirty and queued again when its worker is done (no change is lost, none runs twice
  in parallel).
- ``add_after(key, delay)``: queue later; a new delay replaces the key's previous one.
- ``forget(key)``: drop its timer (the object is gone or suspended).
- ``clear()``: drop every queued key and timer (another replica took over); keys being worked
  on finish.

Every method is called from the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._dirty.discard(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def scheduled(self, key: K) -> bool:
        return key in self._timers or key in self._queued or key in self._active

    def __len__(self) -> int:
        return len(self._queued)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def clear(self) -> None:
        self.close()
        self._dirty.clear()
        self._queued.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
