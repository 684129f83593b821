"""Start the service: bind the socket first (port 0 picks a free one), then run uvicorn.

On SIGTERM/SIGINT the server drains before it stops listening: /health turns 503 at once (a load
balancer stops sending traffic), new requests get a clean 503 with Retry-After, and accepted requests
are finished for up to ``settings.shutdown_grace_s`` seconds; any still waiting then get a 503 too.
Once nothing is in flight, uvicorn shuts down as usual (its own timeout is a little longer than the
grace, so it never has to cancel a request), the app's shutdown ends the inference worker, and the
process exits 0. A second signal skips the wait for in-flight work.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from typing import Callable

from crossrank.server.settings import ServerSettings


# Seconds uvicorn waits beyond the grace period: time for the refused requests' 503s to be written.
_UVICORN_MARGIN_S = 5


def serve(load_model: Callable[[], object], settings: ServerSettings, log_level: str = "info",
          load_fallback: Callable[[], object] | None = None) -> None:
    import uvicorn

    from crossrank.server.app import create_app
    from crossrank.server.limits import GuardedH11Protocol

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    server_logger = logging.getLogger("crossrank.server")
    server_logger.handlers[:] = [handler]
    server_logger.setLevel(log_level.upper())
    server_logger.propagate = False

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP; without it
    # a keep-alive client waits 40 ms for every response (a header write and a body write meet delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"crossrank serve: listening on http://{host}:{port}", file=sys.stderr, flush=True)

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown (exit status -15); a finished shutdown exits 0."""

        draining = False

        def handle_exit(self, sig, frame) -> None:
            if self.draining:  # a second signal: stop waiting
                super().handle_exit(sig, frame)
                return
            self.draining = True
            app.state.service.begin_shutdown()

            def stop_when_drained() -> None:
                deadline = time.monotonic() + settings.shutdown_grace_s + _UVICORN_MARGIN_S
                while not app.state.service.drained() and time.monotonic() < deadline:
                    time.sleep(0.05)
                uvicorn.Server.handle_exit(self, sig, None)

            threading.Thread(target=stop_when_drained, name="crossrank-drain", daemon=True).start()

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    app = create_app(load_model, settings, load_fallback)
    protocol = type("Protocol", (GuardedH11Protocol,), {"header_timeout_s": settings.header_timeout_s})
    # h11's buffer cap bounds headers that are still arriving; RequestLimits answers 431 for complete ones.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", http=protocol,
                            h11_max_incomplete_event_size=settings.max_header_bytes,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s) + _UVICORN_MARGIN_S)
    GracefulServer(config).run(sockets=[sock])
