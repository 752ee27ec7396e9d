"""The Verinfer provider agent: watches the marketplace, computes jobs, manages transactions.

Modules: config (settings), store (sqlite state), txmanager (nonce owner), watcher
(events + reorgs), batching, metrics, logs, dashboard, service (lifecycle runner).
"""
