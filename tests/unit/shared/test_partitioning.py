"""Our partitioner must agree with Kafka's default one on every key, or a key's records
would be split between two partitions and lose their order."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from shared.partitioning import murmur2, partition_for


@given(st.binary(max_size=200))
def test_the_hash_is_the_java_clients(key: bytes) -> None:
    assert murmur2(key) == reference_murmur2(key)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=300))
def test_a_key_goes_where_the_default_partitioner_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_known_hashes_of_the_java_client() -> None:
    # Values from the Java client's own test (UtilsTest.testMurmur2), as unsigned ints.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        bytes([ord("a"), ord("b"), ord("c")]): 479470107,
    }
    for key, signed in cases.items():
        assert murmur2(key) == signed & 0xFFFFFFFF
