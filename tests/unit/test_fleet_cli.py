"""The fleet commands' errors: a bad setting names its environment variable, a worker without a reachable Kafka
broker stops with what to do instead of Faust's traceback."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from fleet.cli import cli, unreachable_brokers

pytestmark = pytest.mark.unit


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FEQA_FLEET_WEB_PORT": "0"}, "FEQA_FLEET_WEB_PORT: Input should be greater than or equal to 1"),
        ({"FEQA_FLEET_BROKERS": "kafka"}, "FEQA_FLEET_BROKERS: Value error, Kafka broker 'kafka' is not host:port"),
        ({"FEQA_LOG_LEVEL": "LOUD"}, "FEQA_LOG_LEVEL: Input should be 'DEBUG'"),
    ],
)
@pytest.mark.parametrize("command", ["worker", "bridge"])
def test_a_bad_setting_is_named(command: str, env: dict[str, str], named: str) -> None:
    res = CliRunner().invoke(cli, [command], env=env)
    assert res.exit_code == 2, res.output
    assert f"fleet {command}: bad settings; fix these environment variables:" in res.output
    assert named in res.output
    assert "Traceback" not in res.output


def test_a_worker_without_a_broker_says_so() -> None:
    port = closed_port()
    res = CliRunner().invoke(cli, ["worker"], env={"FEQA_FLEET_BROKERS": f"127.0.0.1:{port}"})
    assert res.exit_code == 2, res.output
    assert f"fleet worker: no Kafka broker answers (127.0.0.1:{port}: " in res.output
    assert "set FEQA_FLEET_BROKERS or start one" in res.output


def test_one_listening_broker_is_enough() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        up = f"127.0.0.1:{listener.getsockname()[1]}"
        down = f"127.0.0.1:{closed_port()}"
        assert unreachable_brokers([down, up], timeout_s=2) is None
        why = unreachable_brokers([down], timeout_s=2)
        assert why is not None and why.startswith(f"{down}: ")
