import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture
def gemini_sandbox(monkeypatch):
    """No connection leaves 127.0.0.1, and no Gemini variable from the developer's shell leaks in."""
    from gemini_stub import forbid_network
    forbid_network(monkeypatch)
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
