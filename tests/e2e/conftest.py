"""The end-to-end tests' checks in cluster.py report like the tests' own (assert rewriting)."""

import pytest

pytest.register_assert_rewrite("cluster")
