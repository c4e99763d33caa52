"""Sample user code for mypy: asyncio consumers of both kinds of queue."""

from __future__ import annotations

import asyncio
import queue

from ipcq import posixmq, sysvmq
from ipcq.aio import AsyncPosixQueue, AsyncQueue, AsyncSysvQueue


async def consume_posix(name: str) -> list[str]:
    seen: list[str] = []
    aq: AsyncPosixQueue = AsyncQueue(posixmq.Queue(name, serializer="json"))
    async with aq:
        await aq.put("first", priority=2)
        await aq.put("second", timeout=0.5, pickle_protocol=None)
        item, priority = await aq.get_with_priority(timeout=1)
        seen.append(f"{item}:{priority}")
        try:
            seen.append(await aq.get(timeout=0.1))
        except queue.Empty:
            pass
        aq.put_nowait("third")
        seen.append(aq.get_nowait())
        print(aq.qsize(), aq.empty(), aq.full(), aq.closed, aq.queue.name)
    return seen


async def first_of(name: str) -> tuple[str, int]:
    async with AsyncQueue(posixmq.Queue(name, serializer="json")) as aq:
        item, priority = await aq.get_with_priority(timeout=1)
        return str(item), priority + 1


async def consume_sysv() -> int:
    aq = AsyncQueue(sysvmq.Queue())
    count = 0
    await aq.put({"n": 1}, msg_type=3)
    item, msg_type = await aq.get_with_type(-3, timeout=1.0)
    print(item, msg_type + count)

    async def stop_soon(wrapper: AsyncSysvQueue) -> None:
        await asyncio.sleep(0.1)
        wrapper.close()

    stopper = asyncio.ensure_future(stop_soon(aq))
    async for _ in aq:
        count += 1
    await stopper
    return count


def main() -> None:
    print(asyncio.run(consume_posix("/typing-sample")))
    print(asyncio.run(consume_sysv()))
    print(asyncio.run(first_of("/typing-sample")))
    posixmq.unlink("/typing-sample")
