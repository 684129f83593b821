"""`crossrank rerank` through a real subprocess: JSONL in and out, exit codes, bad lines, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crossrank import CrossEncoder

CLI = [sys.executable, "-m", "crossrank.cli.app"]


def run_cli(args, stdin: bytes | str = b"", env=None):
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(CLI + args, input=data, capture_output=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def jsonl(*objects) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


REQUESTS = [
    {"query": "how many people live in berlin", "documents": ["Berlin is well known for its museums.",
     {"id": "d7", "text": "Berlin had a population of 3,520,031 registered inhabitants."}, "unrelated text"]},
    {"qid": "q2", "query": "protein therapy", "documents": ["cell protein study", "river city"], "top_k": 1},
]


def test_rerank_matches_the_python_api_line_by_line(tiny_model):
    proc = run_cli(["rerank", "--model", str(tiny_model)], jsonl(*REQUESTS))
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(lines) == 2
    ce = CrossEncoder(str(tiny_model))
    for request, line in zip(REQUESTS, lines):
        expected = ce.rerank(request["query"], request["documents"], top_k=request.get("top_k"))
        assert line["query"] == request["query"]
        assert [r["index"] for r in line["results"]] == [r.index for r in expected]
        assert [r["id"] for r in line["results"]] == [r.id for r in expected]
        assert [r["score"] for r in line["results"]] == pytest.approx([r.score for r in expected], abs=1e-5)
        assert [r["probability"] for r in line["results"]] == pytest.approx([r.probability for r in expected], abs=1e-6)
    assert lines[1]["qid"] == "q2" and len(lines[1]["results"]) == 1
    assert "d7" in [r["id"] for r in lines[0]["results"]]


def test_files_top_k_and_return_documents(tiny_model, tmp_path):
    (tmp_path / "in.jsonl").write_text(jsonl(*REQUESTS))
    out = tmp_path / "out.jsonl"
    proc = run_cli(["rerank", "-m", str(tiny_model), "-i", str(tmp_path / "in.jsonl"), "-o", str(out),
                    "--top-k", "2", "--return-documents", "--batch-tokens", "64", "--max-length", "32"])
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(line["results"]) for line in lines] == [2, 1]  # the line's own top_k wins
    texts = {r["text"] for r in lines[0]["results"]}
    assert texts <= {d if isinstance(d, str) else d["text"] for d in REQUESTS[0]["documents"]}


BAD_LINES = [
        (b"{not json", "invalid JSON"),
        (b'["a list"]', "expected a JSON object"),
        (b'{"query": "", "documents": ["a"]}', "query is empty"),
        (b'{"query": 5, "documents": ["a"]}', "query must be a string"),
        (b'{"query": "q", "documents": []}', "documents is empty"),
        (b'{"query": "q"}', "missing field 'documents'"),
        (b'{"query": "q", "documents": [1]}', "document 0 is int"),
        (b'{"query": "q", "documents": ["a"], "top_k": -1}', "top_k"),
        (b'{"query": "caf\xe9", "documents": ["a"]}', "not valid UTF-8"),
]


@pytest.mark.parametrize("bad_line, message", BAD_LINES)
def test_each_bad_line_gets_its_own_message(bad_line, message):
    from crossrank.cli.requests import InvalidLine, read_requests
    import io

    items = list(read_requests(io.BytesIO(jsonl(REQUESTS[0]).encode() + bad_line + b"\n"), None))
    assert isinstance(items[1], InvalidLine) and items[1].line == 2
    assert message in items[1].error


@pytest.mark.parametrize("bad_line, message", [BAD_LINES[0], BAD_LINES[-1]])
def test_a_bad_line_stops_with_exit_3_naming_line_and_problem(tiny_model, bad_line, message):
    stdin = jsonl(REQUESTS[0]).encode() + bad_line + b"\n" + jsonl(REQUESTS[1]).encode()
    proc = run_cli(["rerank", "--model", str(tiny_model)], stdin)
    assert proc.returncode == 3
    assert f"line 2: {message}" in proc.stderr.decode()


def test_skip_invalid_reports_and_goes_on(tiny_model):
    stdin = jsonl(REQUESTS[0]) + "{oops\n" + "\n" + jsonl(REQUESTS[1])
    proc = run_cli(["rerank", "--model", str(tiny_model), "--skip-invalid"], stdin)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(lines) == 3  # the blank line is not a request
    assert lines[1] == {"line": 2, "error": lines[1]["error"]} and "invalid JSON" in lines[1]["error"]
    assert lines[2]["qid"] == "q2"
    assert "line 2" in proc.stderr.decode() and "skipped 1 invalid lines" in proc.stderr.decode()


def test_failed_run_leaves_an_existing_output_file_untouched(tiny_model, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    proc = run_cli(["rerank", "--model", str(tiny_model), "-o", str(out)], jsonl(REQUESTS[0]) + "{bad\n")
    assert proc.returncode == 3
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_missing_files_and_models_have_their_own_exit_codes(tiny_model, tmp_path):
    proc = run_cli(["rerank", "--model", str(tiny_model), "--input", str(tmp_path / "missing.jsonl")])
    assert proc.returncode == 5 and "missing.jsonl" in proc.stderr.decode()
    proc = run_cli(["rerank", "--model", str(tmp_path / "no-model")], jsonl(REQUESTS[0]))
    assert proc.returncode == 4 and "no-model does not exist" in proc.stderr.decode()
    proc = run_cli(["rerank", "--model", str(tiny_model), "--device", "cuda"], jsonl(REQUESTS[0]))
    if proc.returncode != 0:  # only on machines without CUDA
        assert proc.returncode == 4 and "CUDA is not available" in proc.stderr.decode()
    proc = run_cli(["rerank", "--top-k", "0"])
    assert proc.returncode == 2


def test_help_lists_every_verb_and_each_verb_has_help():
    proc = run_cli(["--help"])
    assert proc.returncode == 0 and "rerank" in proc.stdout.decode()
    proc = run_cli(["rerank", "--help"])
    assert proc.returncode == 0
    for flag in ("--model", "--input", "--output", "--top-k", "--batch-tokens", "--max-length", "--device",
                 "--skip-invalid"):
        assert flag in proc.stdout.decode()


def test_many_requests_are_scored_in_one_engine_pass(tiny_model, tmp_path):
    requests = [{"query": f"query {i}", "documents": [f"doc {j} of {i}" for j in range(5)]} for i in range(40)]
    proc = run_cli(["--log-level", "DEBUG", "rerank", "--model", str(tiny_model)], jsonl(*requests))
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    assert [json.loads(line)["query"] for line in lines] == [r["query"] for r in requests]
    assert "scored 200 pairs in" in proc.stderr.decode()  # one engine call for all 40 requests


def test_request_fields_follow_the_servers_rule(tiny_model):
    docs = ["Berlin is well known for its museums.", "Berlin had 3.5 million inhabitants.", "unrelated text"]
    proc = run_cli(["rerank", "--model", str(tiny_model)],
                   jsonl({"query": "berlin population", "documents": docs, "top_n": 2, "return_documents": True,
                          "model": "rerank-v3.5"},
                         {"query": "berlin population", "documents": docs, "max_tokens_per_doc": 2}))
    assert proc.returncode == 0, proc.stderr.decode()
    first, second = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(first["results"]) == 2  # top_n is Cohere's spelling of top_k
    assert all(r["text"] == docs[r["index"]] for r in first["results"])  # return_documents per request
    assert len(second["results"]) == 3 and "text" not in second["results"][0]
    ce = CrossEncoder(str(tiny_model))
    cut = [ce.tokenizer.cut_document(d, 2) for d in docs]
    expected = ce.score([("berlin population", d) for d in cut])
    assert [r["score"] for r in second["results"]] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    for line, message in [({"query": "q", "documents": ["a"], "topn": 1}, "unknown field 'topn'"),
                          ({"query": "q", "documents": ["a"], "top_k": 1, "top_n": 2}, "disagree"),
                          ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "true or false")]:
        proc = run_cli(["rerank", "--model", str(tiny_model)], jsonl(line))
        assert proc.returncode == 3 and message in proc.stderr.decode(), proc.stderr.decode()


def test_a_lone_surrogate_is_an_invalid_line(tiny_model):
    proc = run_cli(["rerank", "--model", str(tiny_model)], '{"query": "q", "documents": ["a \\ud800 b"]}\n')
    assert proc.returncode == 3 and "lone surrogate" in proc.stderr.decode()
    from crossrank import InvalidInputError

    with pytest.raises(InvalidInputError, match="surrogate"):
        CrossEncoder(str(tiny_model)).score([("q\ud800", "d")])


def test_index_build_onto_a_regular_file_is_a_clear_io_error(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(jsonl({"_id": "d1", "title": "", "text": "some text"}))
    target = tmp_path / "not-a-folder"
    target.write_text("precious")
    proc = run_cli(["index", "build", str(target), "--corpus", str(corpus)])
    assert proc.returncode == 5, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode() and str(target) in proc.stderr.decode()
    assert target.read_text() == "precious"


def _tiny_beir(folder):
    folder.mkdir()
    docs = {f"d{i}": f"document {i} about {'berlin population' if i % 3 == 0 else 'river water'}" for i in range(12)}
    (folder / "corpus.jsonl").write_text(jsonl(*({"_id": k, "title": "", "text": v} for k, v in docs.items())))
    (folder / "queries.jsonl").write_text(jsonl(*({"_id": f"q{j}", "text": "berlin population"} for j in range(4))))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{j}\td{i}\t1\n" for j in range(4) for i in range(0, 12, 3)))
    run = folder / "run.trec"
    run.write_text("".join(f"q{j} Q0 d{i} {i + 1} {20 - i} bm25\n" for j in range(4) for i in range(12)))
    return run


def test_calibrate_never_writes_into_the_shipped_model(tmp_path):
    from crossrank.model.default import default_model_dir

    run = _tiny_beir(tmp_path / "data")
    shipped = {p.name: p.read_bytes() for p in default_model_dir().iterdir() if p.suffix == ".json"}
    proc = run_cli(["calibrate", "--data", str(tmp_path / "data"), "--run", str(run), "--depth", "12"])
    assert proc.returncode == 3 and "read-only" in proc.stderr.decode(), proc.stderr.decode()
    out = tmp_path / "calibrated"
    proc = run_cli(["calibrate", "--data", str(tmp_path / "data"), "--run", str(run), "--depth", "12",
                    "--output", str(out)])
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["written"] == str(out / "calibration.json")
    assert (out / "calibration.json").is_file() and (out / "model.safetensors").is_file()
    assert {p.name: p.read_bytes() for p in default_model_dir().iterdir() if p.suffix == ".json"} == shipped
    calibrated = CrossEncoder(str(out))
    assert calibrated.calibration is not None and calibrated.ensemble is not None


def test_deep_nesting_and_surrogates_are_invalid_lines_reported_by_number(tiny_model):
    good = {"query": "q", "documents": ["a", "b"]}
    deep = "[" * 100_000 + "\n"
    proc = run_cli(["rerank", "--model", str(tiny_model)], jsonl(good) + deep)
    assert proc.returncode == 3 and "line 2" in proc.stderr.decode() and "nested too deeply" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    surrogate = '{"query": "q", "documents": ["a \\udcff"]}\n'
    proc = run_cli(["rerank", "--model", str(tiny_model), "--skip-invalid"], jsonl(good) + surrogate + deep + jsonl(good))
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(lines[0]["results"]) == 2 and len(lines[3]["results"]) == 2  # earlier and later results are kept
    assert lines[1]["line"] == 2 and "surrogate" in lines[1]["error"]
    assert lines[2]["line"] == 3 and "nested" in lines[2]["error"]


@pytest.mark.parametrize("grade, message", [("inf", "not a whole number"), ("1.5", "not a whole number"),
                                            ("nan", "NaN")])
def test_eval_refuses_grades_that_are_not_whole_numbers(tmp_path, grade, message):
    qrels, run = tmp_path / "qrels.tsv", tmp_path / "run.trec"
    qrels.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t{grade}\n")
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(run)])
    assert proc.returncode == 3 and message in proc.stderr.decode() and "qrels.tsv:2" in proc.stderr.decode()
    proc = run_cli(["eval", "--qrels", str(tmp_path), "--run", str(run)])
    assert proc.returncode == 3 and "is a folder" in proc.stderr.decode()
