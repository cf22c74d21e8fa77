"""PrettyTable-style tables, as calicoctl 0.x printed them (`+---+` borders, padding 1).

Cells are centred with str.center (what PrettyTable does) unless align="l". A cell may hold
several lines (calicoctl puts one BGP peer per line in `node show`).
"""
from __future__ import annotations

from typing import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "c") -> str:
    cells = [[str(c).split("\n") for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        fit = [(v.ljust(w) if align == "l" else v.center(w)) for v, w in zip(values, widths)]
        return "| " + " | ".join(fit) + " |"

    out = [rule, line(list(headers)), rule]
    for row in cells:
        height = max(len(lines) for lines in row)
        for k in range(height):
            out.append(line([lines[k] if k < len(lines) else "" for lines in row]))
    out.append(rule)
    return "\n".join(out)
