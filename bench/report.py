"""Figures, goals and the results files (one JSON + one Markdown table per run in bench/results/)."""

from __future__ import annotations

import dataclasses
import json
import operator
import statistics
from pathlib import Path
from typing import Any

COLUMNS = (("dtr", "dtr"), ("dtr_base", "dtr@base"), ("dtr_auth", "dtr (token auth)"),
           ("dtr_auth_base", "dtr+auth@base"), ("reference", "reference"), ("ceiling", "trivial handler"))
#: (now, baseline, ratio column): dtr as it is over dtr at ``--baseline REV``, measured in the same rounds.
BASELINES = (("dtr", "dtr_base", "dtr/base"), ("dtr_auth", "dtr_auth_base", "dtr+auth/base"))
_OPS = {">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


@dataclasses.dataclass
class Goal:
    """``num`` (/ ``den`` when given) ``op`` ``value``; keys are result columns."""

    num: str
    den: str | None
    op: str
    value: float

    def label(self) -> str:
        short = {"dtr": "dtr", "dtr_auth": "dtr+auth", "dtr_base": "base", "dtr_auth_base": "base",
                 "reference": "ref", "ceiling": "trivial"}
        lhs = short[self.num] + (f"/{short[self.den]}" if self.den else "")
        return f"{lhs} {self.op.replace('>=', '≥').replace('<=', '≤')} {self.value:g}"

    def check(self, m: Metric) -> tuple[float | None, bool | None]:
        a = m.median(self.num)
        if a is None:
            return None, None
        if self.den is not None:
            b = m.median(self.den)
            if not b:
                return None, None
            a = a / b
        return a, bool(_OPS[self.op](a, self.value))


@dataclasses.dataclass
class Metric:
    workload: str
    name: str
    unit: str
    higher_is_better: bool
    goals: list[Goal] = dataclasses.field(default_factory=list)
    values: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, key: str, value: float) -> None:
        self.values.setdefault(key, []).append(value)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def median(self, key: str) -> float | None:
        vals = self.values.get(key)
        return statistics.median(vals) if vals else None

    def ratio(self, num: str = "dtr", den: str = "reference") -> float | None:
        a, b = self.median(num), self.median(den)
        return a / b if a is not None and b else None

    def over_baseline(self) -> dict[str, float]:
        """now/baseline for each of dtr and dtr_auth measured at both revisions."""
        ratios = {now: self.ratio(now, base) for now, base, _ in BASELINES}
        return {k: v for k, v in ratios.items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "name": self.name, "unit": self.unit,
            "higher_is_better": self.higher_is_better, "rounds": self.values,
            "median": {k: self.median(k) for k in self.values}, "dtr_over_reference": self.ratio(),
            "now_over_baseline": self.over_baseline(),
            "goals": [{"goal": g.label(), "value": v, "met": ok} for g in self.goals for v, ok in [g.check(self)]],
            "notes": self.notes,
        }


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3g}"


def _goals(m: Metric) -> str:
    out = []
    for g in m.goals:
        v, ok = g.check(m)
        mark = "n/a" if ok is None else ("✅" if ok else "❌")
        out.append(f"{g.label()}: {_fmt(v)} {mark}")
    return "; ".join(out)


def _x(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "n/a"


def table(metrics: list[Metric], baseline: str = "base") -> str:
    """A Markdown table: medians per server, dtr/reference, now/baseline (when a baseline ran; its columns
    titled ``dtr@{baseline}``), and each goal with its verdict."""
    cols = [(k, t.replace("@base", f"@{baseline}")) for k, t in COLUMNS if any(k in m.values for m in metrics)]
    bases = [(now, base, t) for now, base, t in BASELINES if any(base in m.values for m in metrics)]
    head = ["workload", "figure", "unit", *[t for _, t in cols], "dtr/ref", *[t for _, _, t in bases], "goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        row = [m.workload, m.name, m.unit, *[_fmt(m.median(k)) if k in m.values else "n/a" for k, _ in cols],
               _x(m.ratio()), *[_x(m.ratio(now, base)) for now, base, _ in bases], _goals(m)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write(results_dir: Path, stamp: str, meta: dict[str, Any], metrics: list[Metric], extra_md: str = "") -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    base = results_dir / stamp
    base.with_suffix(".json").write_text(json.dumps(
        {**meta, "metrics": [m.to_json() for m in metrics]}, indent=2, default=str) + "\n")
    mach = meta["machine"]
    v = mach["versions"]
    notes = [f"- **{m.workload} / {m.name}**: " + " ".join(m.notes) for m in metrics if m.notes]
    bl = meta.get("baseline")
    base_md = [f"- baseline: `@{bl['short']}` columns are dtr at {bl['commit']} (`--baseline {bl['rev']}`), "
               "from a `git archive` of it, each with its own fresh database, measured in the same rounds as dtr "
               "(alternating); dtr/base and dtr+auth/base are now over baseline (goal ≥ 0.97 for rates: no slower, "
               "within noise)"] if bl else []
    md = [
        f"# Benchmark run {stamp}",
        "",
        f"- machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory_gb']} GB RAM, kernel {mach['kernel']}, "
        f"{mach['os']}; load average at start {', '.join(f'{x:.2f}' for x in mach['load_avg_at_start'])}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- command: `{meta['command']}`; {meta['rounds']} round(s), servers alternating; "
        f"figures are medians over rounds; MB = 10^6 bytes; wall time {meta['wall_seconds']:.0f} s",
        "- dtr/ref is dtr's figure over the reference's: above 1 is better for rates (MB/s, req/s), worse for "
        "times, latencies and sizes (s, ms, MB). The trivial handler is a no-work aiohttp+uvloop server: the "
        "ceiling for request rates and the client's own limit for blob transfers.",
        f"- dtr auth: {meta['auth']}",
        *base_md,
        "",
        table(metrics, bl["short"] if bl else "base"),
        "",
    ]
    if notes:
        md += ["## Notes", "", *notes, ""]
    if extra_md:
        md += [extra_md, ""]
    base.with_suffix(".md").write_text("\n".join(md))
    return base.with_suffix(".md")
