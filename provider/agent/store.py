"""The agent's durable memory: one sqlite file (WAL, fsync on every commit).

It holds the event checkpoint with recent block hashes (for reorg detection), every
job the agent holds, every result with its salt, and every transaction the agent
intends together with each signed broadcast of it. Everything is written *before*
the action that depends on it, so a crash at any point can be reconciled.

Amounts (wei, token units, job ids) are uint256 on-chain, so they are stored as
decimal TEXT and summed in Python: sqlite integers stop at 2**63. A job's row is
written and read through provider/agent/records.py alone.

Over 300 lines on purpose: one connection, one lock and one schema; its sections
(chain binding, checkpoint, jobs, results, transactions) share `atomic` transactions,
so a split would only pass the connection around.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from provider.agent.errors import StoreError
from provider.agent.records import COLUMNS, JobRecord, JobState, Step, job_columns, job_record

SCHEMA_VERSION = 6
IDS_PER_QUERY = 500  # bound on one query's parameters (sqlite caps them)

# Migration i brings a database from user_version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        number INTEGER NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE TABLE blocks (
        number INTEGER PRIMARY KEY,
        hash BLOB NOT NULL
    );
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        model_id BLOB NOT NULL,
        state TEXT NOT NULL,
        reward TEXT NOT NULL,
        collateral TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_state ON jobs (state);
    CREATE TABLE results (
        job_id TEXT PRIMARY KEY,
        digest BLOB NOT NULL,
        result BLOB NOT NULL,
        salt BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE txs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        to_address TEXT NOT NULL,
        data BLOB NOT NULL,
        value TEXT NOT NULL,
        gas INTEGER NOT NULL,
        nonce INTEGER NOT NULL UNIQUE,
        status TEXT NOT NULL,
        meta TEXT NOT NULL,
        mined_hash BLOB,
        block_number INTEGER,
        receipt_status INTEGER,
        gas_used INTEGER,
        effective_gas_price TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX txs_status ON txs (status);
    CREATE TABLE broadcasts (
        hash BLOB PRIMARY KEY,
        tx_id INTEGER NOT NULL REFERENCES txs (id),
        max_fee TEXT NOT NULL,
        priority_fee TEXT NOT NULL,
        raw BLOB NOT NULL,
        head_block INTEGER NOT NULL,
        sent_at REAL NOT NULL
    );
    CREATE INDEX broadcasts_tx ON broadcasts (tx_id);
    """,
    # 2: the block a receipt was seen in, and how often a reorg took a transaction's block
    # away (confirmed transactions are re-checked against both).
    """
    ALTER TABLE txs ADD COLUMN block_hash BLOB;
    ALTER TABLE txs ADD COLUMN reorgs INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX txs_block ON txs (block_number);
    """,
    # 3: the chain and deployment the store's jobs, salts and nonces belong to.
    """
    CREATE TABLE chain (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        chain_id INTEGER NOT NULL,
        genesis BLOB NOT NULL,
        marketplace TEXT NOT NULL,
        start_block INTEGER NOT NULL
    );
    """,
    # 4: what the agent queries of a job in columns (provider/agent/records.py keeps the
    # rest in `data`): the step in flight and the seats held, moved out of `data`.
    """
    ALTER TABLE jobs ADD COLUMN pending_step TEXT;
    ALTER TABLE jobs ADD COLUMN pending_tx INTEGER;
    ALTER TABLE jobs ADD COLUMN seats TEXT NOT NULL DEFAULT '[]';
    UPDATE jobs SET pending_step = json_extract(data, '$.pending.kind'),
        pending_tx = json_extract(data, '$.pending.tx'),
        seats = coalesce(json_extract(data, '$.seats'), '[]'),
        data = json_remove(data, '$.pending', '$.seats');
    """,
    # 5: the block that showed a job's settlement: settlements within the reorg window
    # are re-checked (none before this version recorded one).
    """
    ALTER TABLE jobs ADD COLUMN settled_block INTEGER;
    CREATE INDEX jobs_settled ON jobs (settled_block);
    """,
    # 6: what a tick reads, found through indexes, not by reading every job of a state: a
    # provider holds thousands of delivered jobs through their challenge windows (the
    # awake ones by `quiet_until`), and the few with a transaction in flight.
    """
    ALTER TABLE jobs ADD COLUMN quiet_until INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_quiet ON jobs (state, quiet_until);
    CREATE INDEX jobs_pending ON jobs (pending_tx) WHERE pending_tx IS NOT NULL;
    """,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


class TxStatus(StrEnum):
    """Life of a transaction intent."""

    PENDING = "pending"  # nonce assigned; maybe broadcast, not mined yet
    MINED = "mined"  # a receipt exists, not yet deep enough
    CONFIRMED = "confirmed"  # receipt with enough confirmations (success or revert)
    NONCE_TAKEN = "nonce_taken"  # another transaction of this account used the nonce

    @property
    def is_open(self) -> bool:
        return self in (TxStatus.PENDING, TxStatus.MINED)


@dataclass(frozen=True)
class Checkpoint:
    number: int
    hash: bytes


@dataclass(frozen=True)
class ResultRecord:
    job_id: int
    digest: bytes
    result: bytes
    salt: bytes


@dataclass(frozen=True)
class Broadcast:
    hash: bytes
    max_fee: int
    priority_fee: int
    raw: bytes
    head_block: int
    sent_at: float


@dataclass(frozen=True)
class TxRecord:
    id: int
    kind: str
    to: str
    data: bytes
    value: int
    gas: int
    nonce: int
    status: TxStatus
    meta: dict[str, Any]
    mined_hash: bytes | None
    block_number: int | None
    receipt_status: int | None
    gas_used: int | None
    effective_gas_price: int | None
    error: str | None
    created_at: float
    broadcasts: tuple[Broadcast, ...]
    block_hash: bytes | None = None
    reorgs: int = 0  # times a reorg removed the block holding its receipt

    @property
    def succeeded(self) -> bool:
        return self.status is TxStatus.CONFIRMED and self.receipt_status == 1

    @property
    def fee_paid(self) -> int:
        if self.gas_used is None or self.effective_gas_price is None:
            return 0
        return self.gas_used * self.effective_gas_price


class Store:
    """Thread-safe access to the agent database (one connection behind a re-entrant lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit is fsync'ed, so a salt is on disk before its seal is sent.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot open agent database {self.path}: {err}") from err

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}; this agent knows up to {SCHEMA_VERSION}"
            )
        with self.atomic():
            for target in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={target + 1}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One durable transaction; nested uses join the outermost one."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.atomic():
            return self._db.execute(sql, tuple(args))

    # ---- checkpoint and block hashes -------------------------------------------------

    def bind_chain(self, chain_id: int, genesis: bytes, marketplace: str, start_block: int) -> None:
        """Tie the store to one chain and deployment on first use; refuse any other later.
        A store from another chain (a restarted dev node keeps the chain id and, with the
        same deployer, the marketplace address) would make the agent take that chain's
        jobs for ones it already settled, and reuse nonces it doesn't own."""
        want = (chain_id, bytes(genesis), marketplace.lower(), start_block)
        with self.atomic():
            rows = self._rows("SELECT chain_id, genesis, marketplace, start_block FROM chain")
            if not rows:
                self._write("INSERT INTO chain VALUES (1, ?, ?, ?, ?)", want)
                return
        have = (rows[0]["chain_id"], bytes(rows[0]["genesis"]), rows[0]["marketplace"],
                rows[0]["start_block"])
        if have != want:
            raise StoreError(
                f"{self.path} belongs to another chain or deployment (chain {have[0]}, genesis "
                f"0x{have[1].hex()}, marketplace {have[2]} from block {have[3]}); this one is "
                f"chain {want[0]}, genesis 0x{want[1].hex()}, marketplace {want[2]} from block "
                f"{want[3]}: point db_path at a new file (or delete this one if nothing on that "
                "chain is owed to you)")

    def checkpoint(self) -> Checkpoint | None:
        rows = self._rows("SELECT number, hash FROM checkpoint WHERE id = 1")
        return Checkpoint(rows[0]["number"], bytes(rows[0]["hash"])) if rows else None

    def save_checkpoint(self, number: int, block_hash: bytes, keep_blocks: int) -> None:
        """Mark everything up to `number` processed and remember its hash for reorg checks."""
        with self.atomic():
            self._db.execute(
                "INSERT INTO checkpoint (id, number, hash) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET number = excluded.number, hash = excluded.hash",
                (number, block_hash),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (number, block_hash)
            )
            self._db.execute(
                "DELETE FROM blocks WHERE number NOT IN"
                " (SELECT number FROM blocks ORDER BY number DESC LIMIT ?)",
                (keep_blocks,),
            )

    def known_blocks(self) -> list[Checkpoint]:
        """Remembered (number, hash) pairs, newest first."""
        rows = self._rows("SELECT number, hash FROM blocks ORDER BY number DESC")
        return [Checkpoint(r["number"], bytes(r["hash"])) for r in rows]

    def rewind(self, to: Checkpoint | None) -> None:
        """Forget blocks above `to` (a remembered block) after a reorg; None forgets all."""
        with self.atomic():
            if to is None:
                self._db.execute("DELETE FROM blocks")
                self._db.execute("DELETE FROM checkpoint")
                return
            self._db.execute("DELETE FROM blocks WHERE number > ?", (to.number,))
            self._db.execute(
                "UPDATE checkpoint SET number = ?, hash = ? WHERE id = 1", (to.number, to.hash)
            )

    # ---- jobs ------------------------------------------------------------------------

    def add_job(self, job_id: int, model_id: bytes, *, state: JobState = JobState.SEEN,
                **fields: Any) -> bool:
        """Record a job once (`fields`: those of `JobRecord`); returns False (and changes
        nothing) if it is already known."""
        columns, data = job_columns({"state": state, "reward": 0, "collateral": 0, "seats": (),
                                     "pending": None, **fields})
        columns |= {"job_id": str(job_id), "model_id": model_id, "data": json.dumps(data),
                    "updated_at": time.time()}
        cur = self._write(f"INSERT OR IGNORE INTO jobs ({', '.join(columns)}) VALUES"
                          f" ({_marks(columns)})", columns.values())
        return cur.rowcount == 1

    def update_job(self, job_id: int, **fields: Any) -> None:
        """Set fields of a job's record (`JobRecord`'s names)."""
        self.update_jobs([job_id], **fields)

    def update_jobs(self, job_ids: Iterable[int], **fields: Any) -> None:
        """`update_job` for many jobs at once. sqlite sets the JSON keys (json_set), so
        no record is decoded here: the agent marks every job of each transaction it
        sends. KeyError, and nothing changed, if a job is unknown."""
        columns, data = job_columns(fields)
        if "state" in columns:  # a quiet time is the state's: a new state starts awake
            columns.setdefault("quiet_until", 0)
        sets = [f"{name} = ?" for name in columns] + ["updated_at = ?"]
        args: list[Any] = [*columns.values(), time.time()]
        if data:
            sets.append(f"data = json_set(data, {', '.join(['?, json(?)'] * len(data))})")
            for key, value in data.items():
                args += [f'$."{key}"', json.dumps(value)]
        with self.atomic():
            for chunk in _id_chunks(dict.fromkeys(job_ids)):
                sql = f"UPDATE jobs SET {', '.join(sets)} WHERE job_id IN ({_marks(chunk)})"
                cursor = self._db.execute(sql, args + chunk)
                if cursor.rowcount != len(chunk):
                    raise KeyError(f"unknown job among {chunk}")

    def update_each(self, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """`update_job` for many jobs, each with its own fields, in one transaction: the
        jobs given equal fields (most of a batch a mined step moved) by one statement."""
        alike: dict[str, tuple[Mapping[str, Any], list[int]]] = {}
        for job_id, fields in changes.items():
            alike.setdefault(repr(job_columns(fields)), (fields, []))[1].append(job_id)
        with self.atomic():
            for fields, job_ids in alike.values():
                self.update_jobs(job_ids, **fields)

    def forget_jobs(self, job_ids: Iterable[int]) -> None:
        """Drop jobs we never acted on (their post was orphaned by a reorg)."""
        with self.atomic():
            for job_id in job_ids:
                self._db.execute("DELETE FROM jobs WHERE job_id = ?", (str(job_id),))

    def job(self, job_id: int) -> JobRecord | None:
        rows = self._rows(f"SELECT {_JOB} FROM jobs WHERE job_id = ?", (str(job_id),))
        return job_record(rows[0]) if rows else None

    def jobs(self, *states: JobState, ids: Iterable[int] | None = None) -> list[JobRecord]:
        """Jobs in `states` (all without), in id order; with `ids`, only those jobs
        (filtered in sqlite: decoding every waiting job's JSON on each poll cost the
        agent more than its RPC)."""
        rows = self._job_rows(_JOB, states, ids)
        return sorted((job_record(r) for r in rows), key=lambda j: j.job_id)

    def job_ids(self, *states: JobState, ids: Iterable[int] | None = None) -> list[int]:
        """The ids of the jobs in `states` (only among `ids`, with those), in id order,
        without reading their data."""
        return sorted(int(r["job_id"]) for r in self._job_rows("job_id", states, ids))

    def _job_rows(self, columns: str, states: Sequence[JobState], ids: Iterable[int] | None) -> list[sqlite3.Row]:
        """`columns` of the jobs in `states` (all without), only among `ids` with those."""
        sql = f"SELECT {columns} FROM jobs WHERE 1"
        if states:
            sql += f" AND state IN ({_marks(states)})"
        args: list[Any] = [JobState(s).value for s in states]
        if ids is None:
            return self._rows(sql, args)
        rows = []
        for chunk in _id_chunks(ids):
            rows += self._rows(sql + f" AND job_id IN ({_marks(chunk)})", args + chunk)
        return rows

    def awake_ids(self, state: JobState, now: int) -> list[int]:
        """The ids of the jobs in `state` whose quiet time is over at chain time `now`, in
        id order: an index range, however many jobs are quiet."""
        rows = self._rows("SELECT job_id FROM jobs WHERE state = ? AND quiet_until < ?",
                          [JobState(state).value, now])
        return sorted(int(r["job_id"]) for r in rows)

    def count_jobs(self, *states: JobState) -> int:
        """How many jobs are in `states` (counted in the state index)."""
        return self._rows(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN ({_marks(states)})",
                          [JobState(s).value for s in states])[0]["n"]

    def pending_steps(self, *states: JobState) -> dict[tuple[int, Step], list[int]]:
        """(tx id, step kind) -> the ids of the jobs in `states` waiting for that
        transaction, in id order: read in sqlite, as the agent asks on every tick (through
        the index of jobs in flight: sqlite would rather walk every job of the states)."""
        rows = self._rows(
            "SELECT job_id, pending_tx, pending_step FROM jobs INDEXED BY jobs_pending"
            f" WHERE pending_tx IS NOT NULL AND state IN ({_marks(states)})",
            [JobState(s).value for s in states])
        waiting: dict[tuple[int, Step], list[int]] = {}
        for row in sorted(rows, key=lambda r: int(r["job_id"])):
            waiting.setdefault((row["pending_tx"], Step(row["pending_step"])), []).append(int(row["job_id"]))
        return waiting

    def settled_among(self, job_ids: Iterable[int]) -> list[JobRecord]:
        """Those of `job_ids` whose settlement is recorded (only their records decoded)."""
        rows = []
        for chunk in _id_chunks(job_ids):
            rows += self._rows(f"SELECT {_JOB} FROM jobs WHERE job_id IN ({_marks(chunk)})"
                               " AND json_extract(data, '$.settled') IS NOT NULL", chunk)
        return sorted((job_record(r) for r in rows), key=lambda j: j.job_id)

    def settled_since(self, block: int, newest: bool = False) -> list[JobRecord]:
        """Jobs whose settlement a block after `block` showed, newest block first (only
        the newest job with `newest`): those a reorg may still un-settle."""
        rows = self._rows(f"SELECT {_JOB} FROM jobs WHERE settled_block > ?"
                          f" ORDER BY settled_block DESC{' LIMIT 1' if newest else ''}", (block,))
        return [job_record(r) for r in rows]

    def job_counts(self) -> dict[JobState, int]:
        rows = self._rows("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {JobState(r["state"]): r["n"] for r in rows}

    def stake_at_risk(self) -> int:
        """Collateral locked by the jobs we currently hold."""
        return self._column_sum("collateral", [s for s in JobState if s.holds_stake])

    def earnings(self) -> int:
        """Rewards of the jobs paid to us: the reward per seat times the seats we held
        (a provider drawn for two seats of a job is paid twice)."""
        rows = self._rows("SELECT reward, json_array_length(seats) AS seats FROM jobs"
                          " WHERE state = ?", [JobState.PAID.value])
        return sum(int(r["reward"]) * max(1, r["seats"] or 0) for r in rows)

    def _column_sum(self, column: str, states: list[JobState]) -> int:
        # Summed in Python: the amounts are stored as decimal text (they exceed int64).
        rows = self._rows(f"SELECT {column} FROM jobs WHERE state IN ({_marks(states)})",
                          [s.value for s in states])
        return sum(int(r[column]) for r in rows)

    # ---- results and salts -----------------------------------------------------------

    def save_result(self, job_id: int, digest: bytes, result: bytes, salt: bytes) -> ResultRecord:
        """Persist a result and its salt before any seal of it is sent.

        A salt is never overwritten: saving a different result for the same job
        raises, saving the same one again is a no-op (so retries are safe).
        """
        with self.atomic():
            existing = self.result(job_id)
            if existing is not None:
                if (existing.digest, existing.result, existing.salt) != (digest, result, salt):
                    raise StoreError(f"job {job_id} already has a different stored result")
                return existing
            self._db.execute(
                "INSERT INTO results (job_id, digest, result, salt, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (str(job_id), digest, result, salt, time.time()),
            )
        return ResultRecord(job_id, digest, result, salt)

    def result(self, job_id: int) -> ResultRecord | None:
        return self.results([job_id]).get(job_id)

    def results(self, job_ids: Iterable[int]) -> dict[int, ResultRecord]:
        """The stored results of those of `job_ids` that have one."""
        found = {}
        for chunk in _id_chunks(job_ids):
            for r in self._rows(f"SELECT * FROM results WHERE job_id IN ({_marks(chunk)})", chunk):
                job_id = int(r["job_id"])
                found[job_id] = ResultRecord(job_id, bytes(r["digest"]), bytes(r["result"]), bytes(r["salt"]))
        return found

    def claimed_unsent(self) -> tuple[list[int], list[int]]:
        """CLAIMED jobs with no transaction pending: (those with a stored result, those
        without), each in id order. Read in sqlite without decoding a record: the seal
        phase asks on every tick, while an engine backlog holds hundreds of such jobs."""
        rows = self._rows(
            "SELECT jobs.job_id, results.job_id IS NOT NULL AS stored FROM jobs"
            " LEFT JOIN results ON results.job_id = jobs.job_id"
            " WHERE jobs.state = ? AND jobs.pending_tx IS NULL", [JobState.CLAIMED.value])
        stored = sorted(int(r["job_id"]) for r in rows if r["stored"])
        return stored, sorted(int(r["job_id"]) for r in rows if not r["stored"])

    # ---- transactions ----------------------------------------------------------------

    def add_tx(
        self,
        *,
        kind: str,
        to: str,
        data: bytes,
        value: int,
        gas: int,
        nonce: int,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Record an intended transaction with its nonce; returns its id."""
        now = time.time()
        cur = self._write(
            "INSERT INTO txs (kind, to_address, data, value, gas, nonce, status, meta,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, to, data, str(value), gas, nonce, TxStatus.PENDING.value,
             json.dumps(meta or {}), now, now),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def add_broadcast(
        self, tx_id: int, *, tx_hash: bytes, max_fee: int, priority_fee: int, raw: bytes,
        head_block: int,
    ) -> None:
        """Record a signed version of an intent; call before sending it."""
        self._write(
            "INSERT OR IGNORE INTO broadcasts (hash, tx_id, max_fee, priority_fee, raw,"
            " head_block, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tx_hash, tx_id, str(max_fee), str(priority_fee), raw, head_block, time.time()),
        )

    def touch_broadcast(self, tx_hash: bytes, head_block: int) -> None:
        """Restart the stuck clock of a broadcast that was sent again unchanged."""
        self._write(
            "UPDATE broadcasts SET head_block = ?, sent_at = ? WHERE hash = ?",
            (head_block, time.time(), tx_hash),
        )

    def update_tx(
        self,
        tx_id: int,
        status: TxStatus,
        *,
        mined_hash: bytes | None = None,
        block_number: int | None = None,
        block_hash: bytes | None = None,
        receipt_status: int | None = None,
        gas_used: int | None = None,
        effective_gas_price: int | None = None,
        error: str | None = None,
    ) -> None:
        self._write(
            "UPDATE txs SET status = ?, mined_hash = ?, block_number = ?, block_hash = ?,"
            " receipt_status = ?, gas_used = ?, effective_gas_price = ?, error = ?,"
            " updated_at = ? WHERE id = ?",
            (
                TxStatus(status).value, mined_hash, block_number, block_hash, receipt_status,
                gas_used, None if effective_gas_price is None else str(effective_gas_price),
                error, time.time(), tx_id,
            ),
        )

    def reopen_tx(self, tx_id: int) -> None:
        """A reorg removed the block holding the transaction's receipt: pending again,
        its receipt forgotten, the reorg counted."""
        self._write(
            "UPDATE txs SET status = ?, mined_hash = NULL, block_number = NULL,"
            " block_hash = NULL, receipt_status = NULL, gas_used = NULL,"
            " effective_gas_price = NULL, reorgs = reorgs + 1, updated_at = ? WHERE id = ?",
            (TxStatus.PENDING.value, time.time(), tx_id),
        )

    def set_tx_error(self, tx_id: int, error: str | None) -> None:
        """Note why the node last refused or failed a transaction (cleared with None)."""
        self._write(
            "UPDATE txs SET error = ?, updated_at = ? WHERE id = ?", (error, time.time(), tx_id)
        )

    def _tx(self, row: sqlite3.Row) -> TxRecord:
        casts = self._rows(
            "SELECT * FROM broadcasts WHERE tx_id = ? ORDER BY sent_at, rowid", (row["id"],)
        )
        return TxRecord(
            id=row["id"],
            kind=row["kind"],
            to=row["to_address"],
            data=bytes(row["data"]),
            value=int(row["value"]),
            gas=row["gas"],
            nonce=row["nonce"],
            status=TxStatus(row["status"]),
            meta=json.loads(row["meta"]),
            mined_hash=None if row["mined_hash"] is None else bytes(row["mined_hash"]),
            block_number=row["block_number"],
            receipt_status=row["receipt_status"],
            gas_used=row["gas_used"],
            effective_gas_price=(
                None if row["effective_gas_price"] is None else int(row["effective_gas_price"])
            ),
            error=row["error"],
            created_at=row["created_at"],
            broadcasts=tuple(
                Broadcast(bytes(b["hash"]), int(b["max_fee"]), int(b["priority_fee"]),
                          bytes(b["raw"]), b["head_block"], b["sent_at"])
                for b in casts
            ),
            block_hash=None if row["block_hash"] is None else bytes(row["block_hash"]),
            reorgs=row["reorgs"],
        )

    def tx(self, tx_id: int) -> TxRecord | None:
        rows = self._rows("SELECT * FROM txs WHERE id = ?", (tx_id,))
        return self._tx(rows[0]) if rows else None

    def txs(self, *statuses: TxStatus) -> list[TxRecord]:
        """Transactions (all, or those in the given statuses) in nonce order."""
        if statuses:
            marks = ",".join("?" * len(statuses))
            rows = self._rows(
                f"SELECT * FROM txs WHERE status IN ({marks}) ORDER BY nonce",
                [TxStatus(s).value for s in statuses],
            )
        else:
            rows = self._rows("SELECT * FROM txs ORDER BY nonce")
        return [self._tx(r) for r in rows]

    def open_txs(self) -> list[TxRecord]:
        return self.txs(*(s for s in TxStatus if s.is_open))

    def confirmed_txs(self, *, nonce_from: int | None = None,
                      block_from: int | None = None) -> list[TxRecord]:
        """Confirmed transactions at nonces from `nonce_from` or mined in blocks from
        `block_from` (either or both), in nonce order: those to re-check after a reorg."""
        rows = self._rows(
            # Found through the nonce and block indexes: nearly every transaction is
            # confirmed, so the status index would scan them all.
            "SELECT * FROM txs WHERE id IN (SELECT id FROM txs WHERE nonce >= ?"
            " UNION SELECT id FROM txs WHERE block_number >= ?) AND +status = ?"
            " ORDER BY nonce",
            (2**62 if nonce_from is None else nonce_from,
             2**62 if block_from is None else block_from, TxStatus.CONFIRMED.value),
        )
        return [self._tx(r) for r in rows]

    def newest_receipt_block(self) -> tuple[int, bytes] | None:
        """(number, hash) of the newest block holding a confirmed transaction's receipt."""
        rows = self._rows(
            "SELECT block_number, block_hash FROM txs WHERE +status = ?"
            " AND block_hash IS NOT NULL ORDER BY block_number DESC LIMIT 1",
            (TxStatus.CONFIRMED.value,),
        )
        return (rows[0]["block_number"], bytes(rows[0]["block_hash"])) if rows else None

    def reorged_txs(self) -> list[TxRecord]:
        """Open transactions that a reorg took out of a block, in nonce order."""
        marks = ",".join("?" * sum(1 for s in TxStatus if s.is_open))
        rows = self._rows(
            f"SELECT * FROM txs WHERE reorgs > 0 AND status IN ({marks}) ORDER BY nonce",
            [s.value for s in TxStatus if s.is_open],
        )
        return [self._tx(r) for r in rows]

    def max_nonce(self) -> int | None:
        return self._rows("SELECT MAX(nonce) AS n FROM txs")[0]["n"]

    def gas_spent(self) -> int:
        """Wei paid in fees by every mined transaction."""
        rows = self._rows(
            "SELECT gas_used, effective_gas_price FROM txs WHERE gas_used IS NOT NULL"
            " AND effective_gas_price IS NOT NULL AND status IN (?, ?)",
            (TxStatus.MINED.value, TxStatus.CONFIRMED.value),
        )
        return sum(r["gas_used"] * int(r["effective_gas_price"]) for r in rows)

    def tx_counts(self) -> dict[TxStatus, int]:
        rows = self._rows("SELECT status, COUNT(*) AS n FROM txs GROUP BY status")
        return {TxStatus(r["status"]): r["n"] for r in rows}


_JOB = ", ".join([*COLUMNS, "data"])  # a job row as records.job_record reads it


def _id_chunks(ids: Iterable[int]) -> Iterator[list[str]]:
    """Job ids as stored (text), IDS_PER_QUERY at a time: one IN (...) list each."""
    wanted = [str(i) for i in ids]
    for start in range(0, len(wanted), IDS_PER_QUERY):
        yield wanted[start:start + IDS_PER_QUERY]


def _marks(values: Sequence[Any]) -> str:
    """SQL placeholders for the values of an IN (...) list."""
    return ",".join("?" * len(values))
