"""HTTP service (``crossrank serve``): Cohere-, Jina- and TEI-compatible rerank API over the scoring engine.

Layers, as in Hugging Face TEI: HTTP routes (app) -> request validation (schemas) -> queue and
cross-request batcher (batcher) -> the scoring engine. Errors map to status codes in one place (errors).
Needs the ``[serve]`` extra (fastapi, uvicorn, prometheus-client).
"""
