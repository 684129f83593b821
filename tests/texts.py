"""Varied (query, document) pairs for tests: real sentences, random word soups, short and long."""

from __future__ import annotations

import random

SENTENCES = [
    "How many people live in Berlin?",
    "Berlin had a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
    "Berlin is well known for its museums.",
    "what is the boiling point of water at high altitude",
    "Water boils at lower temperatures as altitude increases because air pressure drops.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The mitochondria is the powerhouse of the cell, producing ATP through respiration.",
    "who wrote pride and prejudice",
    "Pride and Prejudice is an 1813 novel of manners by Jane Austen.",
    "Café naïve résumé — Unicode text, emojis 🙂 and 中文字符 mixed in.",
    "",
    "a",
]

WORDS = ("the of and to in is was for on that with as by at from his her an it are were be this which "
         "protein cell gene cancer therapy patient study results clinical trial water energy city river "
         "population museum history novel author science data model training retrieval ranking").split()


def word_soup(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def varied_pairs(n: int, seed: int = 0, long_share: float = 0.25) -> list[tuple[str, str]]:
    """n pairs mixing real sentences, short and long random texts (some beyond 512 tokens)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        query = rng.choice(SENTENCES[:9]) if i % 3 else word_soup(rng, rng.randint(1, 20))
        if rng.random() < long_share:
            doc = word_soup(rng, rng.randint(300, 700))
        elif i % 4 == 0:
            doc = rng.choice(SENTENCES)
        else:
            doc = word_soup(rng, rng.randint(0, 120))
        pairs.append((query, doc))
    return pairs
