"""The README's "Two users chatting", run as written against the real stack (daphne, bridge, Kafka)."""

import json
import re
import subprocess

import pytest

from tests.support.stack import ROOT, free_port

pytestmark = pytest.mark.integration

README = (ROOT / "README.md").read_text()
README_URL = "http://127.0.0.1:8000"


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def demo_command() -> str:
    (line,) = [b.strip() for b in shell_blocks(section("Two users chatting")) if "manage.py chat_demo" in b]
    assert README_URL in line
    return line


def run_shell(script: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180
    )


def test_the_readme_demo_runs_to_delivered_and_read(stack, base):
    result = run_shell(demo_command().replace(README_URL, base))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    ack = json.loads(re.search(r"ann <- (\{\"type\": \"message\.ack\".*)", out).group(1))
    message_id = ack["message"]["id"]
    # Every step of the contract's flow, in order.
    steps = [
        '"type": "sync.done"',
        '"type": "message.send"',
        '"type": "message.ack"',
        '"type": "message.new"',
        '"type": "message.received"',
        '"status": "DELIVERED"',
        '"type": "message.read"',
        '"status": "READ"',
        "Done: ",
    ]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions), out
    # What the server stored agrees with what the demo printed: ben's watermarks passed the message.
    assert stack.query(
        "SELECT p.delivered_seq, p.last_read_seq, m.content FROM messaging_message m"
        " JOIN messaging_participant p ON p.conversation_id = m.conversation_id AND p.user_id <> m.sender_id"
        " WHERE m.id = %s",
        message_id,
    ) == [(1, 1, "Hi Ben!")]


def test_make_demo_runs_the_readme_command():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.*)$", makefile, re.MULTILINE).group(1)
    url = re.search(r"^URL \?= (.*)$", makefile, re.MULTILINE).group(1)
    assert recipe.replace("$(VENV)", ".venv").replace("$(URL)", url) == demo_command()
    assert "make demo" in section("Two users chatting")


def test_the_readme_curl_version_runs_as_pasted(stack, base):
    (block,) = [b for b in shell_blocks(section("Two users chatting")) if "curl" in b]
    result = run_shell(block, BASE=base)
    assert result.returncode == 0, result.stdout + result.stderr
    history = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m["content"] for m in history["results"]] == ["Hi Ben!"]
    assert history["results"][0]["status"] == "SENT"


def test_the_demo_says_when_no_server_answers():
    command = demo_command().replace(README_URL, f"http://127.0.0.1:{free_port()}")
    result = run_shell(command)
    assert result.returncode == 1
    assert "nothing answers at http://127.0.0.1:" in result.stderr
    assert "make run" in result.stderr
    assert "Traceback" not in result.stderr
