"""The document store: SQLite rows that carry the index generation that added and deleted them.

Readers of generation G see rows with ``added_gen <= G`` and not ``deleted_gen <= G``. A writer stages a
new generation's rows invisibly, builds that generation's indexes, and only then moves the index's
CURRENT pointer; if it dies first, the next writer drops the staged rows. So an interrupted write never
changes what readers see.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from crossrank.data.formats import Document
from crossrank.errors import CrossrankError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    row INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    added_gen INTEGER NOT NULL,
    deleted_gen INTEGER
);
CREATE INDEX IF NOT EXISTS documents_doc_id ON documents(doc_id);
"""


# The store keeps the documents of the shared data model (id, title, text).
StoredDocument = Document


class StoreError(CrossrankError):
    """The document store is missing, damaged, emptied or otherwise unreadable."""


class DocumentStore:
    """Readers use a read-only connection, so reading never changes the file (not even a damaged one);
    the first write opens a second, writable connection."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"document store {self.path} is missing")
        with self._guard():
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "documents" not in tables:
            raise StoreError(f"document store {self.path} has no documents table: it was emptied or replaced")
        self._rw: sqlite3.Connection | None = None

    @staticmethod
    def initialize(path: Path) -> None:
        """Create an empty store (a new index)."""
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        finally:
            db.close()

    def close(self) -> None:
        self.db.close()
        if self._rw is not None:
            self._rw.close()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's errors on a damaged file (truncated, overwritten) become one clear error."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"document store {self.path} is damaged or unreadable ({exc})") from None

    def _writable(self) -> sqlite3.Connection:
        if self._rw is None:
            with self._guard():
                self._rw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._rw.execute("PRAGMA synchronous=NORMAL")
        return self._rw

    # -- reading a generation --------------------------------------------------------------------------
    _VISIBLE = "added_gen <= ? AND (deleted_gen IS NULL OR deleted_gen > ?)"

    def get(self, doc_ids: Iterable[str], generation: int) -> dict[str, StoredDocument]:
        ids = list(dict.fromkeys(doc_ids))
        found: dict[str, StoredDocument] = {}
        with self._guard():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.db.execute(
                    f"SELECT doc_id, title, text FROM documents WHERE doc_id IN ({marks}) AND {self._VISIBLE}",
                    (*chunk, generation, generation))
                for doc_id, title, text in rows:
                    found[doc_id] = StoredDocument(doc_id, title, text)
        return found

    def visible_ids(self, generation: int) -> set[str]:
        with self._guard():
            return {r[0] for r in self.db.execute(f"SELECT doc_id FROM documents WHERE {self._VISIBLE}",
                                                  (generation, generation))}

    def count(self, generation: int) -> int:
        """How many documents ``generation`` sees (checked against its manifest when an index opens)."""
        with self._guard():
            return self.db.execute(f"SELECT COUNT(*) FROM documents WHERE {self._VISIBLE}",
                                   (generation, generation)).fetchone()[0]

    def iter_texts(self, doc_ids: list[str], generation: int, batch: int = 2000) -> Iterator[str]:
        """Full texts in the given order (the order of a generation's index rows)."""
        for start in range(0, len(doc_ids), batch):
            chunk = doc_ids[start:start + batch]
            docs = self.get(chunk, generation)
            for doc_id in chunk:
                if doc_id not in docs:
                    raise StoreError(f"document store {self.path} has lost document {doc_id!r} of generation "
                                     f"{generation}")
                yield docs[doc_id].full_text

    # -- staging the next generation -----------------------------------------------------------------------
    def discard_after(self, generation: int) -> None:
        """Undo rows an interrupted writer staged for generations after ``generation``."""
        db = self._writable()
        with self._guard():
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM documents WHERE added_gen > ?", (generation,))
            db.execute("UPDATE documents SET deleted_gen = NULL WHERE deleted_gen > ?", (generation,))
            db.execute("COMMIT")

    def stage(self, generation: int, add: list[StoredDocument], delete: Iterable[str]) -> None:
        """Stage deletions and additions for ``generation`` (an added id replaces its visible version)."""
        previous = generation - 1
        replaced = [d.id for d in add]
        db = self._writable()
        with self._guard():
            db.execute("BEGIN IMMEDIATE")
            try:
                for ids in (list(delete), replaced):
                    for start in range(0, len(ids), 500):
                        chunk = ids[start:start + 500]
                        marks = ",".join("?" * len(chunk))
                        db.execute(
                            f"UPDATE documents SET deleted_gen = ? WHERE doc_id IN ({marks}) "
                            f"AND added_gen <= ? AND deleted_gen IS NULL", (generation, *chunk, previous))
                db.executemany(
                    "INSERT INTO documents (doc_id, title, text, added_gen) VALUES (?, ?, ?, ?)",
                    ((d.id, d.title, d.text, generation) for d in add))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def purge_before(self, generation: int) -> None:
        """Drop rows no generation from ``generation`` on can see (after old generations are gone)."""
        with self._guard():
            self._writable().execute("DELETE FROM documents WHERE deleted_gen IS NOT NULL AND deleted_gen <= ?",
                                     (generation,))
