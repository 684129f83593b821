"""The on-disk collection index: a document store plus BM25 and (optionally) dense indexes.

Layout of an index directory::

    crossrank-index.json   format marker and settings (BM25 parameters, dense model)
    docs.sqlite            document store; rows carry the generation that added / deleted them
    CURRENT                name of the live generation folder, switched atomically
    gen-000007/            that generation's doc order, BM25 index, embeddings, HNSW index, and a manifest
                           with the size and CRC32 of each of those files (checked on open)

Every build or update writes a new generation folder and flips CURRENT with an atomic rename; until the
flip, readers keep using the previous generation, so a killed writer leaves the index readable and
correct. One writer at a time (a file lock). Opening an index only reads: a damaged or inconsistent
folder (a CURRENT that is not a generation name, a file whose checksum changed, a store whose document
count disagrees with the manifest) is an ``IndexFormatError`` that names the problem, and nothing is
repaired or rewritten behind the user's back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from crossrank.errors import CrossrankError
from crossrank.retrieval.bm25 import BM25Retriever, BM25Settings, build_bm25
from crossrank.retrieval.dense import DenseRetriever, build_hnsw, require_hnsw, save_embeddings
from crossrank.retrieval.store import DocumentStore, StoredDocument

logger = logging.getLogger(__name__)

FORMAT = "crossrank-index"
VERSION = 1
MARKER = "crossrank-index.json"
_GENERATION_NAME = re.compile(r"gen-\d{6,}")  # all CURRENT may hold: never a path


class IndexFormatError(CrossrankError):
    """A directory is not a crossrank index, is damaged, or is being written by another process."""


@dataclass
class IndexSettings:
    bm25: BM25Settings
    dense_model: str | None = None  # None: no dense index; "default": all-MiniLM-L6-v2
    hnsw: bool = False  # also build an approximate (HNSW) index over the embeddings


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return crc


def _file_digests(folder: Path) -> dict[str, list[int]]:
    """[bytes, crc32] of every file of a generation (CRC32 runs at about 6 GB/s here: cheap to check)."""
    return {file.relative_to(folder).as_posix(): [file.stat().st_size, _crc32(file)]
            for file in sorted(folder.rglob("*")) if file.is_file() and file.name != "manifest.json"}


def _verify_files(folder: Path, digests: dict[str, list[int]]) -> None:
    for name, (size, crc) in digests.items():
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{name} is missing")
        if file.stat().st_size != size:
            raise ValueError(f"{name} has {file.stat().st_size} bytes, the manifest says {size}")
        if _crc32(file) != crc:
            raise ValueError(f"{name} does not match its checksum: it changed after it was written")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CollectionIndex:
    """Open an existing index (``CollectionIndex(path)``) or create one (``CollectionIndex.create``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        marker = self.path / MARKER
        if not self.path.is_dir():
            raise IndexFormatError(f"index folder {self.path} does not exist")
        if not marker.is_file():
            raise IndexFormatError(f"{self.path} is not a crossrank index (no {MARKER}); build one with "
                                   "`crossrank index build`")
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError("wrong format marker")
            if int(meta.get("version", 0)) > VERSION:
                raise IndexFormatError(f"{self.path} was written by a newer crossrank (index version "
                                       f"{meta['version']} > {VERSION})")
            self.settings = IndexSettings(BM25Settings(**meta["bm25"]), meta.get("dense_model"),
                                          bool(meta.get("hnsw")))
        except IndexFormatError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise IndexFormatError(f"{marker} is damaged or not a crossrank index file ({exc})") from None
        self.store = DocumentStore(self.path / "docs.sqlite")
        self._load_generation()

    # -- creation and the live generation ----------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, settings: IndexSettings, overwrite: bool = False) -> "CollectionIndex":
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not (path / MARKER).is_file():
                raise IndexFormatError(f"{path} exists and is not a crossrank index; refusing to write into it")
            if not overwrite:
                raise IndexFormatError(f"{path} already holds an index; use `crossrank index add` to update it "
                                       "or --overwrite to rebuild")
        if settings.hnsw:
            require_hnsw()  # say so before creating anything, not after hours of embedding
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "docs.sqlite").exists():
            DocumentStore.initialize(path / "docs.sqlite")
        if not (path / MARKER).is_file():
            meta = {"format": FORMAT, "version": VERSION, "created": time.time(), "bm25": asdict(settings.bm25),
                    "dense_model": settings.dense_model, "hnsw": settings.hnsw}
            tmp = path / f".{MARKER}.tmp"
            tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
            os.replace(tmp, path / MARKER)
        return cls(path)  # with overwrite, the caller's replace_all swaps every document in one generation

    def _load_generation(self) -> None:
        current = self.path / "CURRENT"
        if not current.is_file():
            self.generation, self.doc_ids, self._bm25, self._dense = 0, [], None, None
            return
        try:
            name = current.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexFormatError(f"index {self.path} is damaged: CURRENT is unreadable ({exc})") from None
        folder = self.path / name
        # CURRENT names a folder inside this index, nothing else: a path there (../other-index/gen-000001)
        # would make a writer delete another folder's files when it cleans up.
        if not _GENERATION_NAME.fullmatch(name) or folder.is_symlink() or not folder.is_dir():
            raise IndexFormatError(f"index {self.path} is damaged: CURRENT holds {name[:80]!r}, which is not a "
                                   "generation folder of this index")
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            self.generation = int(manifest["generation"])
            if "files" in manifest:  # indexes written before checksums existed have none
                _verify_files(folder, manifest["files"])
            self.doc_ids = json.loads((folder / "doc_ids.json").read_text(encoding="utf-8"))
            if len(self.doc_ids) != manifest["count"]:
                raise ValueError("document count does not match the manifest")
            stored = self.store.count(self.generation)
            if stored != manifest["count"]:
                raise ValueError(f"docs.sqlite holds {stored} of its {manifest['count']} documents")
            self._bm25 = BM25Retriever(folder / "bm25", self.settings.bm25, len(self.doc_ids))
            self._dense = None
            if (folder / "dense.npy").is_file():
                self._dense = DenseRetriever(folder / "dense.npy", folder / "dense.hnsw")
                if len(self._dense.embeddings) != len(self.doc_ids):
                    raise ValueError("embedding rows do not match the documents")
        except Exception as exc:  # noqa: BLE001
            raise IndexFormatError(f"index {self.path} is damaged: generation {name} unreadable ({exc})") from None
        self._folder = folder

    @property
    def size(self) -> int:
        return len(self.doc_ids)

    @property
    def has_dense(self) -> bool:
        return self._dense is not None

    def bm25(self) -> BM25Retriever:
        return self._bm25

    def dense(self) -> DenseRetriever:
        if self._dense is None:
            raise IndexFormatError(f"index {self.path} has no dense embeddings; rebuild it with --dense")
        return self._dense

    def documents(self, doc_ids: Iterable[str]) -> dict[str, StoredDocument]:
        return self.store.get(doc_ids, self.generation)

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    # -- writing --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        with open(self.path / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexFormatError(f"index {self.path} is being written by another process") from None
            self._load_generation()
            self.store.discard_after(self.generation)  # undo what an interrupted writer staged
            for stale in self.path.glob("gen-*"):
                if stale.is_dir() and not stale.is_symlink() and stale != getattr(self, "_folder", None):
                    shutil.rmtree(stale, ignore_errors=True)
            yield

    # ``progress``: False shows nothing; True (or None, "not switched off") shows a bar on a terminal and a
    # progress line every few seconds elsewhere (see crossrank.cli.progress).
    def add(self, documents: Iterable[StoredDocument], encoder=None, progress: bool | None = False) -> int:
        """Add or replace documents (by id); returns how many were written."""
        docs = list({d.id: d for d in documents}.values())
        with self._writer():
            self._commit(add=docs, delete=[], encoder=encoder, progress=progress)
        return len(docs)

    def delete(self, doc_ids: Iterable[str], progress: bool | None = False) -> int:
        """Delete documents by id; ids not in the index are ignored. Returns how many were deleted."""
        with self._writer():
            wanted = set(doc_ids) & set(self.doc_ids)
            if wanted:
                self._commit(add=[], delete=sorted(wanted), encoder=None, progress=progress)
        return len(wanted)

    def replace_all(self, documents: Iterable[StoredDocument], encoder=None, progress: bool | None = False) -> int:
        docs = list({d.id: d for d in documents}.values())
        with self._writer():
            self._commit(add=docs, delete=list(self.doc_ids), encoder=encoder, progress=progress)
        return len(docs)

    def _commit(self, add: list[StoredDocument], delete: list[str], encoder, progress: bool | None) -> None:
        from crossrank.cli.progress import pair_progress

        if self.settings.hnsw:
            require_hnsw()
        new_gen = self.generation + 1
        folder = self.path / f"gen-{new_gen:06d}"
        self.store.stage(new_gen, add, delete)

        gone = set(delete) | {d.id for d in add}
        kept_positions = [i for i, d in enumerate(self.doc_ids) if d not in gone]
        doc_ids = [self.doc_ids[i] for i in kept_positions] + [d.id for d in add]

        folder.mkdir(parents=True)
        texts = self.store.iter_texts(doc_ids, new_gen)
        # One progress display for the whole update: the libraries' own bars (bm25s, sentence-transformers) stay off.
        with pair_progress(progress, "BM25 index", len(doc_ids), unit="documents") as advance:
            build_bm25(texts, folder / "bm25", self.settings.bm25, progress=advance)
            if self.settings.dense_model:
                if encoder is None:
                    from crossrank.model.bi_encoder import BiEncoder

                    advance.stage("loading the bi-encoder", unit="documents")
                    encoder = BiEncoder(None if self.settings.dense_model == "default" else self.settings.dense_model)
                old = np.asarray(self._dense.embeddings[kept_positions]) if self._dense is not None and kept_positions \
                    else np.zeros((0, encoder.dimension), dtype=np.float32)
                advance.stage("embedding", len(add), unit="documents")
                new = encoder.encode([d.full_text for d in add], progress=advance)
                vectors = np.concatenate([old, new]) if len(old) else new
                save_embeddings(vectors, folder / "dense.npy")
                if self.settings.hnsw:
                    advance.stage("HNSW index", len(vectors), unit="vectors")
                    build_hnsw(vectors, folder / "dense.hnsw")
                    advance(len(vectors))
        (folder / "doc_ids.json").write_text(json.dumps(doc_ids), encoding="utf-8")
        manifest = {"generation": new_gen, "count": len(doc_ids), "written": time.time(),
                    "files": _file_digests(folder)}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        for file in folder.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        _fsync_dir(folder)

        # The commit point: one atomic rename makes the new generation live.
        tmp = self.path / "CURRENT.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(folder.name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / "CURRENT")
        _fsync_dir(self.path)

        previous = getattr(self, "_folder", None)
        self._load_generation()
        if previous is not None and previous != folder:
            shutil.rmtree(previous, ignore_errors=True)
        self.store.purge_before(new_gen - 1)  # a reader still on the previous generation keeps its texts
