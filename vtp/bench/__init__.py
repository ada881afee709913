"""`vtp bench`: throughput and latency of the production path, measured against the raw
ceilings of the broker and the database on the same machine in the same run."""
