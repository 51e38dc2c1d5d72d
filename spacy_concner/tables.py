"""Markdown tables, as the evaluation results, model cards and benchmarks write them."""
from typing import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], align: str = "") -> str:
    """A GitHub Markdown table, each line ending in a newline; `align` has one letter
    per column: "l" (the default for columns it leaves out) or "r" (numbers)."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = [list(header), rule, *([str(cell) for cell in row] for row in rows)]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)
