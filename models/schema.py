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
    # Every head: features developed side by side add migrations on branches of their own, which
    # a merge revision later joins; until then each branch applies.
    command.upgrade(alembic_config(url), "heads")
