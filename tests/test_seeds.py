"""The seed reports' own judgements, reproduced measure by measure (SPEC section 8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import DARLINGTON, DARLINGTON_RETURN, SUNDERLAND, SUNDERLAND_RETURN, Result

# What the Sunderland September 2018 report says of each measure, as a status.
SUNDERLAND_STATUSES = {
    "KPI1": "met",                # "exceeding target"
    "SM1.1": "breach",            # "not meeting target of 22% and is outside of tolerance range"
    "SM1.2": "met",               # "exceeding target"
    "KPI2": "breach",             # "below target and outside of tolerance"
    "SM2.1": "met",               # "achieving target"
    "KPI3": "met",                # "exceeding target"
    "SM3.1": "met",               # "exceeding target"
    "SM3.2": "met",               # "on track to meet target" (against its profile)
    "KPI4": "within_tolerance",   # "below target but within tolerance range"
    "KPI5": "breach",             # "below target and outside of tolerance range"
    "SM5.1": "breach",            # "below target and outside of tolerance range"
    "SM5.2": "not_due",           # cumulative, "final figure will be known in March 2019"
    "KPI6": "met",                # "exceeding target of 82%"
    "SM6.1": "not_reported",      # "unable to report this indicator"
    "KPI7": "breach",             # August figure, "outside of tolerance range"
    "SM7.1": "breach",            # August figure, "outside of tolerance range"
    "KPI8": "breach",             # Liquid Logic figure, "outside of tolerance range"
    "SM8.1": "breach",            # "below target and outside of tolerance"
    "KPI9": "met",                # "now achieving target"
    "SM9.1": "monitor",           # no target
}

# Darlington quarter 2 2017/18: "where are we performing well" / "where do we need to improve".
DARLINGTON_STATUSES = {
    "CS1": "met",           # 98%, "exceeds the target of 95%"
    "CS2": "met",           # 1%, "better than the target of 5%"
    "CS3": "met",           # 94%, "better than the target of 90%"
    "CS4": "monitor",       # 100% of CP reviews, no target given
    "CS5": "met",           # 94%, "better than the target of 90%"
    "CS6": "met",           # 29.2% NEET, "better than the target of 30%"
    "CS7": "breach",        # 23.1%, "higher than the target of 20%"
    "CS8": "monitor",       # 12% with 3+ placement moves, compared with benchmarks only
    "CS9": "not_reported",  # "below target", but no figure is published
    "CS10": "monitor",      # 42% health checks, compared with last year only
    "CS11": "monitor",      # 34% dental checks, compared with last year only
}


@pytest.fixture
def sunderland(cli: Callable[..., Result]) -> dict[str, dict[str, object]]:
    result = cli("check", "--contract", SUNDERLAND, "--returns", SUNDERLAND_RETURN,
                 "--period", "2018-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["contract"] == "sunderland-tfc" and doc["period"] == "2018-09"
    return {a["measure"]: a for a in doc["assessments"]}


def test_sunderland_has_all_twenty_measures(sunderland: dict[str, dict[str, object]]) -> None:
    assert list(sunderland) == list(SUNDERLAND_STATUSES)


@pytest.mark.parametrize(("measure", "status"), SUNDERLAND_STATUSES.items())
def test_sunderland_status_matches_report(sunderland: dict[str, dict[str, object]],
                                          measure: str, status: str) -> None:
    assert sunderland[measure]["status"] == status


def test_sunderland_details_of_the_quirks(sunderland: dict[str, dict[str, object]]) -> None:
    # SM3.2: 297 questionnaires by September against 330 x 6/12 = 165, forecast 594.
    assert sunderland["SM3.2"]["profiled_target"] == pytest.approx(165)
    assert sunderland["SM3.2"]["forecast"] == pytest.approx(594)
    # SM5.2: a year-to-date rate; its forecast is the rate as it stands, short of 13%.
    assert sunderland["SM5.2"]["forecast"] == pytest.approx(10)
    assert sunderland["SM5.2"]["forecast_status"] == "breach"
    # KPI7 and SM7.1 are August figures in the September check.
    assert sunderland["KPI7"]["period"] == "2018-08"
    assert sunderland["SM7.1"]["period"] == "2018-08"
    # KPI8: Liquid Logic is primary; the virtual school's 78% is kept beside it.
    assert sunderland["KPI8"]["value"] == pytest.approx(36.9)
    assert sunderland["KPI8"]["source"] == "case-system"
    assert sunderland["KPI8"]["sources"] == 2
    assert sunderland["KPI8"]["source_spread"] == pytest.approx(41.1)
    # SM6.1 keeps the provider's reason.
    assert "pathway plans" in str(sunderland["SM6.1"]["reason"])
    assert sunderland["SM1.1"]["rag"] == "red" and sunderland["KPI4"]["rag"] == "amber"
    assert sunderland["SM9.1"]["rag"] == "grey" and sunderland["KPI1"]["rag"] == "green"


@pytest.fixture
def darlington(cli: Callable[..., Result]) -> dict[str, dict[str, object]]:
    result = cli("check", "--contract", DARLINGTON, "--returns", DARLINGTON_RETURN,
                 "--period", "2017-09", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return {a["measure"]: a for a in result.json()["assessments"]}


@pytest.mark.parametrize(("measure", "status"), DARLINGTON_STATUSES.items())
def test_darlington_status_matches_report(darlington: dict[str, dict[str, object]],
                                          measure: str, status: str) -> None:
    assert darlington[measure]["status"] == status


def test_darlington_comparators_and_travel(darlington: dict[str, dict[str, object]]) -> None:
    assert darlington["CS3"]["comparators"] == {"statistical_neighbours": 89, "england": 83}
    assert darlington["CS7"]["comparators"] == {"england": 22, "region": 21,
                                                "statistical_neighbours": 20}
    # Placement moves fell from 15.8% in Q1 to 12%: lower is better, so improving.
    assert darlington["CS8"]["previous_value"] == pytest.approx(15.8)
    assert darlington["CS8"]["direction"] == "improving"
    assert darlington["CS5"]["baselines"] == {"2016/17 year end": 87}


def test_darlington_is_quarterly(cli: Callable[..., Result]) -> None:
    result = cli("check", "--contract", DARLINGTON, "--returns", DARLINGTON_RETURN,
                 "--period", "2017-08", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert {a["status"] for a in result.json()["assessments"]} == {"not_due"}
