"""The gateway's audit log: every r = 1 answer chosen for re-execution, what the audit
found and how its challenge ended, persisted as JSON lines so that no audit is lost on
a restart (``gateway.audit`` resumes the unfinished ones).

Each change of a record appends its whole new version as one line (flushed and
fsynced: an audit may have sent a challenge, whose bond must not be forgotten); loading
keeps the last line of each job. One file per chain and marketplace, so that a
gateway pointed at another deployment never resumes jobs of this one.

>>> import tempfile, pathlib
>>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl")
>>> log.put(AuditRecord(job_id=256, delivered="0x01", from_block=7))
>>> log.put(log.get(256).model_copy(update={"state": "done", "outcome": "match", "ours": "0x01"}))
>>> AuditLog(log.path).get(256).outcome, AuditLog(log.path).counters()["audited"]
('match', 1)
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

# pending: chosen, not yet re-executed; challenged: a challenge round is being followed
# to settlement; done: nothing left to do (see ``outcome``).
State = Literal["pending", "challenged", "done"]
# match: our bytes equal the delivered ones. mismatch: they differ and no challenge was
# (or could be) sent: ``reason`` says why. won / lost: a challenge round settled against
# the delivery (the provider slashed, the client refunded) / for it. refused: the
# engine refused the input or does not serve the model (no verdict). error: the audit
# failed (``reason``).
Outcome = Literal["match", "mismatch", "won", "lost", "refused", "error"]


class AuditRecord(BaseModel):
    """One audited job. Digests are 0x hex; amounts base units of the payment token
    (``compensation``: of the stake token, the slash share credited to the gateway)."""

    job_id: int
    key: str | None = None  # the API key whose request it answered (None: no keys)
    delivered: str  # the digest the answer carried
    from_block: int  # no later than the job's post: where its events are searched from
    answered_at: float = Field(default_factory=time.time)
    state: State = "pending"
    outcome: Outcome | None = None
    reason: str | None = None
    ours: str | None = None  # the digest of the gateway's own re-execution
    challenger: str | None = None  # who challenged (the gateway's account, or another)
    challenge_tx: str | None = None
    bond: int | None = None
    refund: int | None = None  # client refund at settlement
    bond_returned: int | None = None
    compensation: int | None = None
    updated_at: float = Field(default_factory=time.time)


class AuditLog:
    """The records by job id, loaded from ``path`` and appended to on every change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[int, AuditRecord] = {}
        text = self.path.read_text() if self.path.exists() else ""
        if text and not text.endswith("\n"):  # a write cut short: drop its part line
            text = text[:text.rfind("\n") + 1]
            with open(self.path, "r+b") as f:
                f.truncate(len(text.encode()))
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = AuditRecord.model_validate_json(line)
            except ValueError:
                raise ValueError(f"{self.path}:{number}: not an audit record") from None
            self._records[record.job_id] = record

    def put(self, record: AuditRecord) -> None:
        record = record.model_copy(update={"updated_at": time.time()})
        line = record.model_dump_json() + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._records[record.job_id] = record

    def get(self, job_id: int) -> AuditRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def records(self, *, key: str | None = None, every_key: bool = True) -> list[AuditRecord]:
        """Newest first; only ``key``'s unless ``every_key``."""
        with self._lock:
            found = [r for r in self._records.values() if every_key or r.key == key]
        return sorted(found, key=lambda r: (r.answered_at, r.job_id), reverse=True)

    def unfinished(self) -> list[AuditRecord]:
        with self._lock:
            return [r for r in self._records.values() if r.state != "done"]

    def counters(self, records: list[AuditRecord] | None = None, *, account: str | None = None) -> dict[str, int]:
        """audited (re-executed), mismatched, challenged (by ``account``, the gateway's;
        by anyone if None), won (those challenges settled against the delivery), and
        the skipped ones (mismatches left unchallenged, refusals, errors)."""
        records = self.records() if records is None else records
        ours = [r for r in records if r.challenger is not None
                and (account is None or r.challenger.lower() == account.lower())]
        return {
            "audited": sum(r.ours is not None for r in records),
            "mismatched": sum(r.outcome in ("mismatch", "won", "lost") or r.state == "challenged" for r in records),
            "challenged": len(ours),
            "won": sum(r.outcome == "won" for r in ours),
            "lost": sum(r.outcome == "lost" for r in ours),
            "unchallenged": sum(r.outcome == "mismatch" for r in records),
            "refused": sum(r.outcome == "refused" for r in records),
            "errors": sum(r.outcome == "error" for r in records),
            "pending": sum(r.state != "done" for r in records),
        }


def log_path(data_dir: Path, chain_id: int, marketplace: str) -> Path:
    """The audit log of one deployment under the gateway's data dir."""
    return Path(data_dir) / f"audit-{chain_id}-{marketplace.lower()}.jsonl"


def record_json(record: AuditRecord) -> dict:
    """A record as the API shows it (amounts as strings, as everywhere in the API)."""
    data = record.model_dump()
    for name in ("bond", "refund", "bond_returned", "compensation"):
        if data[name] is not None:
            data[name] = str(data[name])
    return data

