"""Fixtures for the engine tests: one CPU engine per session, the shipped sentence set."""
from pathlib import Path

import pytest

SENTENCES = Path(__file__).resolve().parents[1] / "data" / "sentences.txt"


@pytest.fixture(scope="session")
def engine():
    from provider.engine import Engine

    return Engine.load("cpu")


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return SENTENCES.read_text(encoding="utf-8").splitlines()
