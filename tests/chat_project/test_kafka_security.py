"""Kafka's security settings: read from the environment once, carried by every client the project makes.

That they work against a secured broker is shown in tests/security.
"""

from chat_project.kafka_security import KAFKA_SECURITY_VARIABLES, kafka_security
from kafka_bridge.produce.clients import base_config, consumer_config, producer_config, relay_producer_config


def test_each_variable_sets_its_librdkafka_setting_and_unset_ones_are_left_out():
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "chat",
        "KAFKA_SASL_PASSWORD": "pw",
        "KAFKA_SSL_CA_LOCATION": "/ca.pem",
        "KAFKA_SSL_KEY_PASSWORD": "",
    }
    assert kafka_security(lambda name: env.get(name, "")) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "chat",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }
    assert kafka_security(lambda name: "") == {}
    assert set(KAFKA_SECURITY_VARIABLES.values()) >= {"KAFKA_SSL_CERTIFICATE_LOCATION", "KAFKA_SSL_KEY_LOCATION"}


def test_every_client_the_project_makes_carries_them(settings):
    settings.KAFKA_SECURITY = {"security.protocol": "SASL_SSL", "sasl.username": "chat", "sasl.password": "pw"}
    # Producers (shared, relay, dead letters), consumers (loops, dead-letter commands) and
    # admin clients (kafka_topics, kafka_status, readiness) are all made from these.
    for config in (base_config(), producer_config(), relay_producer_config(), consumer_config("group")):
        assert {k: config[k] for k in settings.KAFKA_SECURITY} == settings.KAFKA_SECURITY
