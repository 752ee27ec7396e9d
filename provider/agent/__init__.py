"""The Verinfer provider agent: watches the marketplace, computes jobs, manages transactions.

Run it with `python -m provider.agent --config agent.toml` (see sample-config.toml), or
in process with `provider.agent.main.build_agent`.

Modules: config (settings), accounts (signing key), store (sqlite state), rpc (retry),
txmanager (nonce owner), watcher (events + reorgs: the job worker's first phase),
jobs (job logic), batching, metrics, logs, dashboard, service (lifecycle runner),
main (assembly + CLI).
"""
