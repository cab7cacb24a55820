"""The event log: the one source of truth. One interface, embedded and Kafka backends."""
