"""A folder served over HTTP on 127.0.0.1 by a thread of this process: the tests' stand-in for a release host
(``MLPZOO_MIRROR``); nothing beyond the machine is reached."""
from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    before: Callable[[str], object] | None = None

    def send_head(self):  # noqa: ANN201  (http.server's; serves GET and HEAD)
        if self.before is not None:
            self.before(urllib.parse.unquote(self.path.split("?", 1)[0]).lstrip("/"))
        return super().send_head()

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (http.server's name)
        pass  # one line per request on stderr would bury a failing test's own output


@contextlib.contextmanager
def serving(folder: Path, before: Callable[[str], object] | None = None) -> Iterator[str]:
    """Serves ``folder`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``). ``before(name)``
    runs ahead of each request for ``name`` (a path relative to the folder): it may write the file."""
    handler = type("Handler", (_Handler,), {"before": staticmethod(before) if before else None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
