"""Kafka client security: which environment variable sets which librdkafka setting.

Declared once, without Django: the settings build every client's security
from it, and the tests build their own clients of a secured broker from a
stack's environment the same way.
"""

from __future__ import annotations

from collections.abc import Callable

# librdkafka setting -> the variable that sets it.
KAFKA_SECURITY_VARIABLES = {
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD",
}


def kafka_security(read: Callable[[str], str]) -> dict[str, str]:
    """Return the librdkafka security settings, reading each variable with `read` (unset or empty: left out)."""
    return {key: value for key, variable in KAFKA_SECURITY_VARIABLES.items() if (value := read(variable))}
