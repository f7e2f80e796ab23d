"""Which worker processes are alive, and cleaning up after the ones that are not.

RQ's own registration cannot tell: while a job runs, a worker's key lives for the job's timeout
plus a minute, so a worker SIGKILLed mid-job looks alive for ~11 minutes (and its name cannot be
reused), and Prefect keeps its flow run RUNNING forever. Each worker's reconciler thread keeps a
short-lived key of its own instead (it beats during jobs too); when the key is gone, or the pid is
gone on this host, the process is dead.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime
from typing import cast

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

log = logging.getLogger(__name__)

FLOW_TAG = "appealflow-dispatch"
INSTANCE_TAG_PREFIX = "appealflow-instance:"
_SUSPECT_TTL = 600


def instance() -> str:
    """This process, as `host:pid` (computed each time: a forked child is another instance)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def alive_ttl(reconcile_interval: float) -> int:
    """How long a beat counts: a few reconcile passes, so one slow pass is not taken for death."""
    return max(3, int(3 * reconcile_interval + 0.999))


def _alive_key(who: str) -> str:
    return f"appealflow:alive:{who}"


def beat(redis: Redis, ttl: int, *, name: str) -> None:
    redis.set(_alive_key(instance()), name, ex=ttl)


def forget(redis: Redis) -> None:
    """On a clean exit: no need to wait out the TTL before the name is free again."""
    redis.delete(_alive_key(instance()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead(redis: Redis, who: str) -> bool:
    """True when the instance `host:pid` is known dead: its pid is gone on this host, or its beat
    has lapsed. This process itself counts as dead only to code asking about an earlier RQ loop."""
    host, _, pid = who.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) != os.getpid() and not _pid_alive(int(pid))
    return not redis.exists(_alive_key(who))


def clear_stale_registration(redis: Redis, name: str) -> str | None:
    """Free the RQ worker name `name` if the process holding it is dead (or is this process's
    previous RQ loop); return why, or None if the name was free. Raises NameTaken if it is alive."""
    key = Worker.redis_worker_namespace_prefix + name
    raw = cast(dict[bytes, bytes], redis.hgetall(key))  # a sync client: never an awaitable
    info = {k.decode(): v.decode() for k, v in raw.items()}
    if not info or "death" in info:
        return None
    holder = f"{info.get('hostname', '')}:{info.get('pid', '')}"
    if holder != instance() and not is_dead(redis, holder):
        raise NameTaken(f"an RQ worker named {name!r} is alive at {holder}")
    stale = Worker(["default"], connection=redis, name=name)
    stale.register_death()  # marks the key dead (RQ then accepts the name) and leaves the set
    reason = "this process's earlier loop" if holder == instance() else f"dead process {holder}"
    log.warning("freed worker name %s held by %s", name, reason)
    return reason


class NameTaken(RuntimeError):
    pass


def mark_crashed_flow_runs(redis: Redis, *, grace: float) -> list[str]:
    """Mark RUNNING dispatch flow runs whose worker is dead as CRASHED; return their ids.

    A run whose worker's beat is missing is first only suspected (noted in Redis with the time);
    it is crashed once it has been missing for `grace` seconds, so a beat lost with a Redis restart
    is not mistaken for death. A pid gone on this host is certain at once.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    crashed = []
    with get_client(sync_client=True) as client:
        running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[FLOW_TAG]), state=running), limit=200)
        for run in runs:
            who = next((t.removeprefix(INSTANCE_TAG_PREFIX) for t in run.tags if t.startswith(INSTANCE_TAG_PREFIX)),
                       None)
            if who is None or not _dead_long_enough(redis, who, str(run.id), grace):
                continue
            client.set_flow_run_state(run.id, Crashed(message=f"worker {who} died while running this batch; "
                                                              "its appeals were claimed again after their lease"),
                                      force=True)
            crashed.append(str(run.id))
            log.warning("flow run %s of dead worker %s marked crashed", run.id, who)
    return crashed


def _dead_long_enough(redis: Redis, who: str, run_id: str, grace: float) -> bool:
    if not is_dead(redis, who):
        return False
    host, _, _ = who.rpartition(":")
    if host == socket.gethostname():
        return True
    key = f"appealflow:suspect:{run_id}"
    redis.set(key, time.time(), nx=True, ex=_SUSPECT_TTL)
    first_seen = float(cast(bytes | None, redis.get(key)) or time.time())
    return time.time() - first_seen >= grace


def sweep_crashed_runs(redis: Redis, *, every: float, grace: float) -> list[str]:
    """One worker at a time, at most once per `every` seconds, across all workers."""
    try:
        if not redis.set("appealflow:crash-sweep", datetime.now(UTC).isoformat(), nx=True, ex=max(1, int(every))):
            return []
    except RedisError:
        return []  # without Redis no one can tell who is alive: mark nothing
    return mark_crashed_flow_runs(redis, grace=grace)
