"""The run store: one SQLite file per run."""

from fairnad.store.knowledge import BuildStore
from fairnad.store.sqlite import DB_NAME, RunStore, SqliteStore, StoreError, is_run_dir

__all__ = ["DB_NAME", "BuildStore", "RunStore", "SqliteStore", "StoreError", "is_run_dir"]
