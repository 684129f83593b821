"""Turn (query, document) pairs into model inputs with query-preserving, never-silent truncation.

``longest_first`` truncation, the transformers default, trims whichever side is longer, so a long
query can lose its own words to fit a long passage. Here the query keeps up to ``query_max_tokens``
tokens (default 64) and the document gets the rest of the window. Every cut is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crossrank.errors import InvalidInputError, ModelLoadError

# Characters tokenized per window token before cutting a huge document short: a real token covers far
# fewer, so the kept tokens never change; the cut only saves tokenizing megabytes that would be dropped.
_CHARS_PER_TOKEN_CAP = 32


@dataclass
class TokenizedPairs:
    """Token ids of each pair (special tokens included) and what truncation removed."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    lengths: np.ndarray  # tokens per pair, int64
    truncated_pairs: int  # pairs that lost any token (query or document)
    truncated_queries: int  # pairs whose query was capped
    tokens_dropped: int  # tokens removed from queries and documents together
    tokens_dropped_estimated: bool  # True when a huge document's tail was counted by extrapolation


class PairTokenizer:
    """Tokenize pairs with a fast (Rust) tokenizer, model-agnostically, keeping the query intact."""

    def __init__(self, tokenizer: object, max_length: int, query_max_tokens: int = 64):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or backend.post_processor is None:
            raise ModelLoadError("the tokenizer has no fast backend with a pair template (tokenizer.json)")
        from tokenizers import Tokenizer

        # A private copy without the padding/truncation some tokenizer.json files switch on.
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_padding()
        self._backend.no_truncation()
        self._post = self._backend.post_processor
        self.special_tokens = int(backend.post_processor.num_special_tokens_to_add(True))
        if max_length <= self.special_tokens + 1:
            raise InvalidInputError(f"max_length {max_length} leaves no room for a query and a document")
        if query_max_tokens < 1:
            raise InvalidInputError(f"query_max_tokens must be at least 1, got {query_max_tokens}")
        self.max_length = int(max_length)
        content = self.max_length - self.special_tokens
        # A query may take at most half the window, so a document always keeps room.
        self.query_cap = min(int(query_max_tokens), max(1, content // 2))
        self.uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._char_cap = max(self.max_length * _CHARS_PER_TOKEN_CAP, 4096)

    @property
    def backend(self):
        """The Rust tokenizer (no padding, no truncation): for offsets, e.g. when splitting long documents."""
        return self._backend

    def cut_document(self, text: str, max_tokens: int) -> str:
        """The prefix of ``text`` that holds its first ``max_tokens`` tokens (Cohere's ``max_tokens_per_doc``).

        Only a prefix long enough for those tokens is tokenized, so a huge document costs no more than a
        short one.
        """
        if max_tokens < 1:
            raise InvalidInputError(f"max_tokens_per_doc must be positive, got {max_tokens}")
        head = text[: max(max_tokens * _CHARS_PER_TOKEN_CAP, 4096)]
        offsets = self._encode([head], "document")[0].offsets
        if len(offsets) <= max_tokens:
            if len(head) == len(text):
                return text
            offsets = self._encode([text], "document")[0].offsets  # unusually long tokens: read it all
            if len(offsets) <= max_tokens:
                return text
        return text[: offsets[max_tokens - 1][1]]

    def __call__(self, queries: Sequence[str], documents: Sequence[str]) -> TokenizedPairs:
        if len(queries) != len(documents):
            raise InvalidInputError(f"{len(queries)} queries but {len(documents)} documents")
        unique_queries = list(dict.fromkeys(queries))
        query_encodings = dict(zip(unique_queries, self._encode(unique_queries, "query")))
        query_dropped = {}
        for text, encoding in query_encodings.items():
            dropped = max(0, len(encoding.ids) - self.query_cap)
            if dropped:
                encoding.truncate(self.query_cap)
            query_dropped[text] = dropped

        heads, tails = self._cut_huge(documents)
        doc_encodings = self._encode(heads, "document")
        content = self.max_length - self.special_tokens

        input_ids: list[list[int]] = []
        type_ids: list[list[int]] | None = [] if self.uses_token_types else None
        lengths = np.empty(len(documents), dtype=np.int64)
        truncated_pairs = truncated_queries = tokens_dropped = 0
        estimated = False
        for i, (query, doc_enc) in enumerate(zip(queries, doc_encodings)):
            query_enc = query_encodings[query]
            budget = content - len(query_enc.ids)
            doc_tokens = len(doc_enc.ids)
            if tails[i] and doc_tokens <= budget:  # the cut was too eager: tokenize the whole document
                doc_enc = self._encode([documents[i]], "document")[0]
                doc_tokens, tails[i] = len(doc_enc.ids), 0
            dropped = query_dropped[query] + max(0, doc_tokens - budget)
            if tails[i]:
                dropped += round(tails[i] * doc_tokens / max(1, len(heads[i])))
                estimated = True
            if doc_tokens > budget:
                doc_enc.truncate(budget)
            if dropped:
                truncated_pairs += 1
                tokens_dropped += dropped
            truncated_queries += query_dropped[query] > 0
            # transformers (and so sentence-transformers) encode an empty document as no document at all:
            # [CLS] q [SEP]. Match it, so scores equal theirs on every input.
            pair = self._post.process(query_enc, doc_enc if documents[i] else None, True)
            input_ids.append(pair.ids)
            if type_ids is not None:
                type_ids.append(pair.type_ids)
            lengths[i] = len(pair.ids)
        return TokenizedPairs(input_ids, type_ids, lengths, truncated_pairs, truncated_queries, tokens_dropped,
                              estimated)

    def _cut_huge(self, documents: Sequence[str]) -> tuple[list[str], list[int]]:
        """Cut documents far beyond the window at a whitespace; return heads and cut-off character counts."""
        heads, tails = [], []
        for doc in documents:
            if len(doc) <= self._char_cap:
                heads.append(doc)
                tails.append(0)
                continue
            head = doc[: self._char_cap]
            space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
            if space > self._char_cap // 2:
                head = head[:space]
            heads.append(head)
            tails.append(len(doc) - len(head))
        return heads, tails

    def _encode(self, texts: list[str], what: str) -> list:
        try:
            return self._backend.encode_batch(texts, add_special_tokens=False)
        except Exception as exc:  # noqa: BLE001 - find the offending text for the message
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise InvalidInputError(f"{what} {i} is {type(text).__name__}, not a string") from exc
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as bad:
                    raise InvalidInputError(f"{what} {i} is not valid Unicode text ({bad.reason})") from exc
            raise
