"""scripts/kafka.sh: one checkout switches between one broker, the cluster and the secured broker.

Each keeps a data directory of its own by default; one formatted for another
layout or mode is refused with what to do, before any JVM starts. The brokers
these tests would start are never started: the ports they name are free ones,
and each refusal comes first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.stack import ROOT, free_port

KAFKA_SH = ROOT / "scripts" / "kafka.sh"


def kafka_sh(*args: str, data_dir: Path | None = None, **variables: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        **({"KAFKA_DATA_DIR": str(data_dir)} if data_dir else {}),
        **variables,
    }
    return subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=120)


def test_each_layout_names_its_own_nodes():
    one = kafka_sh("bootstrap", KAFKA_PORT="9092")
    three = kafka_sh("bootstrap", KAFKA_BROKERS="3", KAFKA_PORT="9092")
    assert one.stdout.strip() == "127.0.0.1:9092"
    assert three.stdout.strip() == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
    plain = kafka_sh("client-env", KAFKA_PORT="9092")
    assert plain.stdout.strip() == "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092"


def test_a_data_dir_of_another_layout_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "layout").write_text("nodes=3\n")
    refused = kafka_sh("start", data_dir=tmp_path, KAFKA_BROKERS="1")
    assert refused.returncode != 0
    assert "formatted for nodes=3, not nodes=1" in refused.stderr
    assert "leave KAFKA_DATA_DIR unset" in refused.stderr
    assert not (tmp_path / "kafka.pid").exists()


def test_a_data_dir_of_the_other_security_mode_is_refused(tmp_path):
    # A single plaintext broker's formatted storage, as kafka.sh leaves it.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("node.id=1\n")
    (tmp_path / "layout").write_text("nodes=1\n")
    refused = kafka_sh("start", data_dir=tmp_path, KAFKA_SECURITY="sasl_ssl")
    assert refused.returncode != 0
    assert "formatted with KAFKA_SECURITY=plaintext, not sasl_ssl" in refused.stderr
    assert not (tmp_path / "security").exists()


def test_the_secured_broker_is_one_node():
    refused = kafka_sh("status", KAFKA_SECURITY="sasl_ssl", KAFKA_BROKERS="3")
    assert refused.returncode != 0
    assert "KAFKA_SECURITY=sasl_ssl runs one node" in refused.stderr
    # The secured broker alone is a layout kafka.sh knows: its status answers (not running).
    alone = kafka_sh("status", KAFKA_SECURITY="sasl_ssl", data_dir=None)
    assert "not running" in alone.stderr + alone.stdout
