"""asyncio helpers.

redis-py's asyncio client can swallow a task's cancellation that arrives at the wrong moment
of a command (redis/redis-py#2028, #2551; reproduced here with SET in a tight loop): the
command returns normally and the task runs on, so a background loop stopped with
``cancel()`` would never end. Such loops call :func:`checkpoint` after their Redis calls.
"""

from __future__ import annotations

import asyncio


def checkpoint() -> None:
    """Raise CancelledError if this task was asked to cancel and the request got lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
