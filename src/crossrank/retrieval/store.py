"""The document store: SQLite rows that carry the index generation that added and deleted them.

Readers of generation G see rows with ``added_gen <= G`` and not ``deleted_gen <= G``. A writer stages a
new generation's rows invisibly, builds that generation's indexes, and only then moves the index's
CURRENT pointer; if it dies first, the next writer drops the staged rows. So an interrupted write never
changes what readers see.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from crossrank.data.formats import Document

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


class DocumentStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- reading a generation --------------------------------------------------------------------------
    _VISIBLE = "added_gen <= ? AND (deleted_gen IS NULL OR deleted_gen > ?)"

    def get(self, doc_ids: Iterable[str], generation: int) -> dict[str, StoredDocument]:
        ids = list(dict.fromkeys(doc_ids))
        found: dict[str, StoredDocument] = {}
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
        return {r[0] for r in self.db.execute(f"SELECT doc_id FROM documents WHERE {self._VISIBLE}",
                                              (generation, generation))}

    def iter_texts(self, doc_ids: list[str], generation: int, batch: int = 2000) -> Iterator[str]:
        """Full texts in the given order (the order of a generation's index rows)."""
        for start in range(0, len(doc_ids), batch):
            chunk = doc_ids[start:start + batch]
            docs = self.get(chunk, generation)
            for doc_id in chunk:
                yield docs[doc_id].full_text

    # -- staging the next generation -----------------------------------------------------------------------
    def discard_after(self, generation: int) -> None:
        """Undo rows an interrupted writer staged for generations after ``generation``."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DELETE FROM documents WHERE added_gen > ?", (generation,))
        self.db.execute("UPDATE documents SET deleted_gen = NULL WHERE deleted_gen > ?", (generation,))
        self.db.execute("COMMIT")

    def stage(self, generation: int, add: list[StoredDocument], delete: Iterable[str]) -> None:
        """Stage deletions and additions for ``generation`` (an added id replaces its visible version)."""
        previous = generation - 1
        replaced = [d.id for d in add]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for ids in (list(delete), replaced):
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    self.db.execute(
                        f"UPDATE documents SET deleted_gen = ? WHERE doc_id IN ({marks}) "
                        f"AND added_gen <= ? AND deleted_gen IS NULL", (generation, *chunk, previous))
            self.db.executemany(
                "INSERT INTO documents (doc_id, title, text, added_gen) VALUES (?, ?, ?, ?)",
                ((d.id, d.title, d.text, generation) for d in add))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def purge_before(self, generation: int) -> None:
        """Drop rows no generation from ``generation`` on can see (after old generations are gone)."""
        self.db.execute("DELETE FROM documents WHERE deleted_gen IS NOT NULL AND deleted_gen <= ?", (generation,))
