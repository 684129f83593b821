"""Readers and writers of BEIR and TREC files: good files, malformed files, duplicates, round trips."""

from __future__ import annotations

import logging

import pytest

from crossrank.data.formats import (FormatError, ranked, read_corpus, read_qrels, read_queries, read_run,
                                    write_trec_run)


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_beir_corpus_queries_and_qrels(tmp_path):
    corpus = read_corpus(write(tmp_path / "c.jsonl", '{"_id": "d1", "title": "T", "text": "body"}\n\n'
                                                     '{"_id": 2, "text": "no title"}\n'))
    assert corpus["d1"].full_text == "T body" and corpus["2"].full_text == "no title"
    assert read_corpus(tmp_path / "c.jsonl", ids={"2"}).keys() == {"2"}
    queries = read_queries(write(tmp_path / "q.jsonl", '{"_id": "q1", "text": "hello"}\n'))
    assert queries == {"q1": "hello"}
    qrels = read_qrels(write(tmp_path / "qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n"))
    assert qrels.qrels == {"q1": {"d1": 2, "d2": 0}} and qrels.duplicates == []


def test_trec_qrels_and_both_run_formats(tmp_path):
    assert read_qrels(write(tmp_path / "q.txt", "q1 0 d1 3\nq2 0 d9 1\n")).qrels == {"q1": {"d1": 3}, "q2": {"d9": 1}}
    trec = read_run(write(tmp_path / "r.trec", "q1 Q0 d1 1 2.5 bm25\nq1 Q0 d2 2 1.5 bm25\n")).run
    tsv = read_run(write(tmp_path / "r.tsv", "query-id\tcorpus-id\trank\tscore\nq1\td1\t1\t2.5\nq1\td2\t2\t1.5\n")).run
    assert trec == tsv == {"q1": {"d1": 2.5, "d2": 1.5}}


@pytest.mark.parametrize(
    "reader, content, message",
    [
        (read_run, "q1 Q0 d1 1 2.5\n", "r.txt:1: expected 6 (TREC) or 4 (TSV) columns, got 5"),
        (read_run, "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 high t\n", "r.txt:2: score 'high' is not a number"),
        (read_run, "q1 Q0 d1 1 nan t\n", "r.txt:1: score is NaN"),
        (read_qrels, "q1 d1\n", "r.txt:1: expected 3 (BEIR) or 4 (TREC) columns, got 2"),
        (read_qrels, "q1 0 d1 yes\n", "r.txt:1: relevance 'yes' is not a number"),
        (read_corpus, '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', "r.txt:2: invalid JSON"),
        (read_corpus, '{"text": "a"}\n', "r.txt:1: missing or non-string field '_id'"),
        (read_corpus, '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', "r.txt:2: duplicate document id"),
        (read_queries, '["q"]\n', "r.txt:1: expected a JSON object"),
        (read_queries, b'{"_id": "q1", "text": "caf\xe9"}\n', "r.txt:1: not valid UTF-8"),
    ],
)
def test_malformed_files_name_file_line_and_problem(tmp_path, reader, content, message):
    path = write(tmp_path / "r.txt", content)
    with pytest.raises(FormatError) as info:
        reader(path)
    assert message in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_run(tmp_path / "absent.trec")
    assert info.value.filename == str(tmp_path / "absent.trec")


def test_duplicate_rows_are_reported_not_merged(tmp_path, caplog):
    run_text = "q1 Q0 d1 1 3.0 t\nq1 Q0 d2 2 2.0 t\nq1 Q0 d1 3 1.0 t\n"
    with caplog.at_level(logging.WARNING):
        result = read_run(write(tmp_path / "r.trec", run_text))
    assert result.run == {"q1": {"d1": 3.0, "d2": 2.0}}  # the first row wins
    assert [(d.query_id, d.doc_id, d.line, d.first_line) for d in result.duplicates] == [("q1", "d1", 3, 1)]
    assert "1 duplicate (query, document) rows ignored" in caplog.text and "line 3" in caplog.text
    qrels = read_qrels(write(tmp_path / "q.txt", "q1 0 d1 1\nq1 0 d1 2\n"))
    assert qrels.qrels == {"q1": {"d1": 1}} and len(qrels.duplicates) == 1


def test_trec_run_round_trip_keeps_exact_scores_and_trec_eval_order(tmp_path):
    run = {"q1": {"a": 0.1 + 0.2, "b": 1e-9, "c": 1e-9 + 1e-17, "z": 5.0}, "q2": {"x": -3.25}}
    path = tmp_path / "sub" / "out.trec"
    write_trec_run(run, path, tag="t")
    assert read_run(path).run == run
    lines = path.read_text().splitlines()
    assert lines[0].split()[:4] == ["q1", "Q0", "z", "1"]
    assert ranked({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]  # ties: document id descending
    assert not list(tmp_path.glob("sub/.*.tmp"))
