"""client.transport.retry and Backoff: riding out a real outage (RpcProxy closes its
port, then listens again), giving up at a deadline or when stopped, and never
retrying a node's error answer."""
from __future__ import annotations

import threading
import time

import pytest
from web3.exceptions import Web3RPCError

from client.errors import RpcUnavailable
from client.transport import Backoff, http_web3, retry
from tests.support.anvil import RpcProxy, free_port

QUICK = Backoff(base=0.05, cap=0.1)


def counted(fn):
    """``fn`` with a count of the calls made to it."""
    def call():
        call.count += 1
        return fn()
    call.count = 0
    return call


def test_retry_rides_out_an_outage(node):
    proxy = RpcProxy(node.url)
    proxy.down()
    head = counted(http_web3(proxy.url, timeout=2).eth.get_block_number)
    threading.Timer(0.5, proxy.up).start()
    try:
        assert retry(head, what="head", deadline=20, backoff=QUICK) == node.w3().eth.block_number
    finally:
        proxy.down()
    assert head.count >= 3  # refused while down, answered once up


def test_retry_gives_up_at_the_deadline_or_when_stopped():
    head = counted(http_web3(f"http://127.0.0.1:{free_port()}", timeout=1).eth.get_block_number)
    started = time.monotonic()
    with pytest.raises(RpcUnavailable, match=r"^head: endpoint unreachable after \d+ tries$"):
        retry(head, what="head", deadline=0.5, backoff=QUICK)
    assert 0.3 < time.monotonic() - started < 5 and head.count >= 3

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(RpcUnavailable, match="^head: stopped while endpoint unreachable$"):
        retry(head, what="head", stop=stop, backoff=QUICK)


def test_an_error_answer_is_not_retried(node):
    w3 = node.w3()
    bad = counted(lambda: w3.manager.request_blocking("eth_getBlockByNumber", ["not-a-block", False]))
    with pytest.raises(Web3RPCError):
        retry(bad, what="bad request", deadline=5, backoff=QUICK)
    assert bad.count == 1
