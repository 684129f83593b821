"""release_freed_memory: returns free heap pages to the OS on glibc, honours the off switch."""

from __future__ import annotations

import os

import pytest

from crossrank.engine import memory

glibc = pytest.mark.skipif(not memory.malloc_trim_available(), reason="needs glibc (malloc_trim)")


@pytest.fixture(autouse=True)
def _switched_on(monkeypatch):
    monkeypatch.delenv(memory.DISABLE_ENV, raising=False)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, pad):
        self.calls.append(pad)
        return 1


def test_calls_malloc_trim_with_zero_pad(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(memory, "_malloc_trim", lambda: recorder)
    assert memory.release_freed_memory() is True
    assert memory.release_freed_memory() is True
    assert recorder.calls == [0, 0]


@pytest.mark.parametrize("value", ["1", "yes"])
def test_off_switch(monkeypatch, value):
    recorder = _Recorder()
    monkeypatch.setattr(memory, "_malloc_trim", lambda: recorder)
    monkeypatch.setenv(memory.DISABLE_ENV, value)
    assert memory.release_freed_memory() is False
    assert recorder.calls == []


def test_zero_or_empty_does_not_switch_off(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(memory, "_malloc_trim", lambda: recorder)
    for value in ("0", ""):
        monkeypatch.setenv(memory.DISABLE_ENV, value)
        assert memory.release_freed_memory() is True
    assert len(recorder.calls) == 2


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_freed_memory() is False


def test_unavailable_elsewhere_than_linux(monkeypatch):
    memory._malloc_trim.cache_clear()
    try:
        monkeypatch.setattr(memory.sys, "platform", "darwin")
        assert memory.malloc_trim_available() is False
    finally:
        monkeypatch.undo()
        memory._malloc_trim.cache_clear()


@glibc
def test_returns_fragmented_heap_to_the_os():
    """Blocks freed below a live allocation stay resident until malloc_trim hands them back.

    Run in a fresh interpreter: a long test session's allocator state (arenas, thresholds) must not decide it.
    """
    import json
    import subprocess
    import sys

    script = r"""
import ctypes, json, os, threading
from crossrank.engine import memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
block, count = 64 * 1024, 1024  # 64 MB in blocks under the mmap threshold: served from the heap
result = {}

def fragment_and_release():  # in a fresh thread, like the server's inference thread (its own arena)
    big, pins = [], []
    for _ in range(count):
        pointer = libc.malloc(block)
        ctypes.memset(pointer, 1, block)  # make it resident
        big.append(pointer)
        pins.append(libc.malloc(32))  # a long-lived small allocation after each block
    for pointer in big:
        libc.free(pointer)
    result["freed"] = rss()
    result["released"] = memory.release_freed_memory()
    result["trimmed"] = rss()
    for pointer in pins:
        libc.free(pointer)

thread = threading.Thread(target=fragment_and_release)
thread.start()
thread.join()
print(json.dumps(result))
"""
    env = {k: v for k, v in os.environ.items() if k != memory.DISABLE_ENV}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["released"] is True
    assert result["freed"] - result["trimmed"] > 32 * 1024 * 1024