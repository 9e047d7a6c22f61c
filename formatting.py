"""Format: numbers and tables as text, the same way in the terminal, the state files and the benchmark's report.

    pct(0.8123) -> "81.2%";  text_table([{"phase": "calm", "payments": 1200}],
    [("phase", "phase", "s"), ("payments", "payments", "n")]) -> a header, a rule and one aligned row.

Pure string building; no I/O.
"""
from __future__ import annotations


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def target_text(t: dict | None) -> str:
    """{"issuer": "chase", "processor": "atlas"} -> "issuer chase, processor atlas"; {} -> "everything"."""
    return ", ".join(f"{k} {v}" for k, v in sorted((t or {}).items())) or "everything"


def cell(v, kind: str) -> str:
    """One value as text: pct, x (ratio), ms, $ (three decimals), n (thousands), s (as is); None is '-'."""
    if kind == "s":
        return str(v)
    if v is None:
        return "-"
    return {"pct": f"{100 * v:.1f}%", "x": f"{v:.2f}", "ms": f"{v:,.0f}", "$": f"${v:.3f}", "n": f"{v:,}"}[kind]


def text_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """A plain-text table: cols are (key, heading, kind); the first column is left-aligned, the rest right."""
    head = [c[1] for c in cols]
    body = [[cell(r.get(key), kind) for key, _, kind in cols] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def md_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, the first column left-aligned and the rest right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
