"""docker-compose.yml, the Dockerfile and .dockerignore, checked without a Docker engine.

Debian's `docker-compose config` validates the compose file against the
compose specification and resolves it (interpolation, the `x-app` anchor,
env_file) as `docker compose up` would; the checks then read the result.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.settings_env import settings_variables
from tests.support.stack import ROOT

COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = ("setup", "web", "bridge")
SECRET = "a-secret-key-for-the-compose-test-that-is-long-enough-0123456789"


def compose_config(tmp_path, dotenv: str) -> subprocess.CompletedProcess:
    """Run `docker-compose config` on a copy of the compose file beside the given .env."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: `make test` installs it (apt-get install docker-compose)"
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    (tmp_path / ".env").write_text(dotenv)
    # Nothing from this process's environment (the tests export a secret key) may stand in for .env.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([docker_compose, "config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("compose")
    dotenv = (ROOT / ".env.example").read_text() + f"\nDJANGO_SECRET_KEY={SECRET}\n"
    result = compose_config(tmp_path, dotenv)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_without_a_secret_key_compose_refuses_to_start(tmp_path):
    result = compose_config(tmp_path, (ROOT / ".env.example").read_text())
    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY in .env" in result.stderr
    assert "${DJANGO_SECRET_KEY:?" in COMPOSE.read_text()


def volume_mount(volume: str | dict) -> tuple[str, str]:
    """Return (source, target) of a volume in short ("src:dst:rw", docker-compose v1) or long syntax."""
    if isinstance(volume, dict):
        return volume["source"], volume["target"]
    source, target, *_mode = volume.split(":")
    return source, target


def published_port(port: str | dict) -> int:
    """Return the host port of a port mapping in short ("ip:host:container/tcp") or long syntax."""
    if isinstance(port, dict):
        return int(port["published"])
    return int(port.split("/")[0].split(":")[-2])


def test_the_seeds_services_are_all_there(resolved):
    assert set(resolved["services"]) == {"kafka", "kafka-ui", "postgres", "redis", *APP_SERVICES}


def test_one_image_built_once_for_setup_web_and_bridge(resolved):
    services = resolved["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    builds = {yaml.safe_dump(services[name]["build"]) for name in APP_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    assert {name for name, service in services.items() if "build" in service} == set(APP_SERVICES)
    (image,) = images
    others = {service["image"] for name, service in services.items() if name not in APP_SERVICES}
    assert image not in others


def test_kafka_is_kraft_and_keeps_its_data_on_the_images_volume(resolved):
    kafka = resolved["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert env["CLUSTER_ID"]
    # The apache/kafka image declares VOLUME /var/lib/kafka/data; its own log.dirs default is under /tmp.
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    (volume,) = kafka["volumes"]
    source, target = volume_mount(volume)
    assert target == "/var/lib/kafka/data"
    assert source in resolved["volumes"], "a named volume"
    assert "healthcheck" in kafka


def test_kafka_ui_is_on_8090_and_talks_to_the_broker(resolved):
    ui = resolved["services"]["kafka-ui"]
    assert [published_port(p) for p in ui["ports"]] == [8090]
    advertised = resolved["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert ui["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == advertised.split("://", 1)[1]
    assert ui["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_setup_runs_once_before_web_and_bridge(resolved):
    services = resolved["services"]
    setup = services["setup"]
    command = " ".join(setup["command"])
    assert "manage.py migrate" in command and "manage.py kafka_topics" in command
    assert setup["restart"] == "no"
    for dependency in ("postgres", "redis", "kafka"):
        assert setup["depends_on"][dependency]["condition"] == "service_healthy"
    for name in ("web", "bridge"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize(
    ("name", "url"), [("web", "http://127.0.0.1:8000/readyz"), ("bridge", "http://127.0.0.1:9101/readyz")]
)
def test_web_and_bridge_have_readiness_healthchecks_and_restart(resolved, name, url):
    service = resolved["services"][name]
    assert url in " ".join(service["healthcheck"]["test"])
    assert service["restart"] == "unless-stopped"
    for other in ("kafka", "postgres", "redis", "kafka-ui"):
        assert resolved["services"][other]["restart"] == "unless-stopped"


def test_settings_come_from_an_env_file(resolved):
    for name in APP_SERVICES:
        # .env.example's settings reach the containers; the compose file's own win over them.
        env = resolved["services"][name]["environment"]
        assert env["DJANGO_ALLOWED_HOSTS"] == "localhost,127.0.0.1"
        assert env["DJANGO_DEBUG"] == "0"
        assert env["DJANGO_SECRET_KEY"] == SECRET
    assert "env_file" in yaml.safe_load(COMPOSE.read_text())["x-app"]


def raw_app_environment(raw: dict) -> dict[str, str]:
    """Return what the compose file itself sets for the project's processes (not what env_file brings)."""
    variables: dict[str, str] = {}
    for name in APP_SERVICES:
        service = raw["services"][name]
        variables.update(service.get("environment") or {})
    variables.update(raw["x-app"]["environment"])
    return variables


def test_every_variable_the_compose_file_sets_is_a_setting(raw):
    unknown = set(raw_app_environment(raw)) - settings_variables()
    assert not unknown, f"the settings read no {sorted(unknown)}"


def test_what_the_compose_file_sets_is_enough_for_the_settings(resolved, raw):
    """The reverse: the settings start in production mode from the compose file's variables alone."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    from_compose = {key: str(resolved["services"]["web"]["environment"][key]) for key in raw_app_environment(raw)}
    check = [sys.executable, "-c", "import chat_project.settings as s; assert not s.DEBUG; print('settings loaded')"]
    result = subprocess.run(check, cwd=ROOT, env={**env, **from_compose}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Positive control: without the one required variable the settings refuse to load, naming it.
    del from_compose["DJANGO_SECRET_KEY"]
    result = subprocess.run(check, cwd=ROOT, env={**env, **from_compose}, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


### Dockerfile and .dockerignore ###


def dockerfile_stages() -> list[list[str]]:
    """Return the Dockerfile's instructions (continuation lines joined), split into build stages."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def runtime_requirements() -> list[str]:
    """Return the packages of the "# Runtime" section of requirements.txt (what the image installs)."""
    section = (ROOT / "requirements.txt").read_text().split("# Runtime\n", 1)[1].split("\n\n", 1)[0]
    return [re.split(r"[=\[<>]", line)[0].lower() for line in section.splitlines() if line and not line.startswith("#")]


def test_the_image_runs_as_a_user_and_has_a_healthcheck():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "a build stage keeps build tools out of the runtime image"
    final = stages[-1]
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    (healthcheck,) = [line for line in final if line.upper().startswith("HEALTHCHECK ")]
    assert "/readyz" in healthcheck


def test_the_image_installs_the_runtime_section_only():
    (build, *_rest) = dockerfile_stages()
    install = " ".join(build)
    assert "/^# Runtime/,/^$/p" in install and "pip install -r runtime.txt -c constraints.txt" in install
    runtime = runtime_requirements()
    assert {"django", "channels", "daphne", "confluent-kafka", "psycopg"} <= set(runtime)
    assert not {"pytest", "ruff", "matplotlib", "requests", "psutil"} & set(runtime)


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    for pattern in (".env", ".venv", ".run", "db.sqlite3*", ".git"):
        assert pattern in patterns
    # A later "!" pattern must not bring .env back.
    assert not [p for p in patterns if p.startswith("!") and p[1:] in (".env", ".env*")]
