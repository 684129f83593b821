"""What a hostile or slow client can do to a real server: heavy requests, huge or stalled uploads, huge headers."""

from __future__ import annotations

import json
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx
import pytest

from servers import AUTH, KEY, Server


@pytest.fixture(scope="module")
def guarded(tiny_model):
    srv = Server(tiny_model, "--max-body-bytes", "1000000", "--body-timeout", "1", "--header-timeout", "1")
    yield srv
    srv.stop()


def _address(srv) -> tuple[str, int]:
    host, port = srv.url.split("//")[1].rsplit(":", 1)
    return host, int(port)


def _answer(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(5)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_health_answers_in_milliseconds_while_heavy_requests_are_prepared(tiny_model):
    """190 documents of 100k characters cut to 1 token each, and TEI's truncate=false check of the same,
    tokenize 19M characters: none of it may stall the event loop (it did for 7.2 s and 1.1 s). Kept-alive
    connections must not wait on delayed ACKs either (every /health took 44 ms)."""
    srv = Server(tiny_model)
    try:
        doc = ("berlin river museum " * 5000)[:100_000]
        heavy = [("/v2/rerank", {"query": "q", "documents": [doc] * 190, "max_tokens_per_doc": 1}),
                 ("/rerank", {"query": "q", "texts": [doc] * 190, "truncate": False})]
        with httpx.Client(timeout=30) as client:
            for path, body in heavy:
                answer: dict = {}
                sender = threading.Thread(target=lambda: answer.update(r=srv.post(path, body)))
                sender.start()
                latencies = []
                while sender.is_alive():
                    started = time.perf_counter()
                    assert client.get(f"{srv.url}/health").status_code == 200
                    latencies.append(time.perf_counter() - started)
                    time.sleep(0.005)
                sender.join()
                assert answer["r"].status_code in (200, 413), answer["r"].text
                assert len(latencies) >= 3
                assert statistics.median(latencies) < 0.02, (path, latencies)
                assert max(latencies) < 0.5, (path, max(latencies))
    finally:
        srv.stop()


def test_an_over_limit_chunked_upload_is_refused_at_the_limit(guarded):
    """A chunked body has no Content-Length: the server must stop at the limit, not read 64 MB first."""
    sock = socket.create_connection(_address(guarded))
    sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    try:
        while sent < 64_000_000:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer has come
            sock.sendall(chunk)
            sent += 65536
    except OSError:
        pass  # the server closed the connection: it stopped reading
    answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error_type": "payload_too_large"' in answer
    assert sent < 16_000_000  # the limit (1 MB) plus what the sockets' buffers absorb
    assert httpx.get(f"{guarded.url}/health").status_code == 200


def test_a_declared_over_limit_body_is_refused_before_it_is_sent(guarded):
    sock = socket.create_connection(_address(guarded))
    sock.sendall(b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400000000\r\n\r\n")
    assert _answer(sock).startswith(b"HTTP/1.1 413")


def test_stalled_uploads_get_408_and_stalled_headers_are_closed(guarded):
    """Connections that stop sending in the middle of a body or of the headers are not held forever."""
    host, port = _address(guarded)
    bodies, headers = [], []
    for _ in range(30):
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"query\": \"q\"")
        bodies.append(sock)
    for _ in range(10):
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        headers.append(sock)
    silent = socket.create_connection((host, port))  # opens a connection and never sends a byte
    ok = guarded.post("/rerank", {"query": "berlin", "texts": ["berlin museum", "water"]})
    assert ok.status_code == 200  # the stalled connections block nobody
    time.sleep(2.5)
    for sock in bodies:
        answer = _answer(sock)  # a 408, and then the connection is closed
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error_type"] == "request_timeout"
    for sock in [*headers, silent]:
        assert _answer(sock) == b""


def test_oversized_headers_get_431(guarded):
    # 100 KB of headers: if they arrive at once they are complete and get the 431; if the kernel delivers
    # them in parts, h11's cap on headers still arriving (max_header_bytes) closes the connection first
    # (a reset on the client's side). Both refuse the request; which one is a matter of timing.
    try:
        r = httpx.get(f"{guarded.url}/health", headers={"X-Big": "a" * 100_000})
        assert r.status_code == 431 and r.json()["error_type"] == "headers_too_large"
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        pass
    r = httpx.post(f"{guarded.url}/rerank", json={"query": "q", "texts": ["a"]}, headers={**AUTH, "X-Big": "a" * 20_000})
    assert r.status_code == 431
    assert httpx.get(f"{guarded.url}/health", headers={"X-Fine": "a" * 1000}).status_code == 200


def test_the_api_key_can_come_from_a_file_that_ps_never_shows(tiny_model, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-from-file\n")
    srv = Server(tiny_model, key_flags=("--api-key-file", str(key_file)))
    try:
        with open(f"/proc/{srv.proc.pid}/cmdline", "rb") as f:
            assert b"s3cret" not in f.read()
        body = {"query": "q", "texts": ["a"]}
        assert srv.post("/rerank", body, headers={}).status_code == 401
        assert srv.post("/rerank", body, headers={"Authorization": "Bearer s3cret-from-file"}).status_code == 200
    finally:
        srv.stop()
    for flags, code, message in [(["--api-key-file", str(tmp_path / "missing")], 5, "missing"),
                                 (["--api-key-file", str(key_file), "--api-key", "x"], 3, "not both")]:
        done = subprocess.run([sys.executable, "-m", "crossrank.cli.app", "serve", "--port", "0", *flags],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code and message in done.stderr, done.stderr
    (tmp_path / "empty").write_text("\n")
    done = subprocess.run([sys.executable, "-m", "crossrank.cli.app", "serve", "--api-key-file", str(tmp_path / "empty")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "empty" in done.stderr
