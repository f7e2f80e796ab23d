"""Storage: the engine and sessions, column types, every table, migrations."""
