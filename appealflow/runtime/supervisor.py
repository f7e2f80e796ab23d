"""Keeps `appealflow up`'s children running: a child that exits is started again after a backoff,
and one dead child never stops the others (a crashed worker must not take intake down with it)."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appealflow.runtime.services import own_group, signal_group

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A child that ran this long before exiting is taken to have been healthy: its backoff starts over.
HEALTHY_AFTER = 60.0


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)
    group: int | None = None  # its process group, when it leads one: what it started is stopped with it


class Supervisor:
    def __init__(self, say: Callable[[str], None] = print):
        self.children: list[Child] = []
        self.say = say

    def add(self, name: str, start: Callable[[], subprocess.Popen],
            process: subprocess.Popen | None = None) -> Child:
        """Supervise `name`; `process` if it is already running, else started now."""
        child = Child(name, start)
        self.children.append(child)
        if process is not None:
            child.process, child.started_at = process, time.monotonic()
            child.group = own_group(process)
        else:
            self._start(child)
        return child

    def _start(self, child: Child) -> None:
        try:
            child.process = child.start()
        except Exception as error:  # e.g. a port still held: try again later, like an exit
            child.process = None
            self._schedule(child, f"could not start ({error})")
            return
        child.started_at = time.monotonic()
        child.restart_at = None
        child.group = own_group(child.process)

    def _schedule(self, child: Child, why: str) -> None:
        now = time.monotonic()
        if child.started_at and now - child.started_at > HEALTHY_AFTER:
            child.backoff = FIRST_BACKOFF
        child.restart_at = now + child.backoff
        self.say(f"{child.name} {why}; restarting in {child.backoff:.0f}s (restart {child.restarts + 1})")
        child.backoff = min(child.backoff * 2, MAX_BACKOFF)

    def check(self) -> None:
        """One supervision pass: notice exits, start what is due."""
        now = time.monotonic()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                child.exits.append(code)
                child.process = None
                # What it started (a scheduler's flow-run processes) must not outlive it.
                signal_group(child.group, signal.SIGTERM)
                self._schedule(child, f"exited with code {code} (see its log)")
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                if child.process is not None:
                    self.say(f"{child.name} restarted (pid {child.process.pid})")

    def run(self, every: float = 0.5, until: Callable[[], bool] = lambda: False) -> None:
        while not until():
            self.check()
            time.sleep(every)

    def stop_all(self, timeout: float = 10) -> None:
        """SIGTERM every child and what it started (its process group) at once, wait for all under one
        deadline, then SIGKILL whatever is left, flow-run processes of the scheduler included."""
        running = [(c, c.process) for c in self.children
                   if c.process is not None and c.process.poll() is None]
        groups = [c.group for c in self.children if c.group is not None]
        for child, process in running:
            if not signal_group(child.group, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for group in groups:  # children that exited earlier may have left processes behind
            signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        while time.monotonic() < deadline and any(signal_group(g, 0) for g in groups):
            time.sleep(0.05)
        for group in groups:
            signal_group(group, signal.SIGKILL)
        for _, process in running:
            if process.poll() is None:
                process.wait()
