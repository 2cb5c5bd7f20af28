"""The run store: one SQLite file per run."""

from fairnad.store.sqlite import DB_NAME, RunStore, StoreError, is_run_dir

__all__ = ["DB_NAME", "RunStore", "StoreError", "is_run_dir"]
