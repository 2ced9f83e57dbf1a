"""Run a server on a background thread of the calling process (demos, notebooks, embedding).

>>> with BackgroundServer(ServerConfig(port=0)) as server:      # doctest: +SKIP
...     client = Client(server.address)

The server has its own event loop on a daemon thread; leaving the ``with`` block stops it
gracefully (``grace_s``) and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from eventsp.services.config import ServerConfig
from eventsp.services.server import Server, create_server
from eventsp.services.tasks import StreamingTask


class BackgroundServer:
    def __init__(self, config: ServerConfig, tasks: Sequence[StreamingTask] | None = None) -> None:
        self.config = config
        self._tasks = tasks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: Server | None = None
        self.address = ""

    def _call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 120.0) -> Any:
        if self._loop is None:
            raise RuntimeError("the background server is not running; use it in a with block")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def start(self) -> BackgroundServer:
        """Create the server, start serving and wait until its models are warm."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="eventsp-server", daemon=True
        )
        self._thread.start()
        try:
            self.server, _ = self._call(create_server(self.config, self._tasks))
            self._call(self.server.start())
        except BaseException:
            self.stop()
            raise
        self.address = self.server.address
        return self

    def stop(self, grace_s: float | None = None) -> None:
        """Stop serving (draining open streams for ``grace_s``) and end the thread."""
        if self._loop is None:
            return
        try:
            if self.server is not None:
                self._call(self.server.stop(grace_s))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(30)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
