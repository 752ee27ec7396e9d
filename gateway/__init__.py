"""Verinfer gateway: the OpenAI HTTP API on top of the SDK (``verinfer serve``).

Applications that call OpenAI-style embeddings switch to verifiable inference by
changing ``base_url``: the gateway posts their inputs as marketplace jobs (concurrent
requests batched into shared posts), waits, checks every result against the digest
the chain settled on, and answers in OpenAI's shape with a ``verinfer`` object per item.

Modules: ``config`` (settings, policy), ``keys`` (hashed API keys, spending limits),
``errors`` (OpenAI-shaped errors), ``service`` (the SDK calls and the batcher), ``app``
(the FastAPI routes), ``server`` (uvicorn, redacted logs), ``cli`` (commands); the
explorer page at ``/``: ``explorer_index`` (events folded into jobs, providers, models,
totals), ``explorer_sync`` (following the chain, rewinding on reorgs), ``explorer``
(the page, its routes and the background sync).
Importing this package (or ``gateway.cli``) loads neither FastAPI nor web3.
"""
