"""Collecting file bytes no attachment refers to: a Prefect deployment on a schedule (hourly by
default), served by `appealflow scheduler` beside the deadline sweep."""

from datetime import timedelta

from prefect import flow

from appealflow.models.files.attachments import collect_unreferenced
from appealflow.models.files.store import store_for
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

# Bytes younger than this may be an upload whose row is still on its way to its commit.
GRACE = timedelta(hours=1)


@flow(name="collect-files", log_prints=False)
def collect_files() -> dict:
    """Delete stored bytes older than the grace period that no attachment refers to: what a request
    that died before its commit left, and raw photo uploads once their copies exist."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        gone = collect_unreferenced(session, store_for(settings.data_dir, settings.file_store),
                                    written_before=utcnow() - GRACE)
    return {"collected": gone}
