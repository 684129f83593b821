"""Damaged index folders, through the real CLI: clear errors (exit 5), nothing followed outside the folder,
nothing written by a reader, and same-size corruption caught by the generation's checksums."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank.retrieval.bm25 import BM25Settings
from crossrank.retrieval.index import CollectionIndex, IndexFormatError, IndexSettings
from test_index import DOCS, FakeEncoder


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossrank.cli.app", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def corpus(path: Path, n: int, prefix: str = "d") -> Path:
    words = "berlin river museum protein cell therapy water boils novel austen bridge harbour".split()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            text = " ".join(words[(i * 7 + j) % len(words)] for j in range(40)) + f" number {i}"
            f.write(json.dumps({"_id": f"{prefix}{i}", "title": f"title {i}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A BM25 index of 400 documents (docs.sqlite spans many pages), built once and copied per test."""
    root = tmp_path_factory.mktemp("built")
    done = cli("index", "build", root / "idx", "--corpus", corpus(root / "corpus.jsonl", 400), "--no-progress")
    assert done.returncode == 0, done.stderr
    return root / "idx"


def fresh(built: Path, tmp_path: Path, name: str = "idx") -> Path:
    target = tmp_path / name
    shutil.copytree(built, target)
    return target


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_damage(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 5, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.parametrize("current", ["../victim/gen-000001", "/tmp", "gen-000001/../../victim/gen-000001", ""])
def test_a_path_in_current_is_damage_and_never_followed(built, tmp_path, current):
    victim = fresh(built, tmp_path, "victim")
    index = fresh(built, tmp_path)
    (index / "CURRENT").write_text(current)
    more = corpus(tmp_path / "more.jsonl", 3, prefix="new")
    assert_damage(cli("index", "add", index, "--corpus", more, "--no-progress"), "CURRENT", "not a generation folder")
    assert_damage(cli("search", index, "--query", "berlin", "--retriever", "bm25"), "CURRENT")
    assert_damage(cli("index", "info", index), "CURRENT")
    assert (victim / "gen-000001" / "manifest.json").is_file()  # the other index lost nothing
    info = cli("index", "info", victim)
    assert info.returncode == 0 and json.loads(info.stdout)["documents"] == 400, info.stdout


def test_a_generation_folder_that_is_a_link_is_damage(built, tmp_path):
    victim = fresh(built, tmp_path, "victim")
    index = fresh(built, tmp_path)
    shutil.rmtree(index / "gen-000001")
    (index / "gen-000001").symlink_to(victim / "gen-000001")
    assert_damage(cli("index", "add", index, "--corpus", corpus(tmp_path / "more.jsonl", 3, "new"), "--no-progress"),
                  "not a generation folder")
    assert (victim / "gen-000001" / "manifest.json").is_file()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _drop_rows(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM documents WHERE rowid % 2 = 0")
    db.close()


@pytest.mark.parametrize("damage", [_truncate, _garbage, _empty, _drop_rows], ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_store_is_exit_5_and_readers_never_write(built, tmp_path, damage):
    index = fresh(built, tmp_path)
    store = index / "docs.sqlite"
    damage(store)
    before = digest(store)
    assert_damage(cli("index", "info", index), "docs.sqlite")
    assert_damage(cli("search", index, "--query", "berlin river", "--retriever", "bm25"), "docs.sqlite")
    assert digest(store) == before  # reading a damaged store leaves it as it was
    assert_damage(cli("index", "add", index, "--corpus", corpus(tmp_path / "more.jsonl", 3, "new"), "--no-progress"),
                  "docs.sqlite")
    assert digest(store) == before


def _contents(index: Path) -> dict[str, str]:
    """Every file's digest, except SQLite's shared-memory files (-wal, -shm) that a reader of a WAL
    database may leave beside it, empty of changes."""
    return {p.name: digest(p) for p in index.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.name != ".lock"}


def test_reading_a_sound_index_never_writes_it(built, tmp_path):
    index = fresh(built, tmp_path)
    before = _contents(index)
    assert cli("index", "info", index).returncode == 0
    assert cli("search", index, "--query", "berlin river", "--retriever", "bm25").returncode == 0
    assert _contents(index) == before


def test_same_size_corruption_of_vectors_and_doc_ids_is_caught_on_open(tmp_path):
    settings = IndexSettings(BM25Settings(), dense_model="fake")
    folders = []
    for name in ("vectors", "ids"):
        index = CollectionIndex.create(tmp_path / name, settings)
        index.replace_all(DOCS, encoder=FakeEncoder())
        index.store.close()
        folders.append(tmp_path / name / "gen-000001")
    vectors = folders[0] / "dense.npy"
    data = bytearray(vectors.read_bytes())
    data[-256:] = bytes(256)  # the last document's vector zeroed: same size
    vectors.write_bytes(bytes(data))
    ids = folders[1] / "doc_ids.json"
    ids.write_text(ids.read_text().replace('"d1"', '"x1"'))  # another id, same size
    for folder, name in ((folders[0], "dense.npy"), (folders[1], "doc_ids.json")):
        with pytest.raises(IndexFormatError, match=f"{name} does not match its checksum"):
            CollectionIndex(folder.parent)
        assert_damage(cli("index", "info", folder.parent), name, "checksum")
