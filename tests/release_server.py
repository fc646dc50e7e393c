"""A real HTTP server on 127.0.0.1 for the download tests: files with Range support, and every failure a
publisher or mirror can show (a cut connection, a short body, 404/500, a redirect away from HTTP, silence)."""
from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the revision a Hub repository here is at


class ReleaseServer(ThreadingHTTPServer):
    """``files``: URL path -> body. ``faults``: URL path -> "cut_once" (the first answer stops half-way),
    "short" (every answer stops half-way), "404", "500", "to_file" (a redirect to file:///), "silent" (no
    answer for 5 s), "slow" (the answer after 1 s). ``requests``: (path, Range header) of every request, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def gets(self, path: str) -> list[str | None]:
        """The Range header of each request for ``path``."""
        return [r for p, r in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: ReleaseServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name); what huggingface_hub asks before a GET
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Range")))
            fault = self.server.faults.get(self.path)
            if fault == "cut_once":
                self.server.faults.pop(self.path)
        if fault in ("404", "500"):
            self.send_error(int(fault))
            return
        if fault == "to_file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if fault == "silent":
            time.sleep(5)
            return
        if fault == "slow":  # time for every process started together to ask
            time.sleep(1)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        part = body[start:]
        self.wfile.write(part[:len(part) // 2] if fault in ("cut_once", "short") else part)
        if fault in ("cut_once", "short"):
            self.close_connection = True


def serve() -> ReleaseServer:
    """A started server; ``shutdown()`` then ``server_close()`` it when done."""
    server = ReleaseServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
