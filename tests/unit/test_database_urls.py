"""ORCH_DATABASE_URL must name one of the two MySQL drivers; the error says which ones, and where."""

from __future__ import annotations

import pytest

from orchestrator.connectivity import Unreachable, check_database
from orchestrator.database_urls import check_url, mysql_driver, url_problem, with_driver
from orchestrator.settings import Settings, SettingsError


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://orch:pw@db:3306/orchestrator",
        "mysql+mysqldb://orch:pw@db:3306/orchestrator?charset=utf8mb4",
        "mariadb+mysqldb://orch@db/orchestrator",
        "sqlite:///var/orchestrator.sqlite3",
        "sqlite://",
    ],
)
def test_supported_urls_pass(url: str) -> None:
    assert url_problem(url) is None
    assert check_url(url) == url
    assert Settings.from_env({"ORCH_DATABASE_URL": url}).database_url == url


def test_a_bare_mysql_url_names_the_setting_and_both_drivers() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ORCH_DATABASE_URL": "mysql://orch:s3cret@db/orchestrator"})
    message = str(caught.value)
    assert "ORCH_DATABASE_URL" in message
    assert "mysql+pymysql://" in message and "mysql+mysqldb://" in message
    assert "bare mysql://" in message
    assert "s3cret" not in message


def test_an_unknown_driver_is_refused_by_name() -> None:
    problem = url_problem("mysql+mysqlconnector://orch@db/orchestrator", "BENCH_MYSQL_URL")
    assert problem is not None
    assert problem.startswith("BENCH_MYSQL_URL must name its MySQL driver")
    assert "'mysqlconnector' is not one of them" in problem
    assert "mysql+mysqldb://" in problem


def test_the_connection_check_refuses_before_connecting() -> None:
    with pytest.raises(Unreachable) as caught:
        check_database("mysql://orch:s3cret@db.invalid/orchestrator")
    message = str(caught.value)
    assert "ORCH_DATABASE_URL" in message and "mysql+pymysql://" in message
    assert "s3cret" not in message and "***" in message


def test_driver_of_a_url_and_swapping_it() -> None:
    url = "mysql+pymysql://orch:p%40ss@db:3306/orchestrator?charset=utf8mb4"
    assert mysql_driver(url) == "pymysql"
    swapped = with_driver(url, "mysqldb")
    assert swapped == "mysql+mysqldb://orch:p%40ss@db:3306/orchestrator?charset=utf8mb4"
    assert mysql_driver(swapped) == "mysqldb"
    assert mysql_driver("sqlite://") is None
