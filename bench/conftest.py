"""Benchmarks run as correctness checks in CI (--benchmark-disable)."""

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--huge",
        action="store_true",
        default=False,
        help="also run the 256 GiB cases (about 1 GiB of RAM each)",
    )


@pytest.fixture
def huge(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--huge") or os.environ.get("PAGETAB_HUGE"))
