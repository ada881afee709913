"""The embedded dev stack: a Kafka-protocol broker, PostgreSQL, an SMTP sink and the services."""
