"""Quiet ape for the scripts that print their own report (demo, gas bench)."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from ape.logging import LogLevel, logger


@contextlib.contextmanager
def quiet_ape() -> Iterator[None]:
    """ape's INFO lines (a "Confirmed ..." per transaction) would bury the report: WARNING
    unless the user asked for another level (-v DEBUG keeps them). ape-vyper's config model
    makes pydantic-settings warn about a forward reference it never resolves, on every
    compile; harmless, and not ours to fix."""
    level = LogLevel.WARNING if logger.level == LogLevel.INFO else logger.level
    with logger.at_level(level), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Field 'import_remapping' has an incomplete definition",
                                module="pydantic_settings")
        yield
