"""Access to the operator page's buttons: which Host a request may name, and who an approval is recorded as.

Pure: the request's Host header, the identities on offer and the configured extra host names in,
a decision out (the page reads headers, query parameters and the secret; command_auth checks the
token). A page reached under any other name than a loopback one is refused (DNS rebinding); the
buttons need the token; the approver is the signed-in user (Streamlit OIDC) or the OS user running
the dashboard, never text typed into the page.
"""
from __future__ import annotations

LOOPBACK = ("localhost", "127.0.0.1", "::1")
HOSTS_ENV = "PAYOPS_DASHBOARD_HOSTS"     # comma-separated extra host names, for a deliberate remote set-up


def host_name(host: str) -> str:
    """'[::1]:8501' -> '::1', 'LocalHost:8501' -> 'localhost', '127.0.0.1' -> '127.0.0.1'. Anything after the name
    but a port ('[::1].evil', '127.0.0.1:80@evil', 'localhost:8501/x') leaves the header whole, so it matches no name."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        rest = h[end + 1:] if end > 0 else None
        return h[1:end] if rest is not None and (rest == "" or (rest[:1] == ":" and rest[1:].isdigit())) else h
    if h.count(":") == 1:
        name, port = h.split(":")
        return name if port.isdigit() or port == "" else h
    return h


def extra_hosts(setting: str | None) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (setting or "").split(",") if h.strip())


def host_allowed(host: str | None, extra: tuple[str, ...] = ()) -> bool:
    """True for a loopback name with any port (or a configured extra name); no header at all means no browser
    (AppTest, a bare script run): allowed, since DNS rebinding needs a browser, and browsers always send Host."""
    if host is None:
        return True
    return host_name(host) in LOOPBACK + extra


def approver(user: dict | None, os_user: str) -> tuple[str | None, str]:
    """(who approvals are recorded as, or None while a configured OIDC login is missing; how they were identified)."""
    user = user or {}
    if "is_logged_in" not in user:                        # OIDC not configured: the person at this machine
        return os_user, "the OS user running the dashboard"
    if user.get("is_logged_in") and isinstance(user.get("email"), str) and user["email"].strip():
        return user["email"].strip(), "signed in"
    return None, "not signed in"
