"""Verinfer's tests. A package so that `tests.support` resolves here: pymultihash
installs a top-level `tests` package into site-packages, which would otherwise win."""
