"""pymesos (with its rebuilt http-parser) imports and builds a scheduler driver on Python 3.11."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_pymesos_driver_can_be_constructed() -> None:
    from pymesos import MesosSchedulerDriver, Scheduler

    driver = MesosSchedulerDriver(Scheduler(), {"user": "root", "name": "wharf-test"},
                                  "zk://127.0.0.1:2181/mesos", use_addict=True)
    assert driver.master_uri == "zk://127.0.0.1:2181/mesos"
    assert driver.framework["name"] == "wharf-test"
