"""The agent's sqlite store: durability, schema versioning, salts never overwritten."""

import json
import signal
import sqlite3
import subprocess

import pytest

from client.protocol import JobStatus
from provider.agent.errors import StoreError
from provider.agent.records import Pending, Round, Settlement, Step, Terms
from provider.agent.store import IDS_PER_QUERY, SCHEMA_VERSION, Checkpoint, JobState, Store, TxStatus

MODEL = b"\x01" * 32
TERMS = Terms(r=3, client="0x" + "ab" * 20, input=b"hello", block=9)


def fill(store: Store) -> int:
    store.save_checkpoint(10, b"h" * 32, keep_blocks=8)
    store.add_job(1, MODEL, reward=5, collateral=100, terms=TERMS, round=Round(10, 20, 30))
    store.add_job(2**200, MODEL, state=JobState.CLAIMED, reward=3, collateral=2**100)
    store.save_result(1, digest=b"d" * 32, result=b"r", salt=b"s" * 32)
    tx_id = store.add_tx(kind="commit", to="0x" + "11" * 20, data=b"\xca\xfe", value=0,
                         gas=50_000, nonce=0, meta={"jobs": [1]})
    store.add_broadcast(tx_id, tx_hash=b"a" * 32, max_fee=3 * 10**9, priority_fee=10**9,
                        raw=b"raw", head_block=10)
    return tx_id


def test_everything_survives_close_and_reopen(tmp_path):
    path = tmp_path / "agent.db"
    store = Store(path)
    tx_id = fill(store)
    store.close()

    again = Store(path)
    assert again.schema_version == SCHEMA_VERSION
    assert again.checkpoint() == Checkpoint(10, b"h" * 32)
    job = again.job(1)
    assert (job.state, job.reward, job.collateral, job.terms, job.round) == (
        JobState.SEEN, 5, 100, TERMS, Round(10, 20, 30))
    assert again.job(2**200).collateral == 2**100  # uint256 values round-trip exactly
    assert again.result(1).salt == b"s" * 32
    tx = again.tx(tx_id)
    assert (tx.kind, tx.nonce, tx.status, tx.meta, tx.data) == (
        "commit", 0, TxStatus.PENDING, {"jobs": [1]}, b"\xca\xfe")
    assert [b.hash for b in tx.broadcasts] == [b"a" * 32]
    assert again.max_nonce() == 0


def test_write_ahead_log_and_full_sync(tmp_path):
    store = Store(tmp_path / "agent.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync per commit


def test_saved_result_survives_kill_9(tmp_path, python_script):
    path = tmp_path / "agent.db"
    proc = python_script("store_writer.py", str(path), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = Store(path).result(7)
    assert result is not None and result.salt == b"s" * 32 and result.result == b"embedding"


def test_a_salt_is_never_overwritten(tmp_path):
    store = Store(tmp_path / "agent.db")
    store.save_result(1, digest=b"d" * 32, result=b"r", salt=b"s" * 32)
    store.save_result(1, digest=b"d" * 32, result=b"r", salt=b"s" * 32)  # a retry: no-op
    with pytest.raises(StoreError, match="different stored result"):
        store.save_result(1, digest=b"e" * 32, result=b"r2", salt=b"t" * 32)
    assert store.result(1).salt == b"s" * 32


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "agent.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version"):
        Store(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "agent.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(path)


def test_atomic_rolls_back_everything(tmp_path):
    store = Store(tmp_path / "agent.db")
    with pytest.raises(RuntimeError):
        with store.atomic():
            store.add_job(1, MODEL)
            store.save_checkpoint(5, b"x" * 32, keep_blocks=4)
            raise RuntimeError("handler failed")
    assert store.job(1) is None and store.checkpoint() is None


def test_jobs_states_and_money(tmp_path):
    store = Store(tmp_path / "agent.db")
    assert store.add_job(1, MODEL, reward=10)
    assert not store.add_job(1, MODEL, reward=99)  # known already: unchanged
    store.add_job(2, MODEL, reward=20)
    store.add_job(3, MODEL, reward=30)
    store.update_job(1, state=JobState.CLAIMED, collateral=500, last_tx=4)
    store.update_job(2, state=JobState.PAID)
    store.update_job(3, state=JobState.REVEALED, collateral=700)
    assert store.job(1).last_tx == 4 and store.job(1).reward == 10
    with pytest.raises(TypeError, match="claim_tx"):  # a typed record: no free-form keys
        store.update_job(1, claim_tx=4)
    assert store.job_counts() == {JobState.CLAIMED: 1, JobState.PAID: 1, JobState.REVEALED: 1}
    assert store.stake_at_risk() == 1200
    assert store.earnings() == 20
    assert [j.job_id for j in store.jobs(JobState.CLAIMED, JobState.REVEALED)] == [1, 3]
    store.update_job(3, pending=Pending(Step.REVEAL, 8), seats=(2, 1))
    assert (store.job(3).pending, store.job(3).seats) == (Pending(Step.REVEAL, 8), (1, 2))
    store.update_job(2, pending=Pending(Step.FINALIZE, 9))
    store.update_job(1, pending=Pending(Step.CLAIM, 5))
    store.update_job(1, pending=None)  # cleared: not pending
    assert store.job(1).pending is None and store.job(1).last_tx == 4
    store.add_job(4, MODEL, state=JobState.REVEALED, pending=Pending(Step.REVEAL, 8))
    assert store.pending_steps(*JobState) == {(8, "reveal"): [3, 4], (9, "finalize"): [2]}
    assert store.pending_steps(JobState.CLAIMED, JobState.REVEALED) == {(8, "reveal"): [3, 4]}
    assert store.pending_steps(JobState.CLAIMED) == {}
    with pytest.raises(KeyError):
        store.update_job(99, state=JobState.LOST)


def test_update_jobs_sets_keys_in_sqlite(tmp_path):
    """Many jobs in one statement per IDS_PER_QUERY: keys set or replaced, others kept,
    uint256 values intact, duplicates counted once; an unknown job changes nothing."""
    store = Store(tmp_path / "agent.db")
    n = IDS_PER_QUERY + 3
    for i in range(n):
        store.add_job(i, MODEL, terms=TERMS, failures=2)
    big = 2**256 - 1
    settled = Settlement(JobStatus.FINALIZED, b"d" * 32)
    store.update_jobs([*range(n), 0], state=JobState.CLAIMING, pending=Pending(Step.CLAIM, 7),
                      failures=0, slashed={1: big}, seats=[1, 3], seat_collateral=big, settled=settled)
    jobs = store.jobs()
    assert {j.state for j in jobs} == {JobState.CLAIMING} and len(jobs) == n
    assert {(j.terms, j.failures, j.pending, j.slashed[1], j.seats, j.seat_collateral, j.settled)
            for j in jobs} == {(TERMS, 0, Pending(Step.CLAIM, 7), big, (1, 3), big, settled)}
    store.update_jobs([1, 2], collateral=9)
    assert store.stake_at_risk() == 18
    with pytest.raises(KeyError):
        store.update_jobs([3, 10**9], state=JobState.LOST, failures=5)
    assert store.job(3).state is JobState.CLAIMING and store.job(3).failures == 0
    store.update_jobs([])  # nothing to do


def test_update_each_groups_jobs_moved_alike(tmp_path, monkeypatch):
    """Jobs given equal fields (however spelled: seats in any order) share one statement,
    the others get their own; an unknown job among them changes nothing at all."""
    store = Store(tmp_path / "agent.db")
    for i in range(6):
        store.add_job(i, MODEL, terms=TERMS)
    statements = []
    update_jobs = store.update_jobs
    monkeypatch.setattr(store, "update_jobs", lambda ids, **f: (statements.append(list(ids)), update_jobs(ids, **f)))
    claimed = {"state": JobState.CLAIMED, "pending": None, "seats": [0, 2], "last_tx": 4}
    store.update_each({0: claimed, 1: {**claimed, "seats": (2, 0)}, 2: claimed,
                       3: {"state": JobState.LOST, "reason": "taken"}, 4: {**claimed, "last_tx": 5}})
    assert sorted(statements) == [[0, 1, 2], [3], [4]]
    assert [(j.state, j.seats, j.last_tx) for j in store.jobs(ids=[0, 1, 2, 4])] == [
        (JobState.CLAIMED, (0, 2), 4)] * 3 + [(JobState.CLAIMED, (0, 2), 5)]
    assert store.job(3).reason == "taken" and store.job(5).state is JobState.SEEN
    with pytest.raises(KeyError):
        store.update_each({5: {"state": JobState.LOST}, 10**9: {"state": JobState.LOST}})
    assert store.job(5).state is JobState.SEEN
    store.update_each({})  # nothing to do


def test_quiet_jobs_are_skipped_through_an_index_and_wake_with_a_new_state(tmp_path):
    """A delivered job is quiet until its window ends (chain time): the settle phase's
    query skips quiet jobs by an index range, and the jobs in flight are found by theirs,
    so a tick reads no more however many deliveries wait. A change of state wakes a job
    (its quiet time belonged to the old state); other changes keep it."""
    store = Store(tmp_path / "agent.db")
    for i in range(5):
        store.add_job(i, MODEL, state=JobState.REVEALED, terms=TERMS, quiet_until=100 * i)
    store.add_job(9, MODEL, state=JobState.CLAIMED, terms=TERMS, quiet_until=10**9)
    assert store.awake_ids(JobState.REVEALED, 150) == [0, 1]
    assert store.awake_ids(JobState.REVEALED, 100) == [0]  # quiet through chain time 100
    assert store.awake_ids(JobState.CLAIMED, 10) == []
    store.update_jobs([2], pending=Pending(Step.FINALIZE, 3), failures=1)  # same state: still quiet
    assert store.job(2).quiet_until == 200
    store.update_jobs([3, 9], state=JobState.REVEALED)  # a new state: awake at once
    assert store.awake_ids(JobState.REVEALED, 1) == [0, 3, 9]
    store.update_jobs([4], state=JobState.SEEN, quiet_until=7)  # or as told
    assert store.job(4).quiet_until == 7
    assert store.job_ids(JobState.REVEALED, ids=[2, 4, 9, 10**9]) == [2, 9]
    assert store.count_jobs(JobState.REVEALED, JobState.SEEN) == 6 and store.count_jobs(JobState.PAID) == 0
    assert store.pending_steps(JobState.REVEALED) == {(3, Step.FINALIZE): [2]}
    ran: list[str] = []  # the statements as sqlite ran them, values bound
    store._db.set_trace_callback(ran.append)
    store.awake_ids(JobState.REVEALED, 1)
    store.pending_steps(JobState.SEEN, JobState.REVEALED)
    store._db.set_trace_callback(None)
    plans = [" ".join(row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + sql)) for sql in ran]
    assert len(plans) == 2, plans
    assert "USING INDEX jobs_quiet (state=? AND quiet_until<?)" in plans[0], plans  # a range, not the state
    assert "USING INDEX jobs_pending" in plans[1], plans  # only the jobs in flight


def test_job_ids_and_jobs_by_id(tmp_path):
    """Ids alone (no JSON read), and records of chosen ids: more ids than one query takes,
    ids in other states or unknown left out, id order (ids are numbers, not text)."""
    store = Store(tmp_path / "agent.db")
    n = IDS_PER_QUERY + 7
    with store.atomic():
        for i in range(n):
            store.add_job(i * 10, MODEL, reward=2**70 + i, last_tx=i)
        store.update_job(30, state=JobState.PAID, collateral=2**80)
        store.update_job(40, state=JobState.REVEALED, collateral=2**80 + 1)
    seen = store.job_ids(JobState.SEEN)
    assert len(seen) == n - 2 and seen[:3] == [0, 10, 20] and 30 not in seen
    assert store.job_ids(JobState.PAID, JobState.REVEALED) == [30, 40]
    wanted = [i * 10 for i in range(n)][::-1] + [10**9]
    picked = store.jobs(JobState.SEEN, ids=wanted)
    assert [j.job_id for j in picked] == seen and picked[-1].last_tx == n - 1
    assert store.jobs(ids=[]) == [] and [j.job_id for j in store.jobs(ids=[40, 30])] == [30, 40]
    assert store.earnings() == 2**70 + 3  # amounts beyond int64 sum exactly
    assert store.stake_at_risk() == 2**80 + 1


def test_results_by_id_and_claimed_jobs_left_to_send(tmp_path):
    """Results of many ids at once (more than one query takes, unknown ids left out); the
    settled among chosen jobs (a settlement without a block too); and the claimed jobs
    with no transaction pending split by whether a result is stored: other states and
    jobs waiting for a transaction left out, id order."""
    store = Store(tmp_path / "agent.db")
    n = IDS_PER_QUERY + 3
    with store.atomic():
        for i in range(n):
            store.add_job(i, MODEL, state=JobState.CLAIMED)
            if i % 2:
                store.save_result(i, digest=bytes([i % 256]) * 32, result=b"r%d" % i, salt=b"s" * 32)
        store.add_job(10**30, MODEL, state=JobState.COMMITTED)  # another state, with a result
        store.save_result(10**30, digest=b"d" * 32, result=b"x", salt=b"s" * 32)
        store.update_jobs([1, 2], pending=Pending(Step.DELIVER, 4))
    found = store.results([*range(n), 10**30, 10**31][::-1])
    assert sorted(found) == [i for i in range(n) if i % 2] + [10**30]
    assert found[n - 2].result == b"r%d" % (n - 2) and store.result(2) is None
    assert store.result(3) == found[3] and store.results([]) == {}
    store.update_job(5, settled=Settlement(JobStatus.FINALIZED, b"d" * 32, 0, b""))  # from a view: no block
    store.update_job(n - 1, settled=Settlement(JobStatus.CANCELLED, b"d" * 32, 12, b"h" * 32))
    assert [j.job_id for j in store.settled_among([n - 1, 4, 5, 10**31])] == [5, n - 1]
    stored, todo = store.claimed_unsent()
    assert stored == [i for i in range(3, n) if i % 2]  # 1: its delivery is pending
    assert todo == [0] + [i for i in range(4, n) if not i % 2]  # 2: pending too


def test_block_memory_is_bounded_and_rewinds(tmp_path):
    store = Store(tmp_path / "agent.db")
    for n in range(1, 11):
        store.save_checkpoint(n, bytes([n]) * 32, keep_blocks=4)
    assert [b.number for b in store.known_blocks()] == [10, 9, 8, 7]
    store.rewind(Checkpoint(8, bytes([8]) * 32))
    assert store.checkpoint() == Checkpoint(8, bytes([8]) * 32)
    assert [b.number for b in store.known_blocks()] == [8, 7]
    store.rewind(None)
    assert store.checkpoint() is None and store.known_blocks() == []


def test_transactions_by_status_and_fees(tmp_path):
    store = Store(tmp_path / "agent.db")
    a = store.add_tx(kind="claim", to="0x" + "11" * 20, data=b"", value=0, gas=1, nonce=0)
    b = store.add_tx(kind="commit", to="0x" + "11" * 20, data=b"", value=0, gas=1, nonce=1)
    with pytest.raises(sqlite3.IntegrityError):  # one intent per nonce
        store.add_tx(kind="dup", to="0x" + "11" * 20, data=b"", value=0, gas=1, nonce=1)
    store.update_tx(a, TxStatus.CONFIRMED, mined_hash=b"h" * 32, block_number=3,
                    receipt_status=1, gas_used=21_000, effective_gas_price=2 * 10**9)
    assert store.tx(a).succeeded and store.tx(a).fee_paid == 42_000 * 10**9
    assert [t.id for t in store.open_txs()] == [b]
    assert store.gas_spent() == 42_000 * 10**9
    assert store.tx_counts() == {TxStatus.CONFIRMED: 1, TxStatus.PENDING: 1}
    store.set_tx_error(b, "replacement transaction underpriced")
    assert store.tx(b).error == "replacement transaction underpriced"


def test_a_version_1_database_is_migrated_keeping_its_transactions(tmp_path):
    from provider.agent.store import _MIGRATIONS

    path = tmp_path / "agent.db"
    with sqlite3.connect(path) as db:  # what an agent of schema version 1 left behind
        db.executescript(_MIGRATIONS[0] + "PRAGMA user_version=1;")
        db.execute("INSERT INTO txs (kind, to_address, data, value, gas, nonce, status, meta,"
                   " block_number, created_at, updated_at)"
                   " VALUES ('claim', '0x', x'', '0', 1, 0, 'confirmed', '{}', 7, 0, 0)")
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    [tx] = store.txs()
    assert (tx.status, tx.block_number, tx.block_hash, tx.reorgs) == (
        TxStatus.CONFIRMED, 7, None, 0)


def test_confirmed_transactions_to_recheck_and_reopened_ones(tmp_path):
    store = Store(tmp_path / "agent.db")
    ids = [store.add_tx(kind="claim", to="0x" + "11" * 20, data=b"", value=0, gas=1, nonce=n)
           for n in range(4)]
    for n, tx_id in enumerate(ids):
        store.update_tx(tx_id, TxStatus.CONFIRMED, mined_hash=bytes([n]) * 32,
                        block_number=10 + n, block_hash=bytes([100 + n]) * 32, receipt_status=1)
    assert store.newest_receipt_block() == (13, bytes([103]) * 32)
    assert [t.nonce for t in store.confirmed_txs(nonce_from=3)] == [3]
    assert [t.nonce for t in store.confirmed_txs(nonce_from=3, block_from=11)] == [1, 2, 3]
    assert store.confirmed_txs() == [] and store.reorged_txs() == []

    store.reopen_tx(ids[3])  # a reorg took its block
    again = store.tx(ids[3])
    assert (again.status, again.mined_hash, again.block_number, again.reorgs) == (
        TxStatus.PENDING, None, None, 1)
    assert [t.id for t in store.reorged_txs()] == [ids[3]]
    assert store.newest_receipt_block() == (12, bytes([102]) * 32)
    store.update_tx(ids[3], TxStatus.CONFIRMED, mined_hash=b"\x03" * 32, block_number=14,
                    block_hash=b"\x99" * 32, receipt_status=1)
    assert store.reorged_txs() == [] and store.tx(ids[3]).reorgs == 1  # mined again


def test_store_is_bound_to_one_chain_and_deployment(tmp_path):
    market = "0x" + "Ab" * 20
    store = Store(tmp_path / "agent.db")
    store.bind_chain(31337, b"g" * 32, market, 5)
    store.close()
    again = Store(tmp_path / "agent.db")
    again.bind_chain(31337, b"g" * 32, market.lower(), 5)  # the same chain: fine (any case)
    for other in [(31337, b"G" * 32, market, 5), (1, b"g" * 32, market, 5),
                  (31337, b"g" * 32, "0x" + "cd" * 20, 5), (31337, b"g" * 32, market, 6)]:
        with pytest.raises(StoreError, match=r"belongs to another chain or deployment \(chain "
                                             r"31337, genesis 0x6767.*point db_path at a new file"):
            again.bind_chain(*other)


def test_version_3_rows_are_read_as_records(tmp_path):
    """A store an agent of schema 3 wrote (a job's step in flight and its seats inside its
    JSON) is migrated: both move to their columns, the rest reads as the typed record."""
    path = tmp_path / "agent.db"
    Store(path).close()
    with sqlite3.connect(path) as db:  # back to version 3's jobs table
        db.execute("DROP TABLE jobs")
        db.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, model_id BLOB NOT NULL, state TEXT NOT NULL,"
                   " reward TEXT NOT NULL, collateral TEXT NOT NULL, data TEXT NOT NULL, updated_at REAL NOT NULL)")
        data = {"r": 1, "client": TERMS.client, "input": b"hi".hex(), "block": 4, "claim_deadline": 10,
                "commit_deadline": 20, "reveal_deadline": 30, "pending": {"kind": "deliver", "tx": 6},
                "seats": [0], "last_tx": 5, "seat_collateral": 7, "slashed": {"0": 2**200},
                "settled": {"status": 3, "digest": "ee" * 32}, "an_old_key": 1}
        db.execute("INSERT INTO jobs VALUES ('12', ?, 'claimed', '5', '7', ?, 0)", (MODEL, json.dumps(data)))
        db.execute("PRAGMA user_version=3")
    store = Store(path)
    job = store.job(12)
    assert store.schema_version == SCHEMA_VERSION == 6
    assert job.quiet_until == 0 and store.awake_ids(JobState.CLAIMED, 1) == [12]
    assert (job.terms, job.round, job.pending, job.seats, job.last_tx, job.seat_collateral) == (
        Terms(1, TERMS.client, b"hi", 4), Round(10, 20, 30), Pending(Step.DELIVER, 6), (0,), 5, 7)
    assert job.slashed == {0: 2**200} and job.settled == Settlement(JobStatus.FINALIZED, b"\xee" * 32)
    assert store.pending_steps(JobState.CLAIMED) == {(6, Step.DELIVER): [12]}
