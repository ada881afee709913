"""A record whose header key is not UTF-8 is handed over, not left to stop its consumer.

Kafka header keys are strings, but a broker stores whatever bytes a producer sends. aiokafka
decodes every key while it parses a fetch (in its C parser and in its Python one), so one
such key raises UnicodeDecodeError out of `getmany`. The records fetched with it are lost
from that call, the same record is fetched and fails again, and FastStream's consume loop,
which catches only KafkaError, ends the subscriber: nothing on that partition is consumed
again. Anyone who can write to the check-in topic could stop claims this way.

Here aiokafka's fetcher keeps each fetch's raw bytes. When parsing them fails that way, the
rest of the fetch, from the batch that failed, is parsed again by aiokafka's Python parser
over a buffer whose keys decode with `surrogateescape`. The record then reaches the
consumer with its key's bytes kept in the text, the envelope check refuses it
(shared/envelope.parse_headers), and it is dead-lettered like any other poison message.
aiokafka skips the records it already handed over by offset, so none is given twice.

Only a fetch that fails pays for this: every other fetch runs aiokafka's C parser as
before, the one difference being that its records object also keeps the bytes.

This leans on aiokafka internals (the fetcher's module-level names, `PartitionRecords`,
`_DefaultRecordBatchPy._read_msg`), which is why pyproject pins aiokafka to one minor
version; tests/integration/shared/test_poison_header_key.py fails if an upgrade breaks it.
"""

from __future__ import annotations

from typing import Any, SupportsIndex, overload

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.legacy_records import LegacyRecordBatch
from aiokafka.record.memory_records import MemoryRecords

# A batch starts with its base offset (int64) and its length (int32); then, at byte 16,
# the magic byte: 2 for the record batches that carry headers, 0 or 1 for the legacy ones.
_LENGTH_AT = 8
_LOG_OVERHEAD = 12
_MAGIC_AT = 16


class _RecordsKeepingBytes(MemoryRecords):  # type: ignore[misc]
    """aiokafka's own records object (its C parser), which also keeps the fetched bytes."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw)
        self.raw = raw


class _EscapingBuffer(bytearray):
    """A batch's bytes whose slices decode with `surrogateescape`: a header key that is not
    UTF-8 becomes text that keeps its bytes (and is not printable, which the envelope
    check notices)."""

    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> _EscapingBuffer: ...
    def __getitem__(self, index: SupportsIndex | slice) -> int | _EscapingBuffer:
        if isinstance(index, slice):
            return _EscapingBuffer(super().__getitem__(index))
        return super().__getitem__(index)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "surrogateescape")


class _BatchEscapingKeys(_DefaultRecordBatchPy):  # type: ignore[misc]
    _buffer: bytearray

    def _read_msg(self, *args: Any) -> Any:
        # After _maybe_uncompress, which may have replaced the buffer.
        if not isinstance(self._buffer, _EscapingBuffer):
            self._buffer = _EscapingBuffer(self._buffer)
        return super()._read_msg(*args)


class _RecordsEscapingKeys:
    """The batches of a fetch that end after `resume_at`, parsed by `_BatchEscapingKeys`
    (legacy batches carry no headers and parse as always)."""

    def __init__(self, raw: bytes, resume_at: int) -> None:
        self._batches: list[Any] = []
        view = memoryview(raw)
        pos = 0
        while pos + _LOG_OVERHEAD <= len(raw):
            end = pos + _LOG_OVERHEAD + int.from_bytes(view[pos + _LENGTH_AT : pos + 12], "big")
            if end > len(raw):  # a fetch may end in part of a batch, which is fetched again
                break
            piece = view[pos:end]
            pos = end
            magic = piece[_MAGIC_AT]
            batch = _BatchEscapingKeys(piece) if magic >= 2 else LegacyRecordBatch(piece, magic)
            if batch.next_offset > resume_at:
                self._batches.append(batch)

    def has_next(self) -> bool:
        return bool(self._batches)

    def next_batch(self) -> Any:
        return self._batches.pop(0) if self._batches else None


class _PartitionRecordsGuarded(fetcher.PartitionRecords):  # type: ignore[misc]
    _records: Any  # _RecordsKeepingBytes, until a fetch fails; then _RecordsEscapingKeys

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except UnicodeDecodeError:
            # The failed generator is finished; start aiokafka's own again over the same
            # bytes, parsed so that keys cannot fail. `next_fetch_offset` is one past the
            # last record handed over: earlier ones are skipped by aiokafka itself.
            self._records = _RecordsEscapingKeys(self._records.raw, self.next_fetch_offset)
            self._records_iterator = self._unpack_records()
            return super().__next__()


def install() -> None:
    """Make every aiokafka consumer in this process use the guarded parsing (idempotent)."""
    fetcher.MemoryRecords = _RecordsKeepingBytes
    fetcher.PartitionRecords = _PartitionRecordsGuarded
