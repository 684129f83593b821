"""Drop-in rerankers for the RAG frameworks, each an optional extra imported only when used:

- ``crossrank.integrations.langchain.CrossrankReranker``: a LangChain document compressor;
- ``crossrank.integrations.llama_index.CrossrankRerank``: a LlamaIndex node postprocessor;
- ``crossrank.integrations.haystack.CrossrankRanker``: a Haystack ranker component.

Each scores with a local model (the shipped default when none is named, offline) or with a remote
``crossrank serve`` (``url=`` and ``api_key=``), through ``crossrank.integrations.backend``.
"""
