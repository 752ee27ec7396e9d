"""The provider's job logic: which jobs to take, and carrying each one to payment.

The store is the only source of truth (so a restart simply carries on from it); each
job is a typed `JobRecord` (provider/agent/records.py). One thread writes it, the
`JobWorker`'s (worker.py, a service), whose tick runs these phases in order:

- events: the watcher (provider/agent/watcher.py) hands each range of marketplace
  events to `JobBook` (book.py), which records what the chain announces: jobs posted
  for the models we serve, challenges, and each held job's final outcome;
- then it moves held jobs forward, always through the tx manager and the batch entry
  points: reconcile.py (our mined steps and reorgs) -> take.py (claims) -> seal.py
  (engine, then commit or deliver) -> settle.py (reveal, finalize), sharing steps.py
  (send, fail, refuse, give up). settlement.py alone decides a settled job's outcome.

  r >= 2 and re-execution rounds (seats drawn by stake, contracts/modules/sortition.vy):
           SEEN -claim_many-> CLAIMING -> CLAIMED -engine, salt stored, commit_many->
           COMMITTED -reveal_many-> REVEALED -finalize_many-> PAID | SLASHED | RELEASED
           CLAIMING -> UNDRAWN (no seat drawn to us) -(the draw's take window over:
           its untaken seats may be drawn again)-> SEEN -claim_many-> ...
  r == 1:  SEEN -claim_many-> CLAIMING (the engine computes meanwhile) -> CLAIMED
           -deliver_many, once the claim's receipt is in-> REVEALED -(after the
           challenge window)-> PAID | SLASHED
  Any job: refused by policy or input -> REFUSED; seats all taken by others -> LOST;
           a step failing MAX_FAILURES times -> FAILED; cancelled -> CANCELLED.

A claim takes every seat of the round drawn to us: the record's `seats` lists them
(and an r = 1 job's seat 0), and one commit and one reveal cover them all. The engine
behind each model is a `JobRunner` (runner.py): bytes in, result bytes out.

Reorgs: a step of ours a reorg took is sent again at its nonce and the job re-derived
from the contract once it is mined again; a settlement (PAID, SLASHED, RELEASED) is
re-checked until its block is deeper than the reorg window, and one a reorg took sends
the job back to the step it needs (reveal again, finalize again): reconcile.py.
"""

from provider.agent.jobs.book import WATCHED_EVENTS, JobBook, MarketplaceLogs
from provider.agent.jobs.reconcile import RECEIPT_STEPS
from provider.agent.jobs.runner import JobRunner
from provider.agent.jobs.settlement import outcome
from provider.agent.jobs.steps import MAX_FAILURES
from provider.agent.jobs.worker import JobWorker

__all__ = ["MAX_FAILURES", "RECEIPT_STEPS", "WATCHED_EVENTS", "JobBook", "JobRunner", "JobWorker",
           "MarketplaceLogs", "outcome"]
