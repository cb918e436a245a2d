"""Errors that carry where the problem is, so that the CLI can say it to the user."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One located problem in a user's file: a schedule, a return or a rule pack."""

    message: str
    file: str | None = None
    line: int | None = None
    row: int | None = None
    column: str | None = None
    measure: str | None = None
    severity: Severity = "error"

    def location(self) -> str:
        parts: list[str] = []
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            parts.append(where)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column!r}")
        if self.measure:
            parts.append(f"measure {self.measure}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.severity}: {self.message}"


class ComplianceError(Exception):
    """A user's mistake: bad input, unknown contract, a period that makes no sense.

    It carries every problem found, so that the user can fix them all in one go.
    """

    exit_code = 1

    def __init__(self, problems: str | Problem | Iterable[Problem]) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its problems (a check's helper process sends errors back so).
        return type(self), (self.problems,)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class ScheduleError(ComplianceError):
    """A contract schedule that cannot be accepted."""


class ReturnError(ComplianceError):
    """A provider return that cannot be accepted; it is rejected whole."""


class StoreError(ComplianceError):
    """The store cannot do what was asked: unknown contract, nothing to check, bad URL."""
