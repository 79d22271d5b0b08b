"""Reading a user's text file once, with the one-line errors every reader shares."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from codyn.errors import DataError


def read_text(path: Path, what: str = "file") -> str:
    """The whole file as text (UTF-8, optional BOM). A missing or unreadable file, bytes that
    are not UTF-8 (named by line) or a blank file are a `DataError`; ``what`` names the file's
    role in the messages (``split file``)."""
    if not path.is_file():
        raise DataError(f"no such {what}" if not path.exists() else "not a regular file", path=path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the {what} ({exc.strerror})", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the {what} as UTF-8",
            path=path,
            row=raw[: exc.start].count(b"\n") + 1,
        ) from None
    if not text.strip():
        raise DataError(f"{what} is empty", path=path)
    return text


def csv_records(text: str, path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` for each non-blank record of a CSV/TSV text, ``line`` the file line
    it starts on (1-based, as an editor shows it); a malformed record is a `DataError`."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # RouterBench cells hold long responses
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(
                f"malformed record at line {line}: {exc}", path=path, row=line
            ) from None
        if any(field.strip() for field in fields):
            yield line, fields
