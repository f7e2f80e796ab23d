"""`appealflow` is the only import name: packages called models, api, flows, workers or
notifications elsewhere on the path (the registry has projects of those names) change nothing."""

import os
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from appealflow.workers.queues import DISPATCH, connect, queue, wake
from tests.conftest import BIN, on_sqlite
from tests.factories import received_appeals

DECOYS = ("models", "api", "flows", "workers", "notifications")


def _decoy_folder(root: Path) -> Path:
    """A folder whose own models/, api/, ... packages fail loudly when anything imports them."""
    for name in DECOYS:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('the decoy {name} package was imported')\n")
    return root


@on_sqlite  # about import names, not storage: one backend is enough
def test_commands_and_a_worker_ignore_foreign_top_level_packages(env, tmp_path):
    decoys = _decoy_folder(tmp_path / "elsewhere")
    process_env = dict(os.environ, **env, PYTHONPATH=str(decoys))

    shown = subprocess.run([str(BIN / "appealflow"), "--help"], cwd=decoys, env=process_env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "worker" in shown.stdout

    received_appeals(5)
    wake(connect(), DISPATCH)
    assert queue(connect(), DISPATCH).count == 1
    worked = subprocess.run([str(BIN / "appealflow"), "worker", "--burst"], cwd=decoys, env=process_env,
                            capture_output=True, text=True, timeout=120)
    assert worked.returncode == 0, worked.stderr[-3000:]
    assert "decoy" not in worked.stderr
    with session_scope(get_settings().sqlalchemy_url) as session:
        waiting = session.execute(select(func.count()).select_from(Appeal)
                                  .where(Appeal.status == AppealStatus.received)).scalar_one()
    assert waiting == 0
