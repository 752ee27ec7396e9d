"""The live progress display of ``Client.wait``: a bar of finished jobs and a count of
jobs per stage (rich).

>>> stage(JobInfo(1, "0x0", b"", 3, 1, 0, 0, JobStatus.OPEN, 0, 0, 0, 0, 0, "0x0", 3, 1, 0, b"", b""))
'committing'
"""
from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from client.protocol import JobStatus
from client.records import JobInfo

STAGES = ("posted", "claiming", "delivering", "committing", "revealing", "delivered", "challenged",
          "finalized", "unresolved", "cancelled")


def stage(info: JobInfo) -> str:
    """Where a job is in its life, one word (one of ``STAGES``): r >= 2 seats are
    "claiming" until all are taken; an r = 1 job claimed is "delivering"."""
    if info.status != JobStatus.OPEN:
        return info.status.name.lower()
    if info.nclaimed == 0:
        return "posted"
    if info.r == 1:
        return "delivering"
    if info.nclaimed < info.r:
        return "claiming"
    if info.ncommitted < info.r:
        return "committing"
    return "revealing"


class WaitDisplay:
    """Context manager showing progress of a set of jobs; a no-op when disabled.

    >>> with WaitDisplay(2, enabled=False) as display:
    ...     display.update({}, done=0)
    """

    def __init__(self, total: int, *, console: Console | None = None, enabled: bool = True,
                 title: str = "waiting for results"):
        self.enabled = enabled
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[stages]}"), console=console, transient=False,
        )
        self._task = self._progress.add_task(title, total=total, stages="")

    def __enter__(self) -> WaitDisplay:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.stop()

    def update(self, infos: dict[int, JobInfo], *, done: int) -> None:
        if not self.enabled:
            return
        counts = Counter(stage(i) for i in infos.values())
        text = "  ".join(f"{name} {counts[name]}" for name in STAGES if counts[name])
        self._progress.update(self._task, completed=done, stages=text)
