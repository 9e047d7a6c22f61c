"""The operator page under attack: state values that carry Markdown or HTML, a state file nested 3,000 deep, a
broken audit log, a request under a foreign Host (DNS rebinding), a session without the token, a loosened key.

Rendered through streamlit.testing.v1.AppTest on the demo's real state (as tests/test_dashboard.py does)."""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from streamlit.runtime.context import ContextProxy
from streamlit.testing.v1 import AppTest

import dashboard_access
from command_auth import KEY_FILE, dashboard_token, load_or_create_key
from state_writer import COMMANDS_DIR, StateWriter, read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
LIVE = {"state": "running", "mode": "live", "tick_seconds": 1.0, "paused": False}
MARKDOWN_KINDS = ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title")
RAW = ("](http", "![", "<img", "<script", ":red[", "$x$")     # what would run if Markdown or HTML were read
BUTTONS = re.compile(r"^(approve|reject)-|^pause-switch$")


@pytest.fixture(scope="module")
def world(tmp_path_factory, pending_agent):
    agent = copy.deepcopy(pending_agent[0])
    folder = tmp_path_factory.mktemp("fixture")
    writer = StateWriter(folder, lambda: "2026-01-01T12:00:00Z")
    writer.write_all(agent.state_documents(LIVE))
    writer.write("simulator.json", {"tick": 147, "scenario": "demo", "phase": "storm", "active_fault": None})
    writer.write("commands.json", {"tick": 147, "max_age_seconds": 900, "refusals": {}, "log": [
        {"id": "c1", "file": "c1.json", "command": "approve", "action_id": "A0005", "by": "alice",
         "issued_at": "2026-01-01T12:00:00Z", "processed_at": "2026-01-01T12:00:01Z", "tick": 147,
         "result": "refused", "message": "refused: stale"}]})
    return folder


@pytest.fixture
def state(world, tmp_path, monkeypatch):
    folder = tmp_path / "state"
    shutil.copytree(world, folder, copy_function=shutil.copy)
    monkeypatch.setenv("PAYOPS_STATE_DIR", str(folder))
    return folder


def app(state: Path | None = None, token: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    if token or state is not None:
        at.query_params["token"] = token or dashboard_token(load_or_create_key(state))
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """Every string the page hands to Markdown: bodies, alerts, headings, metric labels and values."""
    out = [str(e.value) for kind in MARKDOWN_KINDS for e in getattr(at, kind)]
    out += [str(m.label) for m in at.metric] + [str(m.value) for m in at.metric]
    return out + [str(e.value) for e in at.sidebar.caption]


def shown_text(at: AppTest) -> str:
    """What a person reads: Markdown with its escapes resolved, plain text, code, JSON and table cells."""
    md = re.sub(r"\\(.)", r"\1", "\n".join(markdown_sources(at)))
    plain = [str(e.value) for kind in ("text", "code", "json") for e in at.get(kind)]
    tables = [e.value.to_csv() for e in at.dataframe]
    return "\n".join([md, *plain, *tables])


def payload(n: int) -> str:
    return f"P{n:04}![x](http://evil.example/{n}.png)<img src=http://evil.example/{n}><script>1</script>:red[r]$x$"


def inject(doc, counter: list[int], fields: set[str], path: str = ""):
    """Every string in doc (and every key of params and target dicts) replaced by a numbered payload."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            key = k
            if path.rsplit(".", 1)[-1] in ("params", "target", "entity"):
                counter[0] += 1
                key = payload(counter[0])
                fields.add(f"{path}.<key>")
            out[key] = inject(v, counter, fields, f"{path}.{k}")
        return out
    if isinstance(doc, list):
        return [inject(v, counter, fields, f"{path}[]") for v in doc]
    if isinstance(doc, str):
        counter[0] += 1
        fields.add(path)
        return payload(counter[0])
    return doc


def test_injected_markdown_in_every_state_field_is_shown_as_text(state, capsys):
    counter, fields = [0], set()
    for f in sorted(state.glob("*.json")):
        doc = read_json(f)
        keep = {k: doc[k] for k in ("schema_version", "generated_at")}
        write_json(f, {**inject({k: v for k, v in doc.items() if k not in keep}, counter, fields, f.stem), **keep},
                   doc["generated_at"])
    status = read_json(state / "status.json")
    write_json(state / "status.json", {**status, "audit": {"ok": False, "message": payload(9999)}}, "x")
    injected = counter[0] + 1
    at = app(state).run()
    assert not at.exception
    sources = markdown_sources(at)
    raw = [s for s in sources for bad in RAW if bad in re.sub(r"\\.", "·", s)]     # outside backslash escapes
    assert raw == [], raw[:3]
    page = shown_text(at)
    visible = {int(m) for m in re.findall(r"P(\d{4})!\[x\]\(http://evil\.example/", page)}
    assert any("Audit log broken" in e.value for e in at.error) and 9999 in visible
    assert len(visible) >= 50
    print(f"{injected} injected strings across {len(fields)} fields: {len(visible)} distinct ones on the page as text, "
          f"0 of {len(sources)} Markdown sources with a live link, image, tag, colour or formula")


def test_a_status_nested_3000_deep_is_a_warning_not_a_recursion_error(state):
    at = app(state).run()
    (state / "status.json").write_text('{"tick": ' + "[" * 3000 + "]" * 3000 + "}")
    assert read_json(state / "status.json") is None
    at.run()
    assert not at.exception
    assert any("status.json" in w.value and "corrupt" in w.value for w in at.warning)
    assert "RecursionError" not in shown_text(at)
    assert [s.value for s in at.subheader][:1] == ["Approval queue"]


def test_a_broken_audit_log_is_a_banner(state):
    broken = {"ok": False, "message": "line 7 (seq 7): content does not match"}
    write_json(state / "status.json", {**read_json(state / "status.json"), "audit": broken}, "x")
    at = app(state).run()
    banner = [e.value for e in at.error if "Audit log broken" in e.value]
    assert len(banner) == 1 and "seq 7" in banner[0] and "paused" in banner[0]
    write_json(state / "status.json", {**read_json(state / "status.json"), "audit": {"ok": True}}, "x")
    assert not any("Audit log broken" in e.value for e in app(state).run().error)


@pytest.mark.parametrize("host, allowed", [
    ("localhost:8501", True), ("127.0.0.1:8501", True), ("[::1]:8501", True), ("LOCALHOST", True), ("127.0.0.1", True),
    ("evil.example:8501", False), ("localhost.evil.example", False), ("127.0.0.1.nip.io:8501", False),
    ("0.0.0.0:8501", False), ("192.168.1.5:8501", False), ("", False), ("[::1", False), ("localhost:8501:1", False),
])
def test_host_names(host, allowed):
    assert dashboard_access.host_allowed(host) is allowed
    assert dashboard_access.host_allowed("ops.internal:8501", dashboard_access.extra_hosts(" ops.internal ,x")) is True


@pytest.mark.parametrize("host, allowed", [("evil.example:8501", False), ("localhost:8501", True),
                                           ("[::1]:8501", True)])
def test_a_foreign_host_gets_only_a_refusal(state, monkeypatch, host, allowed):
    monkeypatch.setattr(ContextProxy, "headers", property(lambda self: {"host": host}))
    at = app(state).run()
    assert not at.exception
    refused = [e.value for e in at.error if e.value.startswith("Refused")]
    assert bool(refused) is not allowed
    assert bool(at.subheader) is allowed and bool(at.metric) is allowed
    if not allowed:
        assert not at.button and host not in refused[0]


def _buttons(at: AppTest) -> list[str]:
    return [b.key for b in at.button if b.key and BUTTONS.search(b.key)]


@pytest.mark.parametrize("token", [None, "wrong", "0" * 48])
def test_without_the_token_the_page_is_read_only(state, token):
    at = (app(token=token) if token else app()).run()
    assert not at.exception
    assert _buttons(at) == []
    assert any("Read-only" in i.value for i in at.info)
    assert [s.value for s in at.subheader][:1] == ["Approval queue"]         # everything else is still shown
    assert not (state / COMMANDS_DIR).exists()


def test_the_token_opens_the_buttons_is_remembered_and_is_never_shown(state, capfd):
    at = app().run()                                   # the first visit makes the key and prints the link
    token = dashboard_token(load_or_create_key(state))
    assert f"?token={token}" in capfd.readouterr().err
    at = app(token=token).run()
    assert sorted(_buttons(at))[:1] and "pause-switch" in _buttons(at)
    assert "token" not in at.query_params              # taken out of the address bar
    at.run()                                           # remembered for the session
    assert "pause-switch" in _buttons(at)
    everything = shown_text(at) + json.dumps([str(e.value) for e in at.sidebar.caption])
    assert token not in everything


def test_a_loosened_key_leaves_the_page_read_only(state):
    token = dashboard_token(load_or_create_key(state))
    (state / KEY_FILE).chmod(0o644)
    at = app(token=token).run()
    assert not at.exception and _buttons(at) == []
    assert any("group or others" in re.sub(r"\\(.)", r"\1", i.value) for i in at.info)


@pytest.mark.parametrize("user, expected", [
    ({}, ("os-user", "the OS user running the dashboard")),                           # OIDC not configured
    ({"email": "test@example.com"}, ("os-user", "the OS user running the dashboard")),
    ({"is_logged_in": True, "email": "ana@example.com"}, ("ana@example.com", "signed in")),
    ({"is_logged_in": False}, (None, "not signed in")),                               # configured, not signed in
    ({"is_logged_in": True, "email": ""}, (None, "not signed in")),
])
def test_the_approver_is_never_typed_in(user, expected):
    assert dashboard_access.approver(user, "os-user") == expected


def test_there_is_no_free_text_name_field(state):
    at = app(state).run()
    assert not at.text_input and not at.sidebar.text_input


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_python_dashboard_py_prints_the_link_at_start_and_serves_loopback_only(tmp_path):
    """The real process: the link with the token is on stderr before any browser connects; the server listens on
    127.0.0.1 only."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = tmp_path / "dashboard.err"
    with open(err, "w") as f:
        proc = subprocess.Popen([sys.executable, "dashboard.py", "--state-dir", str(tmp_path / "state"), "--port",
                                 str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=f)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        token = dashboard_token(load_or_create_key(tmp_path / "state"))
        assert f"http://localhost:{port}/?token={token}" in err.read_text()
        with socket.socket() as s:                        # not on the machine's other addresses
            s.settimeout(1)
            others = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
            assert not others or s.connect_ex((others[0], port)) != 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in err.read_text()
