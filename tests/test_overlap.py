"""Reading ahead and writing behind the frame loop (ferkit.video.overlap): order, bounds, errors,
and no thread left running or touching a released source."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import overlap_threads

from ferkit.errors import MediaError
from ferkit.video.overlap import ReadAhead, WriteBehind


def counting(n: int, log: list, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise MediaError(f"frame {i} cannot be decoded")
        log.append((i, threading.current_thread().name))
        yield i * 10


def test_read_ahead_keeps_order_and_reads_in_its_own_thread():
    log = []
    with ReadAhead(counting(9, log), depth=3) as reader:
        assert list(reader) == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    assert [i for i, _ in log] == list(range(9))
    assert {name for _, name in log} != {threading.current_thread().name}
    assert all(name.startswith("ferkit-read") for _, name in log)
    assert overlap_threads() == []


def test_read_ahead_stays_within_its_depth():
    log = []
    reader = ReadAhead(counting(100, log), depth=3)
    items = iter(reader)
    assert next(items) == 0
    time.sleep(0.2)  # let the reader run as far ahead as it may
    assert len(log) == 4  # the item handed out and three more
    reader.close()
    assert len(log) == 4 and overlap_threads() == []


def test_a_read_error_reaches_the_consumer_at_its_frame():
    seen = []
    with pytest.raises(MediaError, match="frame 5 cannot be decoded"):
        with ReadAhead(counting(9, [], fail_at=5), depth=2) as reader:
            for item in reader:
                seen.append(item)
    assert seen == [0, 10, 20, 30, 40]
    assert overlap_threads() == []


def test_close_waits_for_the_read_in_progress():
    started, release, finished = threading.Event(), threading.Event(), []

    def slow():
        yield 1
        started.set()
        release.wait(5)
        finished.append(True)
        yield 2

    reader = ReadAhead(slow(), depth=1)
    assert next(iter(reader)) == 1
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    reader.close()  # returns only after the read in progress is done: the source may then be released
    assert finished == [True] and overlap_threads() == []


def test_write_behind_keeps_order_in_one_thread():
    written = []
    with WriteBehind(lambda i, text: written.append((i, text, threading.current_thread().name)), depth=2) as w:
        for i in range(7):
            w.add(i, "abcdefg"[i])
        w.finish()
    assert [(i, text) for i, text, _ in written] == list(enumerate("abcdefg"))
    assert all(name.startswith("ferkit-write") for _, _, name in written)


def test_write_behind_waits_when_depth_calls_are_queued():
    gate, written = threading.Event(), []

    def write(i):
        gate.wait(5)
        written.append(i)

    writer = WriteBehind(write, depth=2)
    adder = threading.Thread(target=lambda: [writer.add(i) for i in range(5)], daemon=True)
    adder.start()
    time.sleep(0.3)
    assert adder.is_alive() and written == []  # blocked: one running and two waiting is the most
    gate.set()
    adder.join(5)
    writer.finish()
    assert written == [0, 1, 2, 3, 4]
    writer.close()


def test_a_write_error_reaches_the_caller_and_no_later_write_runs():
    written = []

    def write(i):
        if i == 2:
            raise MediaError("disk full")
        written.append(i)

    writer = WriteBehind(write, depth=3)
    with pytest.raises(MediaError, match="disk full"):
        for i in range(6):
            writer.add(i)
        writer.finish()
    writer.close()
    assert written == [0, 1]
    assert overlap_threads() == []


@pytest.mark.parametrize("length", [0, 1, 2])
def test_a_source_shorter_than_the_depth(length):
    with ReadAhead(counting(length, []), depth=4) as reader:
        assert list(reader) == [0, 10][:length]


@pytest.mark.parametrize("depth, read", [(0, 2), (1, 2), (2, 3)])
def test_read_ahead_depth_is_at_least_one(depth, read):
    log = []
    reader = ReadAhead(counting(100, log), depth=depth)
    assert next(iter(reader)) == 0
    time.sleep(0.2)
    assert len(log) == read  # the item handed out and `depth` (at least one) more
    reader.close()


def test_close_cancels_the_reads_not_started():
    gate, log = threading.Event(), []

    def gated():
        for i in range(10):
            gate.wait(5)
            log.append(i)
            yield i

    reader = ReadAhead(gated(), depth=4)
    threading.Timer(0.2, gate.set).start()
    reader.close()  # the first read is under way, three more wait in the queue
    assert log == [0]


def test_write_behind_close_drops_the_writes_not_started():
    gate, written = threading.Event(), []

    def write(i):
        gate.wait(5)
        written.append(i)

    writer = WriteBehind(write, depth=4)
    for i in range(4):
        writer.add(i)
    threading.Timer(0.2, gate.set).start()
    writer.close()
    assert written == [0]


@pytest.mark.parametrize("depth, queued", [(1, 1), (2, 2), (0, 1)])
def test_write_behind_holds_depth_waiting_calls_besides_the_running_one(depth, queued):
    gate = threading.Event()
    writer = WriteBehind(lambda i: gate.wait(5), depth=depth)
    adder = threading.Thread(target=lambda: [writer.add(i) for i in range(6)], daemon=True)
    adder.start()
    time.sleep(0.3)
    # add() returns while at most `depth` (at least one) calls wait: the next add() queues one more,
    # then takes the oldest off the queue and waits for it
    assert adder.is_alive() and len(writer.pending) == queued
    gate.set()
    adder.join(5)
    writer.finish()
    writer.close()
