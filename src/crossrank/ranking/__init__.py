"""Ranking layer: validated inputs, result objects and the ordering rules of a rerank."""

from crossrank.ranking.inputs import Documents, normalize_documents, validate_query
from crossrank.ranking.results import RerankResult, rank_scores, sigmoid

__all__ = ["Documents", "normalize_documents", "validate_query", "RerankResult", "rank_scores", "sigmoid"]
