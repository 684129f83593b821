"""A real ``crossrank serve`` process on 127.0.0.1 with an ephemeral port, for the server tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Server:
    """``crossrank serve`` in a subprocess; the port is read from its first line on stderr."""

    def __init__(self, model, *flags, key_flags=("--api-key", KEY), env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "crossrank.cli.app", "serve", "--model", str(model),
                                      "--port", "0", *key_flags, *flags],
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        line = self.proc.stderr.readline()
        assert "listening on" in line, line
        self.url = line.strip().rsplit(" ", 1)[-1]
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy")

    def post(self, path, body, headers=AUTH, **kwargs):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(f"{self.url}{path}", content=data, headers={"content-type": "application/json", **headers},
                          timeout=60, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
