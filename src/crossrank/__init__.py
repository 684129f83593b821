"""crossrank: fast, exact cross-encoder reranking."""

from crossrank.cross_encoder import CrossEncoder
from crossrank.engine.scorer import ScoreStats
from crossrank.errors import BackendUnavailableError, CrossrankError, InvalidInputError, ModelLoadError
from crossrank.ranking.chunking import Chunking
from crossrank.ranking.results import RerankResult

__version__ = "0.1.0"

__all__ = [
    "CrossEncoder",
    "RerankResult",
    "Chunking",
    "ScoreStats",
    "CrossrankError",
    "InvalidInputError",
    "ModelLoadError",
    "BackendUnavailableError",
    "__version__",
]
