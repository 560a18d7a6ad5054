"""What the framework sends the master, held to Mesos's own v1 protos (TaskInfo, Offer.Operation, Filters)."""

from __future__ import annotations

import pytest

from framework.offers import OfferView, task_info
from framework.tasks import Submission, TaskRecord
from tests.contract.test_mesos_standin import Protos
from tests.upstream import upstream

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def protos() -> Protos:
    base = upstream("mesos", "include", "mesos", "v1")
    return Protos(base / "mesos.proto", base / "scheduler" / "scheduler.proto")


OFFER = {"id": {"value": "O1"}, "framework_id": {"value": "F"}, "agent_id": {"value": "S1"}, "hostname": "127.0.0.2",
         "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
                       {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096}},
                       {"name": "disk", "type": "SCALAR", "scalar": {"value": 1000}},
                       {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31099}]}}],
         "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}]}


@pytest.mark.parametrize("network", ["HOST", "BRIDGE"])
def test_task_info_is_a_valid_mesos_task_info(protos: Protos, network: str) -> None:
    spec = Submission("wharf/busybox:latest", "echo hi", cpus=0.5, mem=64, disk=10, ports=(80, 443), network=network,
                      env=(("A", "1"),), labels=(("SERVICE_NAME", "batch"),),
                      parameters=(("ulimit", "nofile=1024"),)).tasks("g")[0]
    info = task_info(TaskRecord(spec, launches=1), OfferView.from_offer(OFFER), (31000, 31001))
    assert protos.check(info, "mesos.v1.TaskInfo") == []
    assert protos.check(OFFER, "mesos.v1.Offer") == []


def test_the_image_default_command_is_a_valid_command_info(protos: Protos) -> None:
    spec = Submission("wharf/busybox:latest").tasks("g")[0]
    info = task_info(TaskRecord(spec, launches=1), OfferView.from_offer(OFFER), ())
    assert info["command"]["shell"] is False and "value" not in info["command"]
    assert protos.check(info, "mesos.v1.TaskInfo") == []


def test_the_calls_the_leader_makes_are_valid_scheduler_calls(protos: Protos) -> None:
    calls = [
        {"type": "DECLINE", "framework_id": {"value": "F"},
         "decline": {"offer_ids": [{"value": "O1"}], "filters": {"refuse_seconds": 60.0}}},
        {"type": "RECONCILE", "framework_id": {"value": "F"},
         "reconcile": {"tasks": [{"task_id": {"value": "g-0.1"}, "agent_id": {"value": "S1"}}]}},
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": "wharf", "failover_timeout": 604800.0, "id": {"value": "F"},
            "capabilities": [{"type": "TASK_KILLING_STATE"}]}}},
    ]
    for call in calls:
        assert protos.check(call, "mesos.v1.scheduler.Call") == []
