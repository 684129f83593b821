"""The routes of every API shape. Each translates its request into one ``ServiceState.score`` call and the
result into its own response; validation lives in ``schemas``, errors and their status codes in ``errors``.

| route | shape | documents returned by default |
|---|---|---|
| POST /v1/rerank, /v2/rerank | Cohere (Jina clients send the same fields) | no (Cohere) |
| POST /rerank | TEI (``texts``) or vLLM/Jina (``documents``), told apart by the body | TEI: no; vLLM: yes |
| POST /score, /v1/score | vLLM's score API (``text_1``, ``text_2``) | - |
| POST /voyage/v1/rerank | Voyage AI (``top_k``, ``truncation``) | no (Voyage) |
"""

from __future__ import annotations

import json
import time
import uuid

from fastapi import FastAPI, Request

from crossrank.ranking.chunking import Chunking
from crossrank.server import errors
from crossrank.server.schemas import (CohereRerankRequest, CohereRerankResponse, ErrorBody, PlainRerankRequest,
                                      ScoreRequest, ScoreResponse, TEIRerankRequest, TEIResult, VoyageRerankRequest,
                                      VoyageRerankResponse)
from crossrank.server.service import ServiceState

ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (400, 401, 408, 413, 422, 429, 431, 500, 503, 504)}
SCORING_PATHS = ("/v1/rerank", "/v2/rerank", "/rerank", "/score", "/v1/score", "/voyage/v1/rerank")


def document_texts(body: CohereRerankRequest) -> list[str]:
    """The text each document is scored by: a string as sent; a structured document by its ``text``, or by
    its ``rank_fields`` in the order named, one ``field: value`` line each (as Cohere v1 did)."""
    fields = body.rank_fields
    texts = []
    for i, document in enumerate(body.documents):
        if isinstance(document, str):
            texts.append(document)
            continue
        data = document.model_dump(exclude_none=True)
        if not fields or fields == ["text"]:
            if not isinstance(data.get("text"), str):
                raise errors.ValidationFailed(f"documents.{i} has no 'text': name the fields to rank by with "
                                              "rank_fields")
            texts.append(data["text"])
            continue
        lines = [f"{name}: {data[name] if isinstance(data[name], str) else json.dumps(data[name])}"
                 for name in fields if name in data]
        if not lines:
            raise errors.ValidationFailed(f"documents.{i} has none of the rank_fields {fields}")
        texts.append("\n".join(lines))
    return texts


def install_routes(app: FastAPI, state: ServiceState) -> None:
    async def cohere_shape(body: CohereRerankRequest, request: Request) -> tuple[list[dict], int]:
        """Results of a Cohere/Jina/vLLM-shaped request (best first) and the tokens it cost."""
        texts = document_texts(body)
        max_chunks = state.chunks(body.max_chunks_per_doc, len(texts))  # 1: cut long documents instead
        chunking = Chunking(max_chunks=max_chunks) if max_chunks > 1 or body.return_best_chunk else None
        scored = await state.score(request, body.query, texts,
                                   max_tokens=body.max_tokens_per_doc or getattr(body, "truncate_prompt_tokens", None),
                                   refuse_long=body.truncation is False, chunking=chunking)
        results = []
        for r, role in state.ranked(scored, None, body.top_n):
            sent = body.documents[r.index]  # documents come back as sent, never as the cut text scored
            result = {"index": r.index, "relevance_score": r.probability, "scored_by": role}
            if body.return_documents:
                result["document"] = {"text": sent} if isinstance(sent, str) else sent.model_dump(exclude_none=True)
            if body.return_best_chunk:
                window = scored.windows[r.index]
                result["best_chunk"] = {"start": window.evidence[0], "end": window.evidence[1],
                                        "chunks": window.windows}
            results.append(result)
        return results, scored.tokens

    async def cohere(body: CohereRerankRequest, request: Request, version: str) -> dict:
        results, tokens = await cohere_shape(body, request)
        return {"id": str(uuid.uuid4()), "results": results, "model": body.model or state.model_name,
                "usage": {"total_tokens": tokens},
                "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

    @app.post("/v1/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
              responses=ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Cohere v1 / Jina shape)")
    async def rerank_v1(body: CohereRerankRequest, request: Request):
        return await cohere(body, request, "1")

    @app.post("/v2/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
              responses=ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Cohere v2 shape)")
    async def rerank_v2(body: CohereRerankRequest, request: Request):
        return await cohere(body, request, "2")

    @app.post("/rerank", response_model=list[TEIResult] | CohereRerankResponse, response_model_exclude_none=True,
              responses=ERROR_RESPONSES, tags=["rerank"],
              summary="Rerank (Hugging Face TEI shape with texts; vLLM / Jina shape with documents)")
    async def rerank_plain(body: PlainRerankRequest, request: Request):
        if not isinstance(body, TEIRerankRequest):  # vLLM's /rerank
            results, tokens = await cohere_shape(body, request)
            return {"id": f"rerank-{uuid.uuid4().hex}", "model": body.model or state.model_name,
                    "usage": {"total_tokens": tokens}, "results": results}
        if body.truncation_direction.lower() == "left":  # accepted by the schema for TEI clients, not done here
            raise errors.ValidationFailed("truncation_direction 'left' is not supported: documents lose their end")
        scored = await state.score(request, body.query, body.texts, refuse_long=body.truncate is False)
        return [{"index": r.index, "score": r.score if body.raw_scores else r.probability, "scored_by": role,
                 **({"text": r.text} if body.return_text else {})}
                for r, role in state.ranked(scored, body.texts, None)]

    async def score(body: ScoreRequest, request: Request) -> dict:
        first = [body.text_1] if isinstance(body.text_1, str) else body.text_1
        second = [body.text_2] if isinstance(body.text_2, str) else body.text_2
        if len(first) == 1:
            first = first * len(second)
        elif len(second) == 1:
            second = second * len(first)
        if len(first) != len(second):
            raise errors.ValidationFailed(f"text_1 has {len(first)} texts and text_2 {len(second)}: give one text "
                                          "on either side, or as many on both")
        scored = await state.score(request, first, second, max_tokens=body.truncate_prompt_tokens)
        return {"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                "model": body.model or state.model_name,
                "data": [{"index": i, "object": "score", "score": float(p)}
                         for i, p in enumerate(state.probabilities(scored))],
                "usage": {"prompt_tokens": scored.tokens, "total_tokens": scored.tokens}}

    @app.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES, tags=["rerank"],
              summary="Score text pairs (vLLM shape)")
    async def score_plain(body: ScoreRequest, request: Request):
        return await score(body, request)

    @app.post("/v1/score", response_model=ScoreResponse, responses=ERROR_RESPONSES, tags=["rerank"],
              summary="Score text pairs (vLLM shape)")
    async def score_v1(body: ScoreRequest, request: Request):
        return await score(body, request)

    @app.post("/voyage/v1/rerank", response_model=VoyageRerankResponse, response_model_exclude_none=True,
              responses=ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Voyage AI shape)")
    async def rerank_voyage(body: VoyageRerankRequest, request: Request):
        scored = await state.score(request, body.query, body.documents, refuse_long=not body.truncation)
        data = [{"index": r.index, "relevance_score": r.probability, "scored_by": role,
                 **({"document": body.documents[r.index]} if body.return_documents else {})}
                for r, role in state.ranked(scored, None, body.top_k)]
        return {"object": "list", "data": data, "model": body.model or state.model_name,
                "usage": {"total_tokens": scored.tokens}}
