"""Bounded reading of JSON that someone else wrote: state files, command files, scenario files.

A file is read only if it is a regular file reached without following a symlink, opened
without blocking (a FIFO never stalls the reader), at most max_bytes long, nested at most
max_depth deep, and strict JSON (NaN and Infinity are refused). Anything else is a
JsonRefused with a one-line reason; load_json never raises anything else.

Never writes; holds no state.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

MAX_DEPTH = 64                  # no state, command or scenario document of ours nests deeper than ~8
MAX_STATE_BYTES = 64 << 20      # a state file; metrics.json of a long run is a few MB


class JsonRefused(ValueError):
    """The file was not read, or not accepted as JSON; str() is the one-line reason."""


def open_regular(path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o644, dir_fd: int | None = None) -> int:
    """A descriptor on a regular file reached without following a symlink, opened without blocking (a FIFO never
    stalls; the descriptor is switched back to blocking); OSError otherwise (ELOOP: a symlink; EINVAL: not a regular
    file). Every file of ours that someone else could replace is opened through here."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str | Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The bytes of a regular file (no symlink, no FIFO, no device), at most max_bytes, or JsonRefused. dir_fd: path
    is a name inside that open directory (so a directory swapped for a link meanwhile is never followed)."""
    try:
        fd = open_regular(path, dir_fd=dir_fd)
    except FileNotFoundError:
        raise JsonRefused(f"{Path(path).name}: missing") from None
    except OSError as e:                      # ELOOP: a symlink; EACCES; EINVAL: a FIFO, device or directory
        reason = "not a regular file" if e.errno == errno.EINVAL else f"cannot open ({e.strerror})"
        raise JsonRefused(f"{Path(path).name}: {reason}") from None
    try:
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise JsonRefused(f"{Path(path).name}: {st.st_size:,} bytes, over the {max_bytes:,}-byte limit")
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise JsonRefused(f"{Path(path).name}: cannot read ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise JsonRefused(f"{Path(path).name}: over the {max_bytes:,}-byte limit")
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def depth(doc, limit: int = MAX_DEPTH) -> int:
    """How deep doc nests (a scalar is 0), counting at most to limit + 1; iterative, so never a RecursionError."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, d)
            if d > limit:
                return d
            stack.extend((v, d + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def loads(text: str | bytes, max_depth: int = MAX_DEPTH):
    """Strict JSON (no NaN or Infinity) nested at most max_depth deep, or JsonRefused."""
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonRefused(f"nested deeper than {max_depth}") from None
    except (ValueError, TypeError) as e:          # UnicodeDecodeError is a ValueError
        raise JsonRefused(f"not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if depth(doc, max_depth) > max_depth:
        raise JsonRefused(f"nested deeper than {max_depth}")
    return doc


def load_json(path: str | Path, max_bytes: int = MAX_STATE_BYTES, max_depth: int = MAX_DEPTH,
              dir_fd: int | None = None):
    """read_bytes then loads: the document, or JsonRefused naming the file and why."""
    data = read_bytes(path, max_bytes, dir_fd)
    try:
        return loads(data, max_depth)
    except JsonRefused as e:
        raise JsonRefused(f"{Path(path).name}: {e}") from None
