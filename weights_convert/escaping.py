"""Text a file controls (key names, object names) or a user typed (paths), made safe to print on one line.

A key may hold terminal escapes, a carriage return or bidi overrides that repaint or reorder what the user
sees, or be a megabyte long; a path may hold bytes that are not UTF-8. Everything that reaches a message
goes through here.
"""
from __future__ import annotations

import unicodedata

NAME_LIMIT = 120  # characters of one name shown before it is cut
MESSAGE_LIMIT = 2000  # characters of a whole message


def _escaped(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    # Cc: C0, DEL, C1 controls; Cf: bidi overrides/isolates, marks, zero-width; Cs: lone surrogates;
    # Zl/Zp: line and paragraph separators, which some terminals honour
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def escape(text: str) -> str:
    """``text`` with every control, format, bidi and surrogate character written as a backslash escape."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escaped(ch) if _unsafe(ch) else ch for ch in text)


def shown(name: object, limit: int = NAME_LIMIT) -> str:
    """``name`` as it may appear inside a message: escaped and, when long, cut with its length noted."""
    text = name if isinstance(name, str) else str(name)
    if len(text) > limit:
        return f"{escape(text[:limit])}... ({len(text)} characters)"
    return escape(text)


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message, escaped, and cut in the middle when longer than ``limit`` (the problem is at the end)."""
    text = escape(message)
    if len(text) > limit:
        head, tail = limit * 2 // 3, limit // 3
        text = f"{text[:head]} ...({len(text) - head - tail} characters cut)... {text[-tail:]}"
    return text
