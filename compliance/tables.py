"""Tables for people, drawn as rich draws its tables, at the speed a national list needs.

rich lays a table out cell by cell through its general renderables: about a millisecond a
row. A national check's scorecards (40,000 measures) or escalation list (85,000 records) then
took over a minute to show. These tables are drawn in the same layout (the same heavy-headed
box, column widths shared out as rich shares them, text wrapped at spaces and long words
folded, styles as ANSI codes where the console shows colour) with plain string work, and
written to the console's file as one text.

Only the part of ``rich.table.Table`` the commands use is here: a title and a caption (each
justified), a bold header, columns justified left or right, cells of text or of
``rich.text.Text`` with one style.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len as _cell_len
from rich.cells import get_character_cell_size

__all__ = ["Table"]

# rich's box.HEAVY_HEAD, by row of the box: top, header, header's foot, body, bottom. Each
# is (left, line, between columns, right).
_TOP = ("┏", "━", "┳", "┓")
_HEAD = ("┃", " ", "┃", "┃")
_HEAD_FOOT = ("┡", "━", "╇", "┩")
_BODY = ("│", " ", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")
_PADDING = 1  # a space each side of every cell

_WORDS = re.compile(r"\s*\S+\s*")


# Control characters (but the line break) are left out of what is drawn, as rich leaves out
# the bell, backspace, vertical tab, form feed and carriage return: a provider's text must
# not move the cursor or colour the terminal. Tabs are expanded to spaces, as rich does.
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)])


def _clean(text: str) -> str:
    if text.isprintable():
        return text
    text = text.translate(_CONTROLS)
    return text.expandtabs(8) if "\t" in text else text


def cell_len(text: str) -> int:
    """The cells a text takes on a terminal (rich's count; one a character in ASCII)."""
    return len(text) if text.isascii() else _cell_len(text)


@dataclass
class _Column:
    header: str
    justify: str = "left"


@dataclass
class Table:
    """A table: ``add_column`` then ``add_row``, then ``write(console)``."""

    title: str | None = None
    title_justify: str = "center"
    header_style: str | None = None
    caption: str | None = None
    caption_justify: str = "center"
    columns: list[_Column] = field(default_factory=list)
    rows: list[list[tuple[str, Any]]] = field(default_factory=list)

    def add_column(self, header: str, *, justify: str = "left", overflow: str = "fold"
                   ) -> None:
        """A column; long words in it are always folded (rich's ``overflow="fold"``)."""
        if overflow != "fold":
            raise ValueError(f"only folded columns are drawn here, not {overflow!r}")
        self.columns.append(_Column(_clean(header), justify))

    def add_row(self, *cells: Any) -> None:
        """A row's cells: texts, or ``rich.text.Text`` with one style for the whole text."""
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells in a table of "
                             f"{len(self.columns)} columns")
        self.rows.append([_cell(c) for c in cells])

    def write(self, console: Any) -> None:
        """The table on the console (its width, and its colours if it shows them)."""
        from rich.console import COLOR_SYSTEMS

        system = console.color_system
        colours = None if system is None or console.no_color else COLOR_SYSTEMS[system]
        console.file.write("".join(line + "\n" for line in self.lines(console.width, colours)))
        console.file.flush()

    def lines(self, width: int, colours: Any = None) -> Iterator[str]:
        """The table's lines, at most ``width`` wide where its cells allow (``colours``: the
        console's colour system, None for plain text)."""
        styled = _Styler(colours)
        widths = self._widths(width)
        inner = sum(widths) + 2 * _PADDING * len(widths) + len(widths) + 1
        if self.title:
            for line in _wrapped(_clean(self.title), inner):
                yield styled(_justify(line, inner, self.title_justify), "italic")
        yield _rule(_TOP, widths)
        yield from self._row([(c.header, self.header_style) for c in self.columns], widths,
                             _HEAD, styled)
        yield _rule(_HEAD_FOOT, widths)
        for row in self.rows:
            yield from self._row(row, widths, _BODY, styled)
        yield _rule(_BOTTOM, widths)
        if self.caption:
            for line in _wrapped(_clean(self.caption), inner):
                yield styled(_justify(line, inner, self.caption_justify), "dim italic")

    def _widths(self, width: int) -> list[int]:
        """Each column's width inside its padding: as wide as its widest line, the widest
        narrowed in turn while the table is wider than ``width`` (as rich narrows them)."""
        padding = 2 * _PADDING
        widths = [cell_len(c.header) + padding for c in self.columns]
        for row in self.rows:
            for j, (text, _) in enumerate(row):
                longest = (cell_len(text) if "\n" not in text
                           else max(cell_len(line) for line in text.split("\n")))
                if longest + padding > widths[j]:
                    widths[j] = longest + padding
        room = max(width - len(widths) - 1, 0)
        widths = _collapsed(widths, room)
        if sum(widths) > room:
            widths = _ratio_reduce(sum(widths) - room, [1] * len(widths), widths, widths)
        return [max(w - padding, 1) for w in widths]

    def _row(self, row: Sequence[tuple[str, Any]], widths: Sequence[int],
             box: tuple[str, str, str, str], styled: _Styler) -> Iterator[str]:
        cells = [_wrapped(text, w) for (text, _), w in zip(row, widths, strict=True)]
        height = max((len(c) for c in cells), default=1)
        pad = " " * _PADDING
        left, _, between, right = box
        for k in range(height):
            parts = []
            for (_, style), lines, w, column in zip(row, cells, widths, self.columns,
                                                    strict=True):
                text = lines[k] if k < len(lines) else ""
                parts.append(pad + styled(_justify(text, w, column.justify), style) + pad)
            yield left + between.join(parts) + right


def _cell(value: Any) -> tuple[str, Any]:
    """A cell's text and style (None: none)."""
    if isinstance(value, str):
        return _clean(value), None
    plain = getattr(value, "plain", None)
    if plain is not None:  # rich.text.Text, one style for all of it
        style = value.style
        return _clean(plain), (str(style) or None)
    return _clean(str(value)), None


def _rule(box: tuple[str, str, str, str], widths: Iterable[int]) -> str:
    left, line, between, right = box
    return left + between.join(line * (w + 2 * _PADDING) for w in widths) + right


def _justify(text: str, width: int, how: str) -> str:
    room = width - cell_len(text)
    if room <= 0:
        return text
    if how == "right":
        return " " * room + text
    if how == "center":
        return " " * (room // 2) + text + " " * (room - room // 2)
    return text + " " * room


def _wrapped(text: str, width: int) -> list[str]:
    """The text's lines at most ``width`` cells wide: broken at spaces where it can be,
    a word longer than the width folded (as rich's ``divide_line`` breaks them)."""
    out: list[str] = []
    for line in text.split("\n"):
        if cell_len(line) <= width:
            out.append(line)
            continue
        current = ""
        for word in _WORDS.findall(line):
            length = cell_len(word.rstrip())
            if length <= width - cell_len(current):
                current += word
                continue
            if current:
                out.append(current.rstrip())
            if length > width:
                *whole, current = _folded(word, width)
                out.extend(whole)
            else:
                current = word
        out.append(current.rstrip())
    return out


def _folded(word: str, width: int) -> list[str]:
    """A word cut into pieces at most ``width`` cells wide."""
    width = max(width, 1)
    if word.isascii():
        return [word[i:i + width] for i in range(0, len(word), width)] or [""]
    pieces, piece, used = [], "", 0
    for char in word:
        size = get_character_cell_size(char)
        if piece and used + size > width:
            pieces.append(piece)
            piece, used = "", 0
        piece += char
        used += size
    pieces.append(piece)
    return pieces


def _collapsed(widths: list[int], room: int) -> list[int]:
    """Widths narrowed to fit ``room``: the widest column down towards the next widest, and
    again, as rich's ``Table._collapse_widths`` does."""
    total = sum(widths)
    excess = total - room
    while total and excess > 0:
        widest = max(widths)
        second = max((w for w in widths if w != widest), default=0)
        difference = widest - second
        ratios = [1 if w == widest else 0 for w in widths]
        if not difference:
            break
        widths = _ratio_reduce(excess, ratios, [min(excess, difference)] * len(widths), widths)
        total = sum(widths)
        excess = total - room
    return widths


def _ratio_reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]
                  ) -> list[int]:
    """``values`` less ``total`` shared out by ``ratios``, none by more than its maximum
    (rich's ``_ratio.ratio_reduce``)."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums, strict=True)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return values[:]
    remaining = total
    result = []
    for ratio, maximum, value in zip(ratios, maximums, values, strict=True):
        if ratio and total_ratio > 0:
            share = min(maximum, round(ratio * remaining / total_ratio))
            result.append(value - share)
            remaining -= share
            total_ratio -= ratio
        else:
            result.append(value)
    return result


class _Styler:
    """Text in a style as the console shows it: ANSI codes, or the text alone."""

    def __init__(self, colours: Any) -> None:
        self.colours = colours
        self.codes: dict[str, tuple[str, str]] = {}

    def __call__(self, text: str, style: Any) -> str:
        if self.colours is None or not style or not text.strip():
            return text
        key = str(style)
        codes = self.codes.get(key)
        if codes is None:
            from rich.style import Style

            marked = Style.parse(key).render("\0", color_system=self.colours)
            before, _, after = marked.partition("\0")
            codes = self.codes[key] = (before, after)
        return codes[0] + text + codes[1]
