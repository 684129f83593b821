"""The RAG framework integrations with the real packages: LangChain, LlamaIndex and Haystack, each with a
local tiny model, the shipped default (offline), and a real crossrank server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from crossrank.errors import CrossrankError
from crossrank.ranking.results import sigmoid

from servers import KEY, Server

QUERY = "how many people live in berlin"
TEXTS = ["Berlin has 3.5 million inhabitants.", "Berlin is known for its museums.", "Water boils at 100 degrees.",
         "protein cell therapy"]


@pytest.fixture(scope="module")
def expected(tiny_ce):
    """(index, probability) best first, as the tiny model ranks TEXTS."""
    scores = tiny_ce.score([(QUERY, t) for t in TEXTS])
    order = sorted(range(len(TEXTS)), key=lambda i: (-scores[i], i))
    return [(i, sigmoid(scores[i])) for i in order]


@pytest.fixture(scope="module")
def server(tiny_model):
    pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
    srv = Server(tiny_model)
    yield srv
    srv.stop()


def test_langchain_compressor(tiny_model, expected, server):
    pytest.importorskip("langchain_core", reason="needs the [langchain] extra")
    from langchain_core.documents import Document

    from crossrank.integrations.langchain import CrossrankReranker

    docs = [Document(page_content=t, metadata={"source": f"s{i}"}) for i, t in enumerate(TEXTS)]
    for reranker in (CrossrankReranker(model=str(tiny_model), top_n=2),
                     CrossrankReranker(url=server.url, api_key=KEY, top_n=2)):
        for kept in (reranker.compress_documents(docs, QUERY), asyncio.run(reranker.acompress_documents(docs, QUERY))):
            assert [d.page_content for d in kept] == [TEXTS[i] for i, _ in expected[:2]]
            assert [d.metadata["relevance_score"] for d in kept] == pytest.approx([p for _, p in expected[:2]], abs=1e-5)
            assert kept[0].metadata["source"] == f"s{expected[0][0]}"
    assert all("relevance_score" not in d.metadata for d in docs)  # the inputs are left as they were
    assert CrossrankReranker(model=str(tiny_model)).compress_documents([], QUERY) == []
    with pytest.raises(CrossrankError, match="401"):
        CrossrankReranker(url=server.url, api_key="wrong").compress_documents(docs, QUERY)


def test_llama_index_postprocessor(tiny_model, expected, server):
    pytest.importorskip("llama_index.core", reason="needs the [llama-index] extra")
    from llama_index.core.schema import NodeWithScore, TextNode

    from crossrank.integrations.llama_index import CrossrankRerank

    nodes = [NodeWithScore(node=TextNode(text=t, metadata={"title": "ignored by the reranker"}), score=0.1)
             for t in TEXTS]
    for post in (CrossrankRerank(model=str(tiny_model), top_n=3), CrossrankRerank(url=server.url, api_key=KEY, top_n=3)):
        for kept in (post.postprocess_nodes(nodes, query_str=QUERY),
                     asyncio.run(post.apostprocess_nodes(nodes, query_str=QUERY))):
            assert [n.node.get_content() for n in kept] == [TEXTS[i] for i, _ in expected[:3]]
            assert [n.score for n in kept] == pytest.approx([p for _, p in expected[:3]], abs=1e-5)
    assert CrossrankRerank.class_name() == "CrossrankRerank"
    assert all(n.score == 0.1 for n in nodes)


def test_haystack_component(tiny_model, expected, server):
    pytest.importorskip("haystack", reason="needs the [haystack] extra")
    from haystack import Document, Pipeline

    from crossrank.integrations.haystack import CrossrankRanker

    docs = [Document(content=t) for t in TEXTS]
    local = CrossrankRanker(model=str(tiny_model), top_k=2)
    local.warm_up()
    for ranker in (local, CrossrankRanker(url=server.url, api_key=KEY, top_k=2)):
        for out in (ranker.run(QUERY, docs), asyncio.run(ranker.run_async(QUERY, docs))):
            assert [d.content for d in out["documents"]] == [TEXTS[i] for i, _ in expected[:2]]
            assert [d.score for d in out["documents"]] == pytest.approx([p for _, p in expected[:2]], abs=1e-5)
    threshold = expected[1][1] + 1e-6  # keeps only the best
    assert len(local.run(QUERY, docs, top_k=4, score_threshold=threshold)["documents"]) == 1
    restored = CrossrankRanker.from_dict(local.to_dict())
    assert (restored.model, restored.top_k) == (str(tiny_model), 2)
    pipeline = Pipeline()
    pipeline.add_component("ranker", restored)
    result = pipeline.run({"ranker": {"query": QUERY, "documents": docs}})
    assert [d.content for d in result["ranker"]["documents"]] == [TEXTS[i] for i, _ in expected[:2]]
    assert all(d.score is None for d in docs)


def test_each_integration_runs_the_shipped_default_offline():
    pytest.importorskip("langchain_core", reason="needs the [langchain] extra")
    pytest.importorskip("llama_index.core", reason="needs the [llama-index] extra")
    pytest.importorskip("haystack", reason="needs the [haystack] extra")
    from haystack import Document as HaystackDocument
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from crossrank.integrations.haystack import CrossrankRanker
    from crossrank.integrations.langchain import CrossrankReranker
    from crossrank.integrations.llama_index import CrossrankRerank

    best = TEXTS[0]  # the shipped default knows Berlin's population answers the question
    assert CrossrankReranker(top_n=1).compress_documents([Document(page_content=t) for t in TEXTS],
                                                         QUERY)[0].page_content == best
    nodes = [NodeWithScore(node=TextNode(text=t)) for t in TEXTS]
    assert CrossrankRerank(top_n=1).postprocess_nodes(nodes, query_str=QUERY)[0].node.get_content() == best
    docs = [HaystackDocument(content=t) for t in TEXTS]
    assert CrossrankRanker(top_k=1).run(QUERY, docs)["documents"][0].content == best


def test_a_local_model_and_a_url_together_are_refused(tiny_model):
    from crossrank.errors import InvalidInputError
    from crossrank.integrations.backend import RerankBackend

    with pytest.raises(InvalidInputError, match="not both"):
        RerankBackend(model=str(tiny_model), url="http://127.0.0.1:1")


@pytest.mark.parametrize("module, blocked, extra", [("langchain", "langchain_core", "langchain"),
                                                    ("llama_index", "llama_index", "llama-index"),
                                                    ("haystack", "haystack", "haystack")])
def test_a_missing_framework_names_its_extra(monkeypatch, module, blocked, extra):
    import builtins
    import importlib
    import sys

    from crossrank.errors import BackendUnavailableError

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name.split(".")[0] == blocked:
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for name in list(sys.modules):
        if name.split(".")[0] == blocked or name == f"crossrank.integrations.{module}":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(BackendUnavailableError, match=rf"crossrank\[{extra}\]"):
        importlib.import_module(f"crossrank.integrations.{module}")
