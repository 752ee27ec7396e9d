"""Every example in the gateway's docstrings runs (those needing a live gateway are marked SKIP)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gateway

MODULES = sorted(m.name for m in pkgutil.walk_packages(gateway.__path__, "gateway.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    failures, _ = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert failures == 0
