"""The audit log's file and the auditor's choice, without a chain: records survive a
reload (the last version of each job wins), a line cut short by a crash is dropped, a
foreign file is refused; the keyed choice takes the asked share and depends on the key."""

import secrets

import pytest

from gateway.audit import chosen
from gateway.audit_log import AuditLog, AuditRecord

GATEWAY = "0x00000000000000000000000000000000000000aa"


def test_records_survive_a_reload_and_the_last_version_wins(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.put(AuditRecord(job_id=256, key="key_a", delivered="0x01", from_block=5))
    log.put(AuditRecord(job_id=257, key="key_b", delivered="0x02", from_block=5))
    log.put(log.get(256).model_copy(update={"ours": "0x03", "state": "challenged", "challenger": GATEWAY,
                                            "bond": 4 * 10**16}))
    log.put(log.get(256).model_copy(update={"state": "done", "outcome": "won", "refund": 10**16}))
    log.put(log.get(257).model_copy(update={"ours": "0x02", "state": "done", "outcome": "match"}))

    again = AuditLog(log.path)
    assert again.get(256).outcome == "won" and again.get(256).bond == 4 * 10**16
    assert [r.job_id for r in again.records(key="key_b", every_key=False)] == [257]
    assert again.unfinished() == []
    assert again.counters(account=GATEWAY) == {"audited": 2, "mismatched": 1, "challenged": 1, "won": 1, "lost": 0,
                                               "unchallenged": 0, "refused": 0, "errors": 0, "pending": 0}
    # Another account's challenge is not the gateway's.
    assert again.counters(account="0x" + "bb" * 20)["challenged"] == 0


def test_a_line_cut_short_is_dropped_and_the_log_goes_on(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.put(AuditRecord(job_id=256, delivered="0x01", from_block=5))
    with open(log.path, "a") as f:  # a crash in the middle of the next write
        f.write(AuditRecord(job_id=257, delivered="0x02", from_block=5).model_dump_json()[:40])
    again = AuditLog(log.path)
    assert [r.job_id for r in again.unfinished()] == [256]
    again.put(AuditRecord(job_id=258, delivered="0x03", from_block=6))
    assert sorted(r.job_id for r in AuditLog(log.path).records()) == [256, 258]


def test_a_file_that_is_no_audit_log_is_refused(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"not": "a record"}\n' + AuditRecord(job_id=1, delivered="0x01", from_block=0).model_dump_json()
                    + "\n")
    with pytest.raises(ValueError, match="audit.jsonl:1: not an audit record"):
        AuditLog(path)


def test_the_keyed_choice_takes_the_share_asked_and_depends_on_the_key():
    key, other = secrets.token_bytes(32), secrets.token_bytes(32)
    ids = range(256, 256 + 20_000)
    picked = {j for j in ids if chosen(key, j, 0.1)}
    assert 0.09 < len(picked) / len(ids) < 0.11  # binomial: 0.1 +- 0.002 (5 sigma: 0.011)
    assert {j for j in ids if chosen(key, j, 0.1)} == picked  # the same key: the same choice
    assert len(picked & {j for j in ids if chosen(other, j, 0.1)}) < 0.2 * len(picked)  # another: independent
    assert all(chosen(key, j, 1.0) for j in ids) and not any(chosen(key, j, 0.0) for j in ids)
