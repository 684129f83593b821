"""Start the service: bind the socket first (port 0 picks a free one), then run uvicorn.

On SIGTERM/SIGINT uvicorn stops accepting connections, lets in-flight requests finish (up to
``graceful_timeout_s``) and runs the app's shutdown (which drains the inference worker); the process
then exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from typing import Callable

from crossrank.server.settings import ServerSettings


def serve(load_model: Callable[[], object], settings: ServerSettings, graceful_timeout_s: int = 30,
          log_level: str = "info") -> None:
    import uvicorn

    from crossrank.server.app import create_app

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    server_logger = logging.getLogger("crossrank.server")
    server_logger.handlers[:] = [handler]
    server_logger.setLevel(log_level.upper())
    server_logger.propagate = False

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"crossrank serve: listening on http://{host}:{port}", file=sys.stderr, flush=True)

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown (exit status -15); a finished shutdown exits 0."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(create_app(load_model, settings), log_config=None, access_log=False,
                            timeout_graceful_shutdown=graceful_timeout_s, lifespan="on")
    GracefulServer(config).run(sockets=[sock])
