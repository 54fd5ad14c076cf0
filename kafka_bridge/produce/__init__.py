"""Producing: the Kafka clients, the outbox and its relay, and the header that marks this service's records."""
