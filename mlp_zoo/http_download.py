"""One file from HTTP(S) into the cache: once across processes, resumed, verified, never half-written.

The body goes to ``<file>.part`` beside the destination and is renamed over it only once complete and verified
(size, SHA-256 or its 8-hex prefix, where known), so the destination is either absent or whole. A connection that
breaks mid-body is resumed with an HTTP Range request (in the same call, and by the next call from the kept
``.part``); a body that fails verification is deleted. An exclusive ``flock`` on ``<file>.lock`` lets N processes
started at once (torchrun or mpirun ranks) download one copy: the others wait, then find the file. Every failure
raises ``DownloadError``, one line naming the URL and what went wrong.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from weights_convert.errors import CheckpointError

CHUNK = 1 << 20
TRIES = 5  # connections per URL while each makes progress (a broken one resumes where it stopped)


class DownloadError(CheckpointError):
    """A file could not be fetched or failed verification; the message is one line naming the URL."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN201 (urllib's signature)
        target = urllib.parse.urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
            raise DownloadError(f"{req.full_url}: redirected to {target[:200]}, which is not HTTP(S)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def timeout_s() -> float:
    """Seconds without an answer before a connection counts as failed (``MLPZOO_TIMEOUT``, default 30)."""
    return float(os.environ.get("MLPZOO_TIMEOUT", "30"))


def download(urls: list[str], dest: Path, sha256: str | None = None, size: int | None = None,
             progress: bool | None = None) -> Path:
    """``dest``, fetched from the first of ``urls`` that serves a file passing verification (unless another
    process already did: the lock serialises them). ``progress`` (default: stderr is a terminal) draws a bar."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    with _locked(dest.with_name(dest.name + ".lock"), dest.name, show):
        if dest.is_file():  # another process fetched it while this one waited
            return dest
        failures = []
        for url in urls:
            try:
                _fetch(url, dest, sha256, size, show)
                return dest
            except DownloadError as e:
                failures.append(str(e))
        raise DownloadError("; ".join(failures) if failures else f"{dest.name}: no URL to download it from")


class _locked:
    """An exclusive ``flock`` held for the ``with`` block; says once on a terminal that it waits."""

    def __init__(self, path: Path, what: str, show: bool) -> None:
        self.path, self.what, self.show = path, what, show

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if self.show:
                print(f"{self.what}: another process is downloading it; waiting", file=sys.stderr)
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


class _Part:
    """``<file>.part`` and, when there is a hash to check, the SHA-256 of what it holds so far."""

    def __init__(self, dest: Path, hashed: bool) -> None:
        self.path = dest.with_name(dest.name + ".part")
        self.digest = hashlib.sha256() if hashed else None
        if self.digest and self.path.is_file():  # a previous call broke off: hash what it kept, then ask for the rest
            with open(self.path, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    self.digest.update(block)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.digest = self.digest and hashlib.sha256()


def _fetch(url: str, dest: Path, sha256: str | None, size: int | None, show: bool) -> None:
    part, total = _Part(dest, sha256 is not None), None
    for _ in range(TRIES):
        if size is not None and part.size() > size:
            part.reset()
        before = part.size()
        total = _one_connection(url, part, show)
        if total is None or part.size() >= total or part.size() == before:  # done, unknown, or no progress
            break
    got = part.size()
    if total is not None and got < total:
        raise DownloadError(f"{url}: the body ended after {got} of {total} bytes; the partial file {part.path} "
                            f"is resumed by the next try")
    _verify(url, part, got, sha256, size)
    os.replace(part.path, dest)


def _one_connection(url: str, part: _Part, show: bool) -> int | None:
    """Appends what one connection delivers to ``part``; returns the full size the server announced, or None."""
    have = part.size()
    headers = {"User-Agent": "mlp-zoo", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout_s())
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the kept part is not a prefix the server knows: start over
            part.reset()
            return have + 1  # not complete: the caller connects again
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: {_reason(e.reason)}") from None
    except (OSError, ValueError) as e:  # a timeout, a malformed URL or status line
        raise DownloadError(f"{url}: {_reason(e)}") from None
    with resp:
        if have and resp.status != 206:  # the server ignores Range: the whole body again
            part.reset()
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        bar = _Bar(_dest_name(part), total, have) if show else None
        with open(part.path, "ab" if have else "wb", buffering=0) as out, ThreadPoolExecutor(1) as hasher:
            # two buffers: one is hashed (hashlib releases the GIL) while the next chunk arrives in the other
            buffers, pending, i = [memoryview(bytearray(CHUNK)) for _ in range(2)], None, 0
            try:
                while n := resp.readinto(buffers[i]):
                    out.write(buffers[i][:n])
                    if part.digest:
                        if pending:
                            pending.result()
                        pending = hasher.submit(part.digest.update, buffers[i][:n])
                    i ^= 1
                    if bar:
                        bar.update(n)
            except (OSError, ValueError):  # a reset or a timeout mid-body: resumed by the caller
                pass
            finally:
                if pending:
                    pending.result()
        if bar:
            bar.close()
    return total


def _dest_name(part: _Part) -> str:
    return part.path.name[:-len(".part")]


def _verify(url: str, part: _Part, got: int, sha256: str | None, size: int | None) -> None:
    why, hexdigest = None, part.digest.hexdigest() if part.digest else ""
    if size is not None and got != size:
        why = f"{got} bytes, the release has {size}"
    elif sha256 is not None and not hexdigest.startswith(sha256.lower()):
        why = f"SHA-256 {hexdigest[:max(len(sha256), 8)]}..., the release has {sha256}"
    if why:
        part.reset()
        raise DownloadError(f"{url}: the file differs from the release ({why}); not kept")


def _reason(e: object) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout_s():g} s (MLPZOO_TIMEOUT)"
    if isinstance(e, socket.gaierror):
        return f"host not found ({e.strerror})"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


class _Bar:
    """One line on stderr, redrawn at most 5 times a second: bytes so far, the share of the total, the rate."""

    def __init__(self, name: str, total: int | None, done: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.total, self.done, self.start_bytes = name, total, done, done
        self.clock, self.start = clock, clock()
        self.drawn = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if self.clock() - self.drawn >= 0.2:
            self._draw()

    def _draw(self) -> None:
        self.drawn = now = self.clock()
        rate = (self.done - self.start_bytes) / max(now - self.start, 1e-9) / 1e6
        share = f"{100 * self.done / self.total:3.0f}% of {self.total / 1e6:.1f} MB" if self.total else ""
        print(f"\r{self.name}: {self.done / 1e6:.1f} MB {share} {rate:.1f} MB/s", end="", file=sys.stderr,
              flush=True)

    def close(self) -> None:
        self._draw()
        print(file=sys.stderr)
