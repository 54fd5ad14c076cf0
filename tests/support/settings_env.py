"""The environment variables chat_project/settings.py reads, found in its source."""

from __future__ import annotations

import re

from chat_project.kafka_security import KAFKA_SECURITY_VARIABLES
from tests.support.stack import ROOT

SETTINGS = ROOT / "chat_project" / "settings.py"


def settings_variables() -> set[str]:
    """Return the variables the settings read (env, env_bool, env_int, env_float, os.environ, Kafka security)."""
    text = SETTINGS.read_text()
    names = set(re.findall(r'\benv(?:_bool|_int|_float)?\(\s*"([A-Z][A-Z0-9_]*)"', text))
    names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]*)"', text))
    # Kafka's security variables, which the settings read through chat_project/kafka_security.py.
    names |= set(KAFKA_SECURITY_VARIABLES.values())
    assert len(names) > 20, "the pattern no longer finds the settings' variables"
    return names
