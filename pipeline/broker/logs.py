"""Reading the broker's log: a tail, or following it across log4j's roll-overs."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TextIO


def tail(path: Path, lines: int = 30, start: int = 0) -> list[str]:
    """The last ``lines`` lines of ``path`` written after byte offset ``start``.

    The file is capped by log4j, so a scan is cheap.
    """
    if lines <= 0:
        return []
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            fh.seek(start if start <= os.fstat(fh.fileno()).st_size else 0)
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except FileNotFoundError:
        return []


def size(path: Path) -> int:
    """Where the next run's lines will start, so an error shows only what this run wrote."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open(path: Path) -> tuple[TextIO, int] | None:
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return fh, os.fstat(fh.fileno()).st_ino


def _replaced(path: Path, inode: int, pos: int) -> bool:
    """True when log4j rolled the file over (new inode) or it was truncated."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return st.st_ino != inode or st.st_size < pos


def follow(
    path: Path,
    lines: int = 30,
    poll_s: float = 0.5,
    keep_going: Callable[[], bool] = lambda: True,
) -> Generator[str, None, None]:
    """The last ``lines`` lines, then every new line until ``keep_going()`` is false.

    The tail is read from the same open file that is then followed, so no line falls between.
    """
    opened = _open(path)
    if opened is not None:
        last: deque[str] = deque(maxlen=max(lines, 0))
        while line := opened[0].readline():
            last.append(line.rstrip("\n"))
        yield from last
    try:
        while keep_going():
            if opened is None:
                time.sleep(poll_s)
                opened = _open(path)
                continue
            fh, inode = opened
            line = fh.readline()
            if line:
                yield line.rstrip("\n")
                continue
            if _replaced(path, inode, fh.tell()):
                fh.close()
                opened = _open(path)
                continue
            time.sleep(poll_s)
    finally:
        if opened is not None:
            opened[0].close()
