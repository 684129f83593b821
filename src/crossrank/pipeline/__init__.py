"""Pipeline layer: first-stage candidates in, reranked rankings out."""
