"""API keys of the gateway: stored hashed, each with its spending limit and default policy.

The keys file (JSON, written with mode 0600) holds, per key, its public id, a name,
``sha256(secret)``, and what it may spend; never the secret itself, which ``create``
returns once. Secrets carry 256 random bits, so a plain SHA-256 is as good as a slow
password hash here (nothing to brute-force), and a lookup costs one hash.

Spending is counted in payment-token base units: a request reserves the full escrow of
its jobs (r x (reward + fee) each) before anything is posted, and gives it back if the
post fails. Refunds of jobs that end without a result are not credited back (the limit
errs on the side of the key holder's wallet).

>>> import tempfile, pathlib
>>> store = KeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.json")
>>> record, secret = store.create("alice", spend_limit=10**18)
>>> store.authenticate(secret).name, secret in store.path.read_text()
('alice', False)
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

SECRET_PREFIX = "vk-"
FILE_VERSION = 1


class OverLimit(Exception):
    """A reservation that would take a key past its spending limit."""

    def __init__(self, key_id: str, limit: int, spent: int, amount: int):
        super().__init__(f"key {key_id}: spending {amount} more would exceed its limit of {limit} "
                         f"({spent} spent)")
        self.key_id, self.limit, self.spent, self.amount = key_id, limit, spent, amount


class KeyPolicy(BaseModel):
    """Defaults a key's requests get unless they ask otherwise (None: the gateway's)."""

    r: int | None = Field(default=None, ge=1)
    reward: int | None = Field(default=None, ge=1)  # payment-token base units per seat
    until: Literal["result", "settled"] | None = None


class KeyRecord(BaseModel):
    """One API key as stored: never its secret."""

    id: str
    name: str
    sha256: str
    created: int
    spend_limit: int | None = None  # base units; None: unlimited
    spent: int = 0
    revoked: bool = False
    policy: KeyPolicy = KeyPolicy()

    def public(self) -> dict:
        """What may be shown about the key (listing, logs)."""
        return {"id": self.id, "name": self.name, "created": self.created, "spend_limit": self.spend_limit,
                "spent": self.spent, "revoked": self.revoked, "policy": self.policy.model_dump()}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """The keys file, loaded once and rewritten (atomically) on every change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[str, KeyRecord] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"{self.path}: unknown keys file version {data.get('version')!r}")
            self._keys = {k["id"]: KeyRecord(**k) for k in data["keys"]}
        self._by_hash = {k.sha256: k.id for k in self._keys.values()}

    def __len__(self) -> int:
        return sum(not k.revoked for k in self._keys.values())

    def records(self) -> list[KeyRecord]:
        with self._lock:
            return [k.model_copy() for k in self._keys.values()]

    def create(self, name: str, *, spend_limit: int | None = None, policy: KeyPolicy | None = None
               ) -> tuple[KeyRecord, str]:
        """A new key: its record and its secret (shown once, stored only hashed)."""
        if spend_limit is not None and spend_limit < 0:
            raise ValueError("spend limit must be non-negative")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(id="key_" + secrets.token_hex(6), name=name, sha256=hash_secret(secret),
                           created=int(time.time()), spend_limit=spend_limit, policy=policy or KeyPolicy())
        with self._lock:
            self._keys[record.id] = record
            self._by_hash[record.sha256] = record.id
            self._save()
        return record.model_copy(), secret

    def revoke(self, key_id: str) -> None:
        with self._lock:
            self._record(key_id).revoked = True
            self._save()

    def authenticate(self, secret: str | None) -> KeyRecord | None:
        """The (unrevoked) key whose secret this is, or None."""
        if not secret:
            return None
        with self._lock:
            key_id = self._by_hash.get(hash_secret(secret))
            record = self._keys.get(key_id) if key_id else None
            return record.model_copy() if record is not None and not record.revoked else None

    def reserve(self, key_id: str, amount: int) -> None:
        """Count ``amount`` as spent by the key (``OverLimit`` if that passes its limit)."""
        with self._lock:
            record = self._record(key_id)
            if record.spend_limit is not None and record.spent + amount > record.spend_limit:
                raise OverLimit(key_id, record.spend_limit, record.spent, amount)
            record.spent += amount
            self._save()

    def release(self, key_id: str, amount: int) -> None:
        """Give back a reservation whose jobs were never posted."""
        with self._lock:
            record = self._record(key_id)
            record.spent = max(0, record.spent - amount)
            self._save()

    def _record(self, key_id: str) -> KeyRecord:
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyError(f"no key {key_id!r} in {self.path}") from None

    def _save(self) -> None:
        data = {"version": FILE_VERSION, "keys": [k.model_dump() for k in self._keys.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
