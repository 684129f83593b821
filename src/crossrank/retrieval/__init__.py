"""First-stage retrieval over an embedded on-disk index: document store, BM25, dense vectors, fusion."""
