"""The commands' tables: drawn as rich draws them, in a fraction of its time."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from compliance.tables import Table

_AS_WRITTEN = {"markup": False, "emoji": False, "highlight": False}

# Cells such as the commands show: long texts that wrap, symbols, figures to the right, a
# word too long for any column, more than one line in a cell.
ROWS = [
    ("Chief Executive's Performance Clinic", "3", "KPI10 % of plans completed within "
     "timescale", "January 2023", "resolved June 2023", "66%", "68%",
     "A KPI in breach for 3 due periods in a row goes to the third forum."),
    ("Operational Commissioning Group", "1", "SM2.3 Rate per 10k", "December 2024", "open",
     "£12,000", "—", "supporting-breach: A supporting measure in breach makes a minor breach "
     "record;\nAcknowledged by jo 2024-12-03"),
    ("Scrutiny Committee", "4", "KPI1 ✓ ~ ✗ ? · ○", "March 2024", "silenced until May 2024",
     "1,234.5", "1000", "averyveryveryverylongwordwithoutanyspaceinitatalltofoldoverlines"),
]
HEADERS = [("Forum", "left"), ("Lvl", "left"), ("Measure", "left"), ("Since", "left"),
           ("Status", "left"), ("Figure", "right"), ("Target", "right"), ("Why", "left")]


def _both(title: str | None, caption: str | None, rows: list[tuple[str, ...]],
          styled: bool = False) -> tuple[RichTable, Table]:
    theirs = RichTable(title=title, title_justify="left", header_style="bold",
                       caption=caption, caption_justify="left")
    ours = Table(title=title, title_justify="left", header_style="bold", caption=caption,
                 caption_justify="left")
    for name, justify in HEADERS:
        theirs.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        ours.add_column(name, justify=justify)
    for row in rows:
        cells: list[str | Text] = list(row)
        if styled:
            cells[4] = Text(row[4], style="bold red")
        theirs.add_row(*cells)
        ours.add_row(*cells)
    return theirs, ours


def _rich_lines(table: RichTable, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, no_color=True, **_AS_WRITTEN).print(table)
    return [line.rstrip() for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("width", [160, 120, 100, 80])
@pytest.mark.parametrize(("title", "caption", "count"), [
    ("Escalations: hub-0001", None, 3),
    ("A contract\nIts provider — December 2024", "Met: 3  Breach: 2", 3),
    ("Escalations", "No escalations.", 0)])
def test_a_table_is_drawn_as_rich_draws_it(width: int, title: str, caption: str | None,
                                           count: int) -> None:
    theirs, ours = _both(title, caption, ROWS[:count], styled=True)
    drawn = [line.rstrip() for line in ours.lines(width)]
    assert drawn == _rich_lines(theirs, width)
    body = [line for line in drawn if line[:1] in "┏┃┡│└"]
    assert body and all(len(line) <= width for line in body)


def test_written_to_a_console_plain_or_in_colour() -> None:
    _, ours = _both("Escalations", None, ROWS, styled=True)
    plain = io.StringIO()
    ours.write(Console(file=plain, width=160, no_color=True, **_AS_WRITTEN))
    assert "\x1b[" not in plain.getvalue()
    assert plain.getvalue().splitlines() == list(ours.lines(160))

    coloured = io.StringIO()
    ours.write(Console(file=coloured, width=160, force_terminal=True,
                       color_system="standard", **_AS_WRITTEN))
    text = coloured.getvalue()
    assert "\x1b[1mForum" in text  # the header in bold
    assert "\x1b[1;31mresolved June 2023" in text  # the styled cell in its colours
    assert "\x1b[3mEscalations" in text  # the title in italics
    bare = text.replace("\x1b[1;31m", "").replace("\x1b[1m", "").replace("\x1b[3m", "")
    assert bare.replace("\x1b[0m", "").splitlines() == list(ours.lines(160))


def test_a_word_longer_than_its_column_is_folded_and_nothing_is_lost() -> None:
    table = Table()
    table.add_column("Why")
    word = "x" * 50 + "y" * 7
    table.add_row(f"short {word} end")
    lines = list(table.lines(24))
    cells = [line.strip("│ ") for line in lines if line.startswith("│")]
    assert all(len(line) <= 24 for line in lines)
    assert "".join(c.replace(" ", "") for c in cells) == f"short{word}end"


def test_a_row_of_the_wrong_width_is_refused() -> None:
    table = Table()
    table.add_column("A")
    with pytest.raises(ValueError, match="a row of 2 cells in a table of 1 columns"):
        table.add_row("a", "b")
    with pytest.raises(ValueError, match="only folded"):
        table.add_column("B", overflow="ellipsis")


def test_control_characters_in_a_providers_text_are_not_drawn() -> None:
    """A provider's text cannot move the cursor or colour the terminal: control characters
    are left out (rich leaves out some of them; escape too here), tabs become spaces."""
    table = Table(title="Returns\x07 overdue", title_justify="left")
    table.add_column("Provider\x1b[2J")
    table.add_row("Acme\x1b[31m Care\x08\r\x0b\x0c\x7f\u009b")
    table.add_row("tab\there\nnext line")
    drawn = "\n".join(table.lines(80))
    assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in drawn)
    assert "Acme[31m Care" in drawn and "Provider[2J" in drawn
    assert "Returns overdue" in drawn
    assert "│ tab     here  │" in drawn and "│ next line     │" in drawn
