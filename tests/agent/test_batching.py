"""Dynamic batcher: per-key grouping, release at max size or max wait, FIFO order."""

import threading

import pytest

from provider.agent.batching import Batcher


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_batch_is_released_at_once_and_split_at_max_size():
    batcher = Batcher(max_size=3, max_wait=10, clock=Clock())
    for i in range(7):
        batcher.put("m", i)
    assert batcher.ready() == ("m", [0, 1, 2])
    assert batcher.ready() == ("m", [3, 4, 5])
    assert batcher.ready() is None  # one item left, not waited long enough
    assert len(batcher) == 1


def test_partial_batch_waits_for_max_wait_from_its_oldest_item():
    clock = Clock()
    batcher = Batcher(max_size=10, max_wait=2.0, clock=clock)
    batcher.put("m", "a")
    clock.now += 1.5
    batcher.put("m", "b")
    assert batcher.ready() is None
    clock.now += 0.5  # 2.0 s after "a"
    assert batcher.ready() == ("m", ["a", "b"])
    assert batcher.ready() is None and len(batcher) == 0


def test_keys_are_batched_separately_oldest_expired_first():
    clock = Clock()
    batcher = Batcher(max_size=2, max_wait=1.0, clock=clock)
    batcher.put("late", 1)
    batcher.put("early", 2)
    clock.now += 0.4
    batcher.put("other", 3)
    clock.now += 0.6
    assert batcher.ready() == ("late", [1])
    assert batcher.ready() == ("early", [2])
    assert batcher.ready() is None  # "other" waited 0.6 s only
    batcher.put("other", 4)
    assert batcher.ready() == ("other", [3, 4])  # full


def test_remainder_keeps_its_waiting_time():
    clock = Clock()
    batcher = Batcher(max_size=2, max_wait=1.0, clock=clock)
    for i in range(3):
        batcher.put("m", i)
    assert batcher.ready() == ("m", [0, 1])
    clock.now += 1.0
    assert batcher.ready() == ("m", [2])


def test_blocking_get_wakes_for_a_full_batch_and_times_out_when_empty():
    batcher = Batcher(max_size=4, max_wait=60)
    got = []
    consumer = threading.Thread(target=lambda: got.append(batcher.get(timeout=30)))
    consumer.start()
    for i in range(4):
        batcher.put("m", i)
    consumer.join(30)
    assert got == [("m", [0, 1, 2, 3])]
    assert batcher.get(timeout=0.05) is None


def test_blocking_get_returns_partial_batch_after_max_wait():
    batcher = Batcher(max_size=100, max_wait=0.05)
    batcher.put("m", "only")
    assert batcher.get(timeout=30) == ("m", ["only"])


def test_drain_and_bad_arguments():
    batcher = Batcher(max_size=2, max_wait=5, clock=Clock())
    for i in range(3):
        batcher.put("a", i)
    batcher.put("b", 9)
    assert batcher.drain() == [("a", [0, 1]), ("b", [9]), ("a", [2])]
    assert len(batcher) == 0
    with pytest.raises(ValueError):
        Batcher(max_size=0, max_wait=1)
    with pytest.raises(ValueError):
        Batcher(max_size=1, max_wait=0)
