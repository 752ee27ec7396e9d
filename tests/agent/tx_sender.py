"""Helper process for the tx manager restart test: sends pings until it is killed.

    tx_sender.py RPC_URL DB_PATH PING_ADDRESS
Prints "sent <intent id> <nonce>" after each send.
"""

import sys
import time

from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from client.transport import http_web3
from provider.agent.config import TxConfig
from provider.agent.store import Store
from provider.agent.txmanager import TxManager
from tests.support.anvil import ANVIL_KEYS

url, db_path, ping_address = sys.argv[1:4]
# ping(uint256 n, bytes note) with note = b"": head (n, offset 0x40), then length 0.
selector = function_signature_to_4byte_selector("ping(uint256,bytes)")
txm = TxManager(http_web3(url), Account.from_key(ANVIL_KEYS[1]), Store(db_path),
                TxConfig(stuck_blocks=1000, stuck_seconds=3600))
txm.setup()
for n in range(10_000):
    data = selector + n.to_bytes(32, "big") + (64).to_bytes(32, "big") + bytes(32)
    tx_id = txm.send(ping_address, data, kind="ping", gas=100_000)
    print(f"sent {tx_id} {txm.store.tx(tx_id).nonce}", flush=True)
    time.sleep(0.02)
