"""Plain-text tables, as ``xpnn info`` and ``xpnn check`` print them."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return ``rows`` under ``header`` in left-aligned columns, with a rule below the header.

    Parameters
    ----------
    header : sequence of str
        The column titles.
    rows : sequence of sequences
        One sequence of cells per row, as many as ``header``; cells are
        printed with ``str``.

    Returns
    -------
    str
        The lines, with no trailing spaces and no final newline.

    Examples
    --------
    >>> print(format_table(["backend", "status"], [["numpy", "ok"], ["torch", "absent"]]))
    backend  status
    -------  ------
    numpy    ok
    torch    absent
    """
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
