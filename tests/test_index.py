"""The on-disk index: lifecycle (build, add, replace, delete), interrupted writes, damaged folders, retrievers."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from crossrank.errors import InvalidInputError
from crossrank.retrieval.bm25 import BM25Settings
from crossrank.retrieval.fusion import normalized_score_fusion, reciprocal_rank_fusion
from crossrank.retrieval.index import CollectionIndex, IndexFormatError, IndexSettings
from crossrank.retrieval.retriever import Retriever
from crossrank.retrieval.store import StoredDocument

DOCS = [
    StoredDocument("d1", "Berlin", "Berlin had a population of 3.5 million registered inhabitants."),
    StoredDocument("d2", "Museums", "Berlin is well known for its museums and galleries."),
    StoredDocument("d3", "Boiling", "Water boils at lower temperatures at high altitude because pressure drops."),
    StoredDocument("d4", "Cells", "The mitochondria produce energy for the cell through respiration."),
    StoredDocument("d5", "Novels", "Pride and Prejudice is a novel by Jane Austen."),
]


class FakeEncoder:
    """A deterministic bag-of-words encoder: exercises the dense code paths without a model download."""

    dimension = 64

    def encode(self, texts, progress=False):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.strip(".,?").encode()) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def make(path, dense=False, hnsw=False):
    settings = IndexSettings(BM25Settings(), "fake" if dense else None, hnsw)
    index = CollectionIndex.create(path, settings)
    index.replace_all(DOCS, encoder=FakeEncoder() if dense else None)
    return index


def test_bm25_finds_stemmed_terms_and_ignores_stop_words(tmp_path):
    index = make(tmp_path / "idx")
    retriever = Retriever(index, "bm25")
    hits = retriever.retrieve("how many inhabitants live in Berlin", k=3)
    assert [h.id for h in hits][:2] == ["d1", "d2"] and hits[0].rank == 1
    assert retriever.retrieve("boiling", k=5)[0].id == "d3"  # stemming: boiling ~ boils
    assert retriever.retrieve("the of and", k=5) == []  # only stop words
    with pytest.raises(InvalidInputError, match="query is empty"):
        retriever.retrieve("  ")


def test_lifecycle_add_replace_delete_and_reopen(tmp_path):
    index = make(tmp_path / "idx")
    assert index.size == 5 and index.generation == 1
    index.add([StoredDocument("d6", "", "Quantum computers use qubits."),
               StoredDocument("d1", "Berlin", "Berlin is the capital of Germany.")])
    reopened = CollectionIndex(tmp_path / "idx")
    assert reopened.size == 6 and reopened.generation == 2
    assert reopened.documents(["d1"])["d1"].text == "Berlin is the capital of Germany."
    assert Retriever(reopened).retrieve("qubits", k=1)[0].id == "d6"
    assert all(h.id != "d1" for h in Retriever(reopened).retrieve("inhabitants", k=5))
    assert reopened.delete(["d2", "missing"]) == 1
    final = CollectionIndex(tmp_path / "idx")
    assert final.size == 5 and "d2" not in final.doc_ids and final.documents(["d2"]) == {}
    assert sorted(p.name for p in (tmp_path / "idx").glob("gen-*")) == ["gen-000003"]


def test_interrupted_write_leaves_the_previous_index_readable(tmp_path):
    make(tmp_path / "idx")
    script = textwrap.dedent(f"""
        import os, sys
        from crossrank.retrieval import index as module
        from crossrank.retrieval.index import CollectionIndex
        from crossrank.retrieval.store import StoredDocument
        real = module.build_bm25
        def build_then_die(*args, **kwargs):
            real(*args, **kwargs)
            sys.stdout.write("staged\\n"); sys.stdout.flush()
            os.kill(os.getpid(), 9)  # kill -9 between staging and the commit point
        module.build_bm25 = build_then_die
        index = CollectionIndex({str(tmp_path / 'idx')!r})
        index.add([StoredDocument("new", "", "zebra giraffe")])
        index.delete(["d1"])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and b"staged" in proc.stdout
    index = CollectionIndex(tmp_path / "idx")
    assert index.size == 5 and index.generation == 1
    assert Retriever(index).retrieve("zebra", k=5) == []
    assert Retriever(index).retrieve("inhabitants", k=1)[0].id == "d1"
    # The next writer cleans up what the dead one staged and proceeds normally.
    index.add([StoredDocument("d7", "", "zebra stripes")])
    assert CollectionIndex(tmp_path / "idx").size == 6
    assert [h.id for h in Retriever(CollectionIndex(tmp_path / "idx")).retrieve("zebra", k=5)] == ["d7"]


def test_foreign_damaged_and_missing_folders_get_clear_errors(tmp_path):
    with pytest.raises(IndexFormatError, match="does not exist"):
        CollectionIndex(tmp_path / "nothing")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(IndexFormatError, match="not a crossrank index"):
        CollectionIndex(tmp_path / "foreign")
    with pytest.raises(IndexFormatError, match="not a crossrank index; refusing"):
        CollectionIndex.create(tmp_path / "foreign", IndexSettings(BM25Settings()))
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
    make(tmp_path / "idx")
    with pytest.raises(IndexFormatError, match="already holds an index"):
        CollectionIndex.create(tmp_path / "idx", IndexSettings(BM25Settings()))
    (tmp_path / "idx" / "CURRENT").write_text("gen-000099")
    with pytest.raises(IndexFormatError, match="damaged"):
        CollectionIndex(tmp_path / "idx")
    (tmp_path / "idx2").mkdir()
    (tmp_path / "idx2" / "crossrank-index.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="damaged or not a crossrank index"):
        CollectionIndex(tmp_path / "idx2")


def test_dense_exact_and_hnsw_agree_and_hybrid_fuses(tmp_path):
    pytest.importorskip("usearch", reason="the HNSW index needs the [hnsw] extra")
    index = make(tmp_path / "idx", dense=True, hnsw=True)
    encoder = FakeEncoder()
    exact = Retriever(index, "dense", encoder=encoder).retrieve("Berlin museums galleries", k=3)
    approx = Retriever(index, "dense", encoder=encoder, approximate=True).retrieve("Berlin museums galleries", k=3)
    assert exact[0].id == approx[0].id == "d2"
    assert np.allclose([h.score for h in approx], [h.score for h in exact], atol=1e-5)  # ties may swap ids
    hybrid = Retriever(index, "hybrid", encoder=encoder).retrieve("Berlin museums", k=5)
    assert hybrid[0].id == "d2"
    with pytest.raises(InvalidInputError, match="needs dense embeddings"):
        Retriever(make(tmp_path / "plain"), "dense")
    # Updates carry the old embeddings over and embed only the new documents.
    index.add([StoredDocument("d9", "", "zebra stripes savanna")], encoder=encoder)
    reopened = CollectionIndex(tmp_path / "idx")
    assert Retriever(reopened, "dense", encoder=encoder).retrieve("zebra savanna", k=1)[0].id == "d9"
    row = reopened.doc_ids.index("d2")
    assert np.allclose(reopened.dense().embeddings[row], encoder.encode([DOCS[1].full_text])[0])


def test_fusion_rules():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61) and max(fused, key=fused.get) == "b"
    assert fused["d"] == pytest.approx(1 / 63)
    scores = normalized_score_fusion({"a": 10.0, "b": 5.0, "c": 0.0}, {"b": 0.9, "d": 0.1}, weight=0.5)
    assert scores == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.0})
    with pytest.raises(ValueError):
        normalized_score_fusion({}, {}, weight=2)
