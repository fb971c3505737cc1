import threading
import time

import pytest

from resnet_viz.slots import Slots


def test_never_more_than_capacity_and_everyone_served():
    slots = Slots(2)
    peak, inside, served = [0], [0], []
    lock = threading.Lock()

    def work(i):
        with slots.hold():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1
                served.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and sorted(served) == list(range(10))
    assert slots.active == 0 and slots.waiting == 0


def test_waiters_are_told_how_many_are_ahead_and_served_in_order():
    slots = Slots(1)
    release = threading.Event()
    seen, order = [], []

    def holder():
        with slots.hold():
            release.wait(5)
            order.append("holder")

    def waiter(name, delay):
        time.sleep(delay)
        with slots.hold(on_wait=lambda ahead: seen.append((name, ahead)), poll=0.02):
            order.append(name)

    threads = [
        threading.Thread(target=holder),
        threading.Thread(target=waiter, args=("a", 0.05)),
        threading.Thread(target=waiter, args=("b", 0.15)),
    ]
    for t in threads:
        t.start()
    time.sleep(0.4)
    release.set()
    for t in threads:
        t.join(5)
    assert order == ["holder", "a", "b"]
    assert ("a", 1) in seen and ("b", 2) in seen


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Slots(0)


def test_model_lock_readers_share_writers_exclude():
    from torch import nn

    from resnet_viz.locks import model_lock

    model = nn.Linear(2, 2)
    lock = model_lock(model)
    assert model_lock(model) is lock
    state = {"readers": 0, "max_readers": 0, "writer_overlap": False}
    guard = threading.Lock()
    barrier = threading.Barrier(4)

    def reader():
        barrier.wait()
        with lock.shared():
            with guard:
                state["readers"] += 1
                state["max_readers"] = max(state["max_readers"], state["readers"])
            time.sleep(0.05)
            with guard:
                state["readers"] -= 1

    def writer():
        barrier.wait()
        time.sleep(0.01)
        with lock.exclusive():
            with lock.exclusive(), lock.shared():  # re-entrant in the writing thread
                with guard:
                    state["writer_overlap"] |= state["readers"] > 0

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert state["max_readers"] >= 2 and not state["writer_overlap"]


def test_a_waiter_knows_its_place_and_leaves_the_line_when_cancelled():
    slots = Slots(1)
    first, second = object(), object()
    assert slots.acquire(first) and slots.position(first) is None  # holding, not waiting
    cancel, result = threading.Event(), []
    waiter = threading.Thread(target=lambda: result.append(slots.acquire(second, cancelled=cancel, poll=0.01)))
    waiter.start()
    deadline = time.monotonic() + 5
    while slots.position(second) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slots.position(second) == 1
    cancel.set()
    waiter.join(5)
    assert result == [False] and slots.position(second) is None and slots.waiting == 0
    slots.release()
    assert slots.active == 0


def test_a_held_block_is_skipped_when_its_wait_is_cancelled():
    """``hold(cancelled=...)`` raises LeftTheLine instead of running the block, and leaves the line."""
    from resnet_viz.slots import LeftTheLine

    slots = Slots(1)
    assert slots.acquire(object())
    cancel, ran, raised = threading.Event(), [], []

    def wait():
        try:
            with slots.hold(cancelled=cancel, poll=0.01):
                ran.append(True)
        except LeftTheLine:
            raised.append(True)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while slots.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    cancel.set()
    waiter.join(5)
    assert raised == [True] and ran == [] and slots.waiting == 0 and slots.active == 1
    slots.release()
    with slots.hold(cancelled=cancel):  # a free slot is taken even when the event is already set
        assert slots.active == 1
    assert slots.active == 0
