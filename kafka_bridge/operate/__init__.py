"""Operating: the Kafka report, topic provisioning, dead letters, and the staff pages that show them."""
