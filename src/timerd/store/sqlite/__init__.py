"""The SQLite backend: one WAL file; a group-committing writer (`writer`), its readers
(`reads`), their shared connections (`connections`), the statements (`statements`), and the
store that opens and closes them (`store`)."""

from timerd.store.sqlite.statements import OUTCOME_STEPS, list_query, outcome_trigger
from timerd.store.sqlite.store import SqliteStore, prepare_file

__all__ = ["OUTCOME_STEPS", "SqliteStore", "list_query", "outcome_trigger", "prepare_file"]
