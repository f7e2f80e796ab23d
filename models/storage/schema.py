"""Schema management: Alembic migrations, run from code."""

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database to the newest schema."""
    # Every head: features developed side by side may add migrations on branches of their own
    # until a merge revision joins them (as 0009 joins 0007 and 0008).
    command.upgrade(alembic_config(url), "heads")
