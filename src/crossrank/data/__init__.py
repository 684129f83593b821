"""IR data files and their in-memory types (corpus, queries, qrels, runs): a base every layer may use."""
