"""The operator page's gate (I/O half of dashboard_access): the shared secret, the session's token, the approver.

Loads (or creates) state/secret.key through command_auth, prints the page's link with its
token on the dashboard process's stderr, checks the token the session presented, and names
the approver from Streamlit's OIDC user or the OS user. Never shows the token or the secret
on the page, never takes an approver's name from the page.
"""
from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import streamlit as st

import command_auth
import dashboard_access


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:                    # no name for this uid (a bare container): the uid still says who
        return f"uid-{os.getuid()}"


def _key_stamp(folder: Path) -> tuple | None:
    try:
        s = os.lstat(folder / command_auth.KEY_FILE)
    except OSError:
        return None
    return s.st_ino, s.st_mtime_ns, s.st_ctime_ns, s.st_mode


@st.cache_resource(show_spinner=False, max_entries=8)
def _secret(folder: str, stamp: tuple | None) -> tuple[bytes | None, str]:
    """The shared secret, loaded once per version of the key file; the URL with the token goes to stderr only."""
    try:
        key = command_auth.load_or_create_key(folder)
    except command_auth.KeyRefused as e:
        print(f"dashboard: {e}; the page stays read-only", file=sys.stderr, flush=True)
        return None, str(e)
    announce(key, st.get_option("server.port"))
    return key, ""


def announce(key: bytes, port) -> None:
    """The page's link with its token, on this process's stderr (the operator's terminal), nowhere else."""
    print(f"dashboard: to approve, reject or pause, open http://localhost:{port}/?token="
          f"{command_auth.dashboard_token(key)}", file=sys.stderr, flush=True)


def take_token() -> None:
    """A ?token= in the address is remembered for the session, then taken out of the address bar."""
    presented = st.query_params.get("token")
    if presented is not None:
        st.session_state["token"] = str(presented)[:256]
        del st.query_params["token"]


def secret(folder: Path) -> tuple[bytes | None, str]:
    """(key, problem): the secret the worker checks commands against, created here when the dashboard starts first."""
    if _key_stamp(folder) is None:
        try:
            command_auth.load_or_create_key(folder)
        except command_auth.KeyRefused:
            pass
    return _secret(str(folder), _key_stamp(folder))


def access(folder: Path) -> tuple[bytes | None, str | None, str]:
    """(key, approver, how or why not): key and approver are set only when this session may press the buttons."""
    key, problem = secret(folder)
    if key is None:
        return None, None, f"the shared secret cannot be used: {problem}"
    if not command_auth.token_matches(key, st.session_state.get("token")):
        return None, None, "open the link with the token the dashboard printed in its terminal"
    try:
        user = st.user.to_dict()
    except Exception:
        user = {}
    by, how = dashboard_access.approver(user, os_user())
    return (key, by, how) if by else (None, None, "sign in first")
