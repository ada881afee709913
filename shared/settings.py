"""Settings common to every service; each service extends this with its own prefix.

Configuration decides which broker and database are used: the dev stack (`vtp up`) sets
`KAFKA_BOOTSTRAP_SERVERS` and the per-service `*_DATABASE_URL` for the processes it starts.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka import MAX_RECORD_BYTES


class ServiceSettings(BaseSettings):
    # A start-up error names the bad setting but never echoes values: they hold database
    # passwords and secrets, and the error ends up in the logs.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    # The largest event the outbox relay offers the broker; larger ones are parked (README,
    # operators). Keep it under the broker's `message.max.bytes`.
    kafka_max_record_bytes: int = Field(
        default=MAX_RECORD_BYTES, gt=0, validation_alias="KAFKA_MAX_RECORD_BYTES"
    )
    # The replicas of each topic a service creates at start. One for the embedded broker; on a
    # cluster at least its min.insync.replicas (deploy/kubernetes sets 3).
    kafka_topic_replication_factor: int = Field(
        default=1, ge=1, validation_alias="KAFKA_TOPIC_REPLICATION_FACTOR"
    )
    database_url: str  # each service reads it under its own prefix, e.g. CLAIMS_DATABASE_URL
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    http_host: str = "127.0.0.1"
    http_port: int = 0
    # Up to this many events of a service's main consumer in one transaction (check-ins in
    # claims, claim outcomes in cards and notifications): under load the per-batch round
    # trips and the commit are shared by more of them. Measured with `vtp bench`: 500 ->
    # 1000 gave ~+20 % throughput in claims; 2000 another ~+10 % but pushed the claims
    # process past 150 MB (a batch's holders bring their recent visits along for the
    # frequency limits). Cards and notifications at 1000: their memory unchanged (112-124
    # MB); the CPU saved per outcome (one transaction, inbox claim and handful of
    # statements per 1,000 instead of per 500) is within the run-to-run noise.
    consumer_max_records: int = 1000
    consumer_group_suffix: str = ""
    outbox_batch_size: int = 1000
    environment: str = Field(default="dev", validation_alias="VTP_ENVIRONMENT")
