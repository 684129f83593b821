"""Model layer: find a cross-encoder, load it safely, turn (query, document) pairs into token ids."""

from crossrank.model.loading import LoadedModel, load_model
from crossrank.model.tokenization import PairTokenizer, TokenizedPairs

__all__ = ["LoadedModel", "load_model", "PairTokenizer", "TokenizedPairs"]
