"""CVSS base scores from vectors (v3.0/v3.1 and v2; v4 vectors are kept unscored).

The formulas are FIRST's specifications (CVSS v3.1 section 7.1 with its ``Roundup``; CVSS v2
section 3.2.1). A vector that is not well formed gives None.
"""

from __future__ import annotations

import math

_V3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "PR": {"N": 0.85, "L": 0.62, "H": 0.27},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
#: Privileges Required when the scope changes.
_V3_PR_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}

_V2_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
    "I": {"N": 0.0, "P": 0.275, "C": 0.660},
    "A": {"N": 0.0, "P": 0.275, "C": 0.660},
}


def _metrics(parts: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if not sep or key in out:
            return None
        out[key] = value
    return out


def _roundup(value: float) -> float:
    """CVSS v3.1's Roundup: the smallest number with one decimal >= value (float-error safe)."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss3_score(vector: str) -> float | None:
    """The base score of a ``CVSS:3.0/...`` or ``CVSS:3.1/...`` vector."""
    head, _, rest = vector.strip().partition("/")
    if head not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    m = _metrics(rest.split("/"))
    if m is None or m.get("S") not in ("U", "C"):
        return None
    try:
        w = {k: _V3_WEIGHTS[k][m[k]] for k in _V3_WEIGHTS}
    except KeyError:
        return None
    changed = m["S"] == "C"
    if changed:
        w["PR"] = _V3_PR_CHANGED[m["PR"]]
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    exploitability = 8.22 * w["AV"] * w["AC"] * w["PR"] * w["UI"]
    if impact <= 0:
        return 0.0
    if changed:
        return _roundup(min(1.08 * (impact + exploitability), 10))
    return _roundup(min(impact + exploitability, 10))


def cvss2_score(vector: str) -> float | None:
    """The base score of a CVSS v2 vector (``AV:N/AC:L/Au:N/C:P/I:P/A:P``, optionally in parentheses)."""
    m = _metrics(vector.strip().strip("()").split("/"))
    if m is None:
        return None
    try:
        w = {k: _V2_WEIGHTS[k][m[k]] for k in _V2_WEIGHTS}
    except KeyError:
        return None
    impact = 10.41 * (1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"]))
    exploitability = 20 * w["AV"] * w["AC"] * w["Au"]
    f = 0.0 if impact == 0 else 1.176
    return round(((0.6 * impact) + (0.4 * exploitability) - 1.5) * f + 1e-9, 1)


def score(vector: str) -> float | None:
    """The base score of a v3 or v2 vector; None for v4 (and for anything unparseable)."""
    if vector.startswith("CVSS:3."):
        return cvss3_score(vector)
    if vector.startswith("CVSS:"):
        return None
    return cvss2_score(vector)
