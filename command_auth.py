"""Command authentication: the secret the worker and the dashboard share, and the signature on every command.

state/secret.key holds 32 random bytes, owner-only (0600), created atomically by whichever of
worker.py and the dashboard starts first. The dashboard signs each command with an HMAC-SHA256
over its canonical JSON (field `sig`); commands.py refuses a command whose signature is missing or
wrong. The dashboard's access token is derived from the same secret. A key that is a symlink, not
a regular file, readable by group or others, owned by someone else or not 32 bytes long is never
used: KeyRefused says why in one line.

Never logs, prints or writes the key anywhere but state/secret.key.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from safe_json import open_regular

KEY_FILE = "secret.key"
KEY_BYTES = 32
SIG = "sig"                   # the command field that carries the signature
TOKEN_CHARS = 48              # hex characters of the dashboard token (192 bits)


class KeyRefused(ValueError):
    """The secret could not be created or is not safe to use; str() is the one-line reason."""


def _read_key(path: Path) -> bytes:
    try:
        fd = open_regular(path)
    except OSError as e:                      # ELOOP: a symlink; EINVAL: a FIFO, device or directory
        raise KeyRefused(f"{path}: cannot open ({e.strerror}); it must be a regular file, not a symlink") from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise KeyRefused(f"{path}: readable or writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                             "chmod 600 it or delete it to make a new one")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise KeyRefused(f"{path}: owned by uid {st.st_uid}, not by this user")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise KeyRefused(f"{path}: {len(key)} bytes, not {KEY_BYTES}; delete it to make a new one")
    return key


def load_or_create_key(state_dir: str | Path) -> bytes:
    """The secret in state_dir/secret.key, created (0600, all or nothing) when absent; or KeyRefused."""
    folder = Path(state_dir)
    path = folder / KEY_FILE
    if not os.path.lexists(path):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{KEY_FILE}.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.write(fd, secrets.token_bytes(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)            # never replaces a key another process made first
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as e:
            raise KeyRefused(f"{path}: cannot create ({e.strerror})") from None
    return _read_key(path)


def canonical(command: dict) -> bytes:
    """The bytes that are signed: the command without its signature, keys sorted, no spaces, ASCII."""
    body = {k: v for k, v in command.items() if k != SIG}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sign(key: bytes, command: dict) -> dict:
    """The command with its `sig`: HMAC-SHA256 over canonical(command), hex."""
    return {**command, SIG: hmac.new(key, canonical(command), hashlib.sha256).hexdigest()}


def verify(key: bytes, command: dict) -> str | None:
    """None when the signature is right, else the one-line reason (never raises)."""
    sig = command.get(SIG)
    if not isinstance(sig, str) or not sig:
        return "unsigned (no sig): not issued by this dashboard"
    try:
        want = hmac.new(key, canonical(command), hashlib.sha256).hexdigest()
    except (TypeError, ValueError):
        return "cannot be signed (not plain JSON)"
    if hmac.compare_digest(want.encode(), sig.encode(errors="replace")):
        return None
    return "wrong signature: not issued by this dashboard, or altered"


def dashboard_token(key: bytes) -> str:
    """The dashboard's access token, derived from the secret (so it survives a dashboard restart)."""
    return hmac.new(key, b"dashboard", hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def token_matches(key: bytes, presented) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(dashboard_token(key).encode(),
                                                               presented.strip()[:256].encode(errors="replace"))
