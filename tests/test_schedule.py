"""Schedule parsing and validation: every problem located by file, line and measure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from compliance.errors import ScheduleError
from compliance.schedule import load_schedule, validate_schedule
from tests.conftest import CONTRACTS, DATA, Result

AS_PRINTED = DATA / "sunderland-tfc-as-printed.yaml"

MINIMAL = """\
contract:
  id: test-contract
  title: Test
  commissioner: A Council
  provider: A Provider
  forums: [Group, Board, Panel, Committee]
measures:
  - id: KPI1
    kind: kpi
    title: A percentage
    unit: percent
    polarity: higher_is_better
    target: 90
    tolerance: [85, 89.9]
"""


def write(tmp_path: Path, text: str, name: str = "schedule.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str, after: str | None = None) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


@pytest.mark.parametrize("path", sorted(CONTRACTS.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_contracts_validate_cleanly(path: Path) -> None:
    schedule, problems = validate_schedule(path)
    assert schedule is not None
    assert problems == []


@pytest.mark.parametrize("path", sorted(CONTRACTS.glob("*.yaml")), ids=lambda p: p.name)
def test_a_clean_schedule_is_read_once_and_as_the_located_read_reads_it(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compliance import schedule as module

    located = module._validate(str(path), *_read_yaml(path))  # noqa: SLF001

    def refuse(*_args: object) -> None:
        raise AssertionError("a clean schedule is read with the safe loader alone")

    monkeypatch.setattr(module, "read_yaml", refuse)
    quick, problems = validate_schedule(path)
    assert problems == [] and located[1] == []
    assert quick == located[0]


def _read_yaml(path: Path) -> tuple[object, object, list[object], bytes]:
    from compliance.yamldoc import read_yaml

    loaded = read_yaml(path, "schedule")
    assert not isinstance(loaded, list)
    return loaded


def test_sunderland_has_twenty_measures() -> None:
    schedule = load_schedule(CONTRACTS / "sunderland-tfc.yaml")
    assert len(schedule.measures) == 20
    assert [m.id for m in schedule.measures if m.kind == "kpi"] == [
        f"KPI{i}" for i in range(1, 10)]
    assert schedule.measure("SM9.1").monitor_only
    assert schedule.measure("KPI7").lag_months == 1
    assert schedule.measure("SM5.2").judged == "year_end"


def test_as_printed_schedule_is_refused_with_located_errors() -> None:
    schedule, problems = validate_schedule(AS_PRINTED)
    assert schedule is None
    errors = {p.measure: p for p in problems if p.severity == "error"}
    warnings = {p.measure: p for p in problems if p.severity == "warning"}
    assert set(errors) == {"KPI1", "KPI2", "KPI3", "SM3.2"}
    assert set(warnings) == {"KPI6", "SM2.1"}
    for problem in problems:
        assert problem.file == str(AS_PRINTED)
    assert errors["KPI2"].line == line_of(AS_PRINTED, "tolerance: [85, 100]")
    assert "lies wholly above the target 70" in errors["KPI2"].message
    assert errors["KPI3"].line == line_of(AS_PRINTED, "tolerance: [80, 84.9]")
    assert "lies wholly above the target 80" in errors["KPI3"].message
    assert "without a target" in errors["KPI1"].message
    assert errors["SM3.2"].line == line_of(AS_PRINTED, "target: 330")
    assert "'target' is given twice" in errors["SM3.2"].message
    assert "overlaps the target 82" in warnings["KPI6"].message
    assert warnings["SM2.1"].line == line_of(AS_PRINTED, "tolerance: [86, 95]")
    assert "does not start next to the target 85" in warnings["SM2.1"].message


def test_as_printed_problem_text_names_file_line_and_measure() -> None:
    _, problems = validate_schedule(AS_PRINTED)
    kpi2 = next(p for p in problems if p.measure == "KPI2")
    text = str(kpi2)
    assert text.startswith(f"{AS_PRINTED}:{kpi2.line}, measure KPI2: error: ")


def test_cli_validate_refuses_as_printed(cli: Callable[..., Result]) -> None:
    result = cli("contract", "validate", AS_PRINTED)
    assert result.exit_code == 1
    assert "measure KPI2: error" in result.stderr
    assert "measure KPI3: error" in result.stderr
    assert "measure KPI6: warning" in result.stderr
    assert "measure SM2.1: warning" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_validate_accepts_contracts(cli: Callable[..., Result]) -> None:
    result = cli("contract", "validate", *sorted(CONTRACTS.glob("*.yaml")))
    assert result.exit_code == 0, result.stderr
    assert "sunderland-tfc, 20 measures" in result.stderr


def test_typo_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("    tolerance:", "    tolerence:"))
    _, problems = validate_schedule(path)
    assert len(problems) == 1
    assert problems[0].message == "unknown key 'tolerence' (did you mean 'tolerance'?)"
    assert problems[0].line == 14 and problems[0].measure == "KPI1"


def test_typo_in_contract_block(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("  provider:", "  provder:"))
    _, problems = validate_schedule(path)
    messages = [p.message for p in problems]
    assert "unknown key 'provder' (did you mean 'provider'?)" in messages
    assert "missing required key 'provider'" in messages


def test_every_problem_is_collected(tmp_path: Path) -> None:
    text = MINIMAL + """\
  - id: KPI1
    kind: kpi
    title: Duplicate
    unit: percent
    polarity: lower_is_better
    target: 120
  - id: SM1
    kind: supporting
    parent: KPI9
    title: Orphan
    unit: count
    polarity: sideways
  - id: R1
    kind: kpi
    title: Range
    unit: days
    polarity: within_range
    target: 5
"""
    _, problems = validate_schedule(write(tmp_path, text))
    messages = [(p.measure, p.message) for p in problems]
    assert ("KPI1", "duplicate measure id 'KPI1' (first at line 8)") in messages
    assert ("KPI1", "target 120.0 is not a percentage (0-100)") in messages
    assert any(m == "SM1" and "polarity" in msg for m, msg in messages)
    assert ("R1", "a within_range target must be [low, high]") in messages


def test_parent_must_be_a_kpi(tmp_path: Path) -> None:
    text = MINIMAL + """\
  - id: SM1.1
    kind: supporting
    parent: KPl1
    title: Orphan
    unit: count
    polarity: higher_is_better
"""
    _, problems = validate_schedule(write(tmp_path, text))
    assert [p.message for p in problems] == [
        "parent 'KPl1' is not a KPI of this schedule (did you mean 'KPI1'?)"]


@pytest.mark.parametrize(("polarity", "target", "tolerance", "severity", "words"), [
    ("higher_is_better", 70, "[85, 100]", "error", "wholly above"),
    ("lower_is_better", 22, "[10, 21.9]", "error", "wholly below"),
    ("higher_is_better", 82, "[78, 82.9]", "warning", "overlaps"),
    ("lower_is_better", 85, "[86, 95]", "warning", "does not start next to"),
    ("higher_is_better", 90, "95", "error", "is not below the target"),
    ("higher_is_better", 95, "[90, 94.9]", None, ""),
    ("lower_is_better", 3.5, "[3.51, 4.4]", None, ""),
    ("lower_is_better", 37.5, "40.29", None, ""),
])
def test_tolerance_band_checks(tmp_path: Path, polarity: str, target: float, tolerance: str,
                               severity: str | None, words: str) -> None:
    text = MINIMAL.replace("polarity: higher_is_better", f"polarity: {polarity}").replace(
        "target: 90", f"target: {target}").replace("tolerance: [85, 89.9]",
                                                   f"tolerance: {tolerance}")
    _, problems = validate_schedule(write(tmp_path, text))
    if severity is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problems[0].severity == severity
        assert words in problems[0].message
        assert problems[0].line == 14


def test_within_range_band_must_contain_range(tmp_path: Path) -> None:
    text = MINIMAL.replace("polarity: higher_is_better", "polarity: within_range").replace(
        "target: 90", "target: [20, 30]").replace("tolerance: [85, 89.9]",
                                                  "tolerance: [25, 35]")
    _, problems = validate_schedule(write(tmp_path, text))
    assert [p.message for p in problems] == [
        "the tolerance band [25.0, 35.0] must contain the target range [20.0, 30.0]"]


@pytest.mark.parametrize(("text", "words"), [
    ("", "the schedule is empty"),
    ("contract: [\n", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("contract: !!python/object:os.system {}\nmeasures: []\n", "YAML tag"),
])
def test_unreadable_schedules(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ScheduleError) as info:
        load_schedule(write(tmp_path, text))
    assert words in str(info.value)


def test_yaml_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(ScheduleError) as info:
        load_schedule(write(tmp_path, "\n".join(lines) + "\n"))
    assert "expands to more than" in str(info.value)


def test_non_utf8_schedule(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(MINIMAL.replace("A Council", "Caf\xe9 Council").encode("latin-1"))
    with pytest.raises(ScheduleError) as info:
        load_schedule(path)
    assert "not UTF-8" in str(info.value)


def test_utf8_bom_and_unicode_path(tmp_path: Path) -> None:
    path = tmp_path / "contrat ünïcode.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_schedule(path).id == "test-contract"
