"""The output log that fans a process's stream out to its attachments (no containers needed)."""

from __future__ import annotations

import asyncio

from gardend.backend.output import Cursor, OutputLog


class Producer:
    def __init__(self, log: OutputLog) -> None:
        self.paused = False
        log.throttle_with(self.pause, self.resume)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


async def read_all(log: OutputLog, cursor: Cursor) -> bytes:
    data = b""
    while chunk := await log.read(cursor):
        data += chunk
        log.advance(cursor, len(chunk))
    return data


async def test_every_cursor_reads_the_whole_stream() -> None:
    log = OutputLog()
    first, second = log.cursor(), log.cursor()
    log.connect(first)
    log.connect(second)
    for part in (b"a" * 100_000, b"b", b"c" * 300_000):
        log.append(part)
    log.close()
    expected = b"a" * 100_000 + b"b" + b"c" * 300_000
    assert await read_all(log, first) == expected
    assert await read_all(log, second) == expected


async def test_a_new_cursor_starts_where_delivery_stopped() -> None:
    log = OutputLog()
    reader = log.cursor()
    log.connect(reader)
    log.append(b"delivered ")
    log.advance(reader, len(await log.read(reader)))
    log.release(reader)
    log.append(b"kept for the next attacher")
    later = log.cursor()
    log.close()
    assert await read_all(log, later) == b"kept for the next attacher"


async def test_a_full_log_pauses_its_producer_until_the_reader_catches_up() -> None:
    log = OutputLog(capacity=10)
    producer = Producer(log)
    reader = log.cursor()
    log.connect(reader)
    log.append(b"0123456789")
    assert producer.paused
    log.advance(reader, 4)
    assert not producer.paused


async def test_nobody_attached_keeps_undelivered_output_and_pauses_when_full() -> None:
    log = OutputLog(capacity=8)
    producer = Producer(log)
    log.append(b"12345678")
    assert producer.paused
    assert log.undelivered() == b"12345678"


async def test_a_declined_stream_drops_output_instead_of_blocking() -> None:
    log = OutputLog(capacity=8)
    producer = Producer(log)
    cursor = log.cursor()
    log.decline(cursor)
    log.append(b"123456789012")
    assert not producer.paused
    assert log.undelivered() == b""
    assert log.base == log.end == 12


async def test_a_finished_cursor_reads_up_to_its_limit_then_ends() -> None:
    log = OutputLog()
    cursor = log.cursor()
    log.connect(cursor)
    log.append(b"before")
    log.finish(cursor)
    log.append(b"after")
    assert await asyncio.wait_for(read_all(log, cursor), 5) == b"before"


async def test_a_waiting_reader_wakes_for_data_and_for_eof() -> None:
    log = OutputLog()
    cursor = log.cursor()
    log.connect(cursor)
    reading = asyncio.create_task(read_all(log, cursor))
    await asyncio.sleep(0)
    log.append(b"x")
    await asyncio.sleep(0)
    log.close()
    assert await asyncio.wait_for(reading, 5) == b"x"
