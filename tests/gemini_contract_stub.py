"""More stand-in Gemini behaviours on 127.0.0.1 (beside gemini_stub.GeminiStub): replies built from the response
schema the request carries, notes, an endpoint that hangs, and one that trickles.

Modes added:
  fill_all   for each heuristic candidate, the schema branch of its cause with every property filled, the
             optional narrowing keys included (their first enum value): what a model may say under the schema
  four_keys  the issue's reply: every target names issuer, processor, merchant and method, whatever the cause
  confirm    confirms the first heuristic candidate (as GeminiStub's good), and writes notes
  hang       confirm, after `slow_s` seconds (30 s by default: longer than any deadline)
  trickle    headers at once, then the body one byte every `trickle_s` seconds (a per-read timeout never fires)
Note requests ("Incident facts.") get a valid note in every answering mode: it names the target and the
agent's own action.
"""
from __future__ import annotations

import json
import re
import time

from gemini_stub import GeminiStub, _first_candidate, _is_summary, _picture


def _items(schema: dict) -> list[dict]:
    items = schema["properties"]["hypotheses"]["items"]
    return items.get("anyOf") or items.get("any_of") or [items]


def _fill(branch: dict, cand: dict) -> dict:
    """Every property of a branch filled: the candidate's values where it has them, else the first enum value."""
    out = {}
    for name, prop in branch["properties"].items():
        if name == "cause":
            out[name] = prop["enum"][0]
        elif name == "target":
            out[name] = {k: cand["target"].get(k, p["enum"][0]) for k, p in prop["properties"].items()}
        elif name == "confidence":
            out[name] = 0.9
        elif name == "evidence":
            out[name] = ["first-attempt rate well under baseline", "peers healthy", "since the last window"]
    return out


SLICE_CAUSE = {"first_attempt_rate": "issuer_degradation", "p95_ms": "latency_spike",
               "attempts_per_payment": "retry_storm"}


def _claims(pic: dict) -> list[dict]:
    """The heuristic candidates, or else the flagged slices read as causes: the stub always names something."""
    if pic.get("heuristic_candidates"):
        return pic["heuristic_candidates"]
    keys = ("issuer", "processor", "merchant")
    return [{"cause": SLICE_CAUSE[s["metric"]], "target": {k: s[k] for k in keys if k in s}} for s in pic.get("slices", [])]


def _note(body: dict) -> str:
    text = body["contents"][0]["parts"][0]["text"]
    facts = json.loads(re.search(r"\{.*\}\s*$", text, re.S).group(0))
    rec = facts.get("recommendation")
    where = ", ".join(f"{k} {v}" for k, v in sorted((facts.get("target") or {}).items()))
    return json.dumps({
        "what": f"{facts['cause'].replace('_', ' ')}.", "where": f"At {where}.", "since": f"Since {facts['start']}.",
        "size": f"{facts.get('affected_first_attempts')} first attempts affected.",
        "recommendation": f"The agent recommends {rec['action']}." if rec else "The agent recommends no action.",
        "why": "The slice fails against its own baseline while its peers are healthy."})


class ContractStub(GeminiStub):
    def __init__(self, mode: str = "fill_all", slow_s: float = 30.0, trickle_s: float = 2.0):
        super().__init__(mode, slow_s=slow_s)
        self.trickle_s = trickle_s

    def answer(self, h, body: dict) -> None:
        if self.mode == "hang":
            time.sleep(self.slow_s)
        if self.mode == "trickle":
            return self._trickle(h)
        if self.mode not in ("fill_all", "four_keys", "hang", "confirm"):
            return super().answer(h, body)
        prompt = body["contents"][0]["parts"][0]["text"]
        if prompt.startswith("Incident facts."):
            text = _note(body)
        elif _is_summary(body):
            text = json.dumps({"helped": ["a reroute helped"], "hurt": [], "watch": []})
        elif self.mode in ("hang", "confirm"):
            text = json.dumps({"hypotheses": _first_candidate(body)})
        else:
            schema = body["generationConfig"]["responseSchema"]
            branches = {b["properties"]["cause"]["enum"][0]: b for b in _items(schema)}
            items = []
            for c in _claims(_picture(body))[:4]:
                if self.mode == "fill_all":
                    items.append(_fill(branches[c["cause"]], c))
                else:
                    t = c["target"]
                    items.append({"cause": c["cause"], "confidence": 0.9, "evidence": ["all four keys"],
                                  "target": {"issuer": t.get("issuer", "chase"), "processor": t.get("processor", "atlas"),
                                             "merchant": t.get("merchant", "globemart"), "method": "card"}})
            text = json.dumps({"hypotheses": items})
        self._send(h, 200, {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                            "finishReason": "STOP"}],
                            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 80}})

    def _trickle(self, h) -> None:
        body = json.dumps({"candidates": [{"content": {"parts": [{"text": '{"hypotheses": []}'}]}}]}).encode() * 50
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for b in body:
                h.wfile.write(bytes([b]))
                h.wfile.flush()
                time.sleep(self.trickle_s)
        except OSError:                 # the client gave up: what the deadline is for
            pass
