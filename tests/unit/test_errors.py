"""An unreachable system is one line: which system, the address tried, why in plain words, and what
to check; never a library's exception text or a class or method name."""

from __future__ import annotations

import socket

import pytest
import requests
from click.testing import CliRunner

from chronos_jobs.client import ChronosClient
from marathon_apps.client import Marathon
from wharf.errors import Failure, RetryFailed, Unreachable, describe, network_reason, reaching
from wharf.retry import Retry

pytestmark = pytest.mark.unit

QUICK = Retry(delay=0.01, max_delay=0.01, deadline=0.05, retry_on=(requests.ConnectionError, requests.Timeout))


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> BaseException:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    except requests.RequestException as exc:
        return exc
    raise AssertionError("something answered")


def test_network_failures_are_named_in_plain_words(closed_port: int, tmp_path: object) -> None:
    assert network_reason(refused(closed_port)) == "connection refused"
    import docker

    client = docker.APIClient(base_url=f"unix://{tmp_path}/no.sock", version="1.41")
    with pytest.raises(requests.ConnectionError) as caught:
        client.containers()
    assert network_reason(caught.value) == "no such socket"
    wrapped = requests.ConnectionError(OSError("lookup"))
    wrapped.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert network_reason(wrapped) == "host name not found"
    assert network_reason(requests.ReadTimeout("read timed out")) == "timed out"
    assert network_reason(RetryFailed("gave up", refused(closed_port))) == "connection refused"
    assert network_reason(ValueError("not JSON")) is None
    assert network_reason(ValueError("not JSON"), connecting=True) is None
    assert network_reason(KeyError("x")) is None
    missing = FileNotFoundError(2, "No such file or directory")
    assert network_reason(missing) is None, "a file missing is not a network failure"
    assert network_reason(missing, connecting=True) == "no such socket"
    assert network_reason(ConnectionError("event stream ended"), connecting=True) == "event stream ended"
    assert describe(ConnectionError("every third cycle fails")) == "ConnectionError: every third cycle fails"


def test_reaching_names_the_system_the_address_and_what_to_check(closed_port: int) -> None:
    with pytest.raises(Unreachable) as caught, reaching("Consul", f"127.0.0.1:{closed_port}"):
        requests.get(f"http://127.0.0.1:{closed_port}/v1/catalog/nodes", timeout=2)
    assert caught.value.exit_code == 1
    assert caught.value.message == (f"cannot reach Consul at 127.0.0.1:{closed_port} (connection refused): is a "
                                    "Consul agent running there? Check CONSUL_HTTP_ADDR or --consul-addr")
    with pytest.raises(Failure) as other, reaching("Consul", "127.0.0.1:8500"):
        raise ValueError("the answer is not JSON")
    assert other.value.message == "Consul at 127.0.0.1:8500: ValueError: the answer is not JSON"
    with pytest.raises(Failure, match="^as it was$"), reaching("Consul", "127.0.0.1:8500"):
        raise Failure("as it was")


def test_describe_unwraps_retries_and_keeps_wharfs_own_messages(closed_port: int) -> None:
    assert describe(RetryFailed("Thing._call: gave up after 3 tries", refused(closed_port))) == "connection refused"
    assert describe(Failure("a plain message")) == "a plain message"
    assert describe(ZeroDivisionError("division by zero")) == "ZeroDivisionError: division by zero"


def test_an_unreachable_marathon_is_one_line_without_method_names(closed_port: int) -> None:
    client = Marathon([f"http://user:secret@127.0.0.1:{closed_port}", f"http://127.0.0.1:{closed_port}"],
                      retry=QUICK)
    with pytest.raises(Unreachable) as caught:
        client.request("GET", "/v2/apps")
    message = caught.value.message
    assert message.startswith(f"cannot reach Marathon at http://127.0.0.1:{closed_port}, "
                              f"http://127.0.0.1:{closed_port} (connection refused; tried for 0.05 s): ")
    assert "MARATHON_URL" in message and "secret" not in message and "_send" not in message


def test_an_unreachable_chronos_is_one_line(closed_port: int) -> None:
    with pytest.raises(Unreachable) as caught:
        ChronosClient(f"http://127.0.0.1:{closed_port}", retry=QUICK).jobs()
    assert caught.value.message.startswith(f"cannot reach Chronos at http://127.0.0.1:{closed_port} "
                                           "(connection refused")
    assert "_call" not in caught.value.message and "HTTPConnectionPool" not in caught.value.message


def test_registrator_commands_name_the_docker_engine_and_consul(closed_port: int, tmp_path: object) -> None:
    from wharf.cli import cli

    runner = CliRunner()
    env = {"DOCKER_HOST": f"unix://{tmp_path}/docker.sock", "CONSUL_HTTP_ADDR": f"127.0.0.1:{closed_port}"}
    sync = runner.invoke(cli, ["registrator", "sync", "--once"], env=env)
    assert sync.exit_code == 1
    assert sync.output.strip() == (f"Error: cannot reach the Docker engine at unix://{tmp_path}/docker.sock (no such "
                                   "socket): is dockerd running, and is its socket there? Check DOCKER_HOST or "
                                   "--docker-host")
    listed = runner.invoke(cli, ["registrator", "list"], env=env)
    assert listed.exit_code == 1
    assert listed.output.strip().startswith(f"Error: cannot reach Consul at 127.0.0.1:{closed_port} "
                                            "(connection refused): ")
