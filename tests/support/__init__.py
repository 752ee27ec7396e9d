"""Helpers shared by test folders (`from tests.support.anvil import ...`): anvil nodes,
an RPC relay for outages, funded accounts, and raw deploys of this project's contracts."""
