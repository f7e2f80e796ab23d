"""Alembic environment: the URL comes from the caller's config, the tables from models.tables."""

from alembic import context

from appealflow.models.storage.db import engine_for
from appealflow.models.storage.tables import metadata

url = context.config.get_main_option("sqlalchemy.url")

if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with engine_for(url).connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
