"""Unit tests of Marathon's placement constraints and scale-down selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.marathon.constraints import (
    InvalidConstraint,
    MarathonConstraint,
    Placement,
    RunningTask,
    kill_order,
    meets,
    meets_constraint,
    select_kill,
)

pytestmark = pytest.mark.unit


def agent(host: str, region: str | None = None, zone: str | None = None, **attributes: str) -> Placement:
    return Placement(f"agent-{host}", host, attributes, region, zone)


def on_racks(*racks: str) -> list[Placement]:
    return [agent(f"h{i}", rack=r) for i, r in enumerate(racks)]


# --- placements and parsing ----------------------------------------------------------------------

def test_placement_is_frozen_hashable_and_copies_its_attributes() -> None:
    attrs = {"rack": "r1"}
    p = Placement("a1", "h1", attrs)
    attrs["rack"] = "changed"
    assert p.value_of("rack") == "r1"
    assert p == Placement("a1", "h1", {"rack": "r1"})
    assert hash(p) == hash(Placement("a1", "h1", {"rack": "r1"}))
    with pytest.raises(AttributeError):
        p.hostname = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value"), [
    ("hostname", "h1"), ("@hostname", "h1"), ("@region", "eu"), ("@zone", "eu-1a"), ("rack", "r1"),
    ("missing", None),
])
def test_value_of_reads_pseudo_fields_and_attributes(field: str, value: str | None) -> None:
    assert agent("h1", "eu", "eu-1a", rack="r1").value_of(field) == value


def test_parse_accepts_two_or_three_strings() -> None:
    assert MarathonConstraint.parse(["hostname", "UNIQUE"]) == MarathonConstraint("hostname", "UNIQUE", "")
    assert MarathonConstraint.parse(("rack", "MAX_PER", "2")) == MarathonConstraint("rack", "MAX_PER", "2")
    c = MarathonConstraint("rack", "IS", "r1")
    assert MarathonConstraint.parse(c) is c


@pytest.mark.parametrize(("raw", "message"), [
    (["hostname"], "a constraint is"),
    (["a", "UNIQUE", "x", "y"], "a constraint is"),
    ("hostname:UNIQUE", "a constraint is"),
    (["hostname", "unique"], "unknown constraint operator"),
    (["hostname", "IN", "a,b"], "unknown constraint operator"),
    (["rack", "MAX_PER", "two"], "MAX_PER needs an integer"),
    (["rack", "MAX_PER"], "MAX_PER needs an integer"),
    (["rack", "LIKE", "rack-[1"], "not a valid regular expression"),
])
def test_parse_refuses_what_cannot_be_evaluated(raw: object, message: str) -> None:
    with pytest.raises(InvalidConstraint, match=message):
        MarathonConstraint.parse(raw)  # type: ignore[arg-type]


# --- one operator at a time ----------------------------------------------------------------------

def test_unique_hostname_allows_one_instance_per_host() -> None:
    running = [agent("h1"), agent("h2")]
    assert not meets_constraint(["hostname", "UNIQUE"], agent("h1"), running)
    assert meets_constraint(["hostname", "UNIQUE"], agent("h3"), running)
    assert meets_constraint(["@hostname", "UNIQUE"], agent("h3"), running)
    assert meets_constraint(["hostname", "UNIQUE"], agent("h1"), [])


def test_unique_attribute_is_per_value_not_per_host() -> None:
    running = on_racks("r1")
    assert not meets_constraint(["rack", "UNIQUE"], agent("other", rack="r1"), running)
    assert meets_constraint(["rack", "UNIQUE"], agent("other", rack="r2"), running)


def test_cluster_with_a_value_pins_to_that_value() -> None:
    assert meets_constraint(["rack", "CLUSTER", "r1"], agent("h", rack="r1"), on_racks("r1"))
    assert not meets_constraint(["rack", "CLUSTER", "r1"], agent("h", rack="r2"), [])
    assert meets_constraint(["hostname", "CLUSTER", "h9"], agent("h9"), [])
    assert not meets_constraint(["hostname", "CLUSTER", "h9"], agent("h1"), [])


def test_cluster_without_a_value_pins_to_the_first_placement() -> None:
    assert meets_constraint(["rack", "CLUSTER"], agent("h", rack="r7"), [])
    assert meets_constraint(["rack", "CLUSTER"], agent("h", rack="r7"), on_racks("r7"))
    assert not meets_constraint(["rack", "CLUSTER"], agent("h", rack="r8"), on_racks("r7"))
    assert meets_constraint(["hostname", "CLUSTER"], agent("h0"), [agent("h0")])
    assert not meets_constraint(["hostname", "CLUSTER"], agent("h1"), [agent("h0")])


def test_cluster_without_a_value_looks_only_at_the_first_placement_as_marathon_does() -> None:
    assert meets_constraint(["rack", "CLUSTER"], agent("h", rack="r1"), on_racks("r1", "r2"))
    assert not meets_constraint(["rack", "CLUSTER"], agent("h", rack="r2"), on_racks("r1", "r2"))


def test_group_by_without_a_value_fills_the_smallest_group_and_welcomes_new_ones() -> None:
    running = on_racks("a", "a", "b")
    assert not meets_constraint(["rack", "GROUP_BY"], agent("x", rack="a"), running)
    assert meets_constraint(["rack", "GROUP_BY"], agent("x", rack="b"), running)
    assert meets_constraint(["rack", "GROUP_BY"], agent("x", rack="c"), running)


def test_group_by_without_a_value_accepts_a_single_group_growing() -> None:
    # Marathon only knows the groups it has seen: with one group, it is also the smallest.
    assert meets_constraint(["rack", "GROUP_BY"], agent("x", rack="a"), on_racks("a", "a"))


def test_group_by_with_a_value_waits_for_that_many_groups() -> None:
    c = ["rack", "GROUP_BY", "3"]
    assert not meets_constraint(c, agent("x", rack="a"), on_racks("a", "b"))
    assert meets_constraint(c, agent("x", rack="c"), on_racks("a", "b"))
    assert meets_constraint(c, agent("x", rack="a"), on_racks("a", "b", "c"))
    assert meets_constraint(c, agent("x", rack="a"), on_racks("a", "b", "c", "b", "c"))
    assert not meets_constraint(c, agent("x", rack="b"), on_racks("a", "b", "c", "b", "c"))
    assert meets_constraint(["rack", "GROUP_BY", "inf"], agent("x", rack="z"), on_racks("a"))
    assert not meets_constraint(["rack", "GROUP_BY", "inf"], agent("x", rack="a"), on_racks("a"))


def test_group_by_counts_instances_without_the_field_as_a_group() -> None:
    running = [agent("h0", rack="a"), agent("h1")]  # h1 has no rack
    assert meets_constraint(["rack", "GROUP_BY", "2"], agent("x", rack="a"), running)
    assert not meets_constraint(["rack", "GROUP_BY", "3"], agent("x", rack="a"), running)


def test_max_per_limits_each_distinct_value() -> None:
    c = ["rack", "MAX_PER", "2"]
    assert not meets_constraint(c, agent("x", rack="a"), on_racks("a", "a", "b"))
    assert meets_constraint(c, agent("x", rack="b"), on_racks("a", "a", "b"))
    assert meets_constraint(c, agent("x", rack="c"), on_racks("a", "a", "b"))
    assert not meets_constraint(["hostname", "MAX_PER", "1"], agent("h0"), [agent("h0")])
    assert not meets_constraint(["rack", "MAX_PER", "0"], agent("x", rack="c"), [])


def test_like_and_unlike_match_the_whole_value() -> None:
    for value, like in [("rack-1", True), ("rack-3", True), ("rack-10", False), ("xrack-1", False)]:
        assert meets_constraint(["rack", "LIKE", "rack-[1-3]"], agent("h", rack=value), []) is like
        assert meets_constraint(["rack", "UNLIKE", "rack-[1-3]"], agent("h", rack=value), []) is not like
    assert meets_constraint(["hostname", "LIKE", "web-.*"], agent("web-1"), [])
    assert not meets_constraint(["hostname", "UNLIKE", "web-.*"], agent("web-1"), [])


def test_like_and_unlike_without_a_value_match_nothing() -> None:
    assert not meets_constraint(["rack", "LIKE", ""], agent("h", rack=""), [])
    assert not meets_constraint(["rack", "UNLIKE", ""], agent("h", rack="a"), [])


def test_is_compares_exactly() -> None:
    assert meets_constraint(["rack", "IS", "r1"], agent("h", rack="r1"), [])
    assert not meets_constraint(["rack", "IS", "r1"], agent("h", rack="r10"), [])


@pytest.mark.parametrize("operator", ["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "IS"])
def test_an_agent_without_the_field_satisfies_only_unlike(operator: str) -> None:
    value = {"LIKE": ".*", "IS": "x"}.get(operator)
    constraint = ["rack", operator] + ([value] if value else [])
    assert not meets_constraint(constraint, agent("h"), [])
    assert meets_constraint(["rack", "UNLIKE", "x"], agent("h"), [])
    assert not meets_constraint(["rack", "MAX_PER", "5"], agent("h"), [])


def test_region_and_zone_fields() -> None:
    running = [agent("h0", "eu", "eu-a"), agent("h1", "eu", "eu-b")]
    assert meets_constraint(["@region", "IS", "eu"], agent("h2", "eu", "eu-c"), running)
    assert not meets_constraint(["@zone", "UNIQUE"], agent("h2", "eu", "eu-a"), running)
    assert meets_constraint(["@zone", "GROUP_BY", "3"], agent("h2", "eu", "eu-c"), running)
    assert not meets_constraint(["@zone", "LIKE", ".*"], agent("h2"), running)


def test_meets_requires_every_constraint() -> None:
    constraints = [["hostname", "UNIQUE"], ["rack", "LIKE", "r[12]"]]
    running = [agent("h0", rack="r1")]
    assert meets(constraints, agent("h1", rack="r2"), running)
    assert not meets(constraints, agent("h0", rack="r2"), running)
    assert not meets(constraints, agent("h1", rack="r3"), running)
    assert meets([], agent("h0"), running)


# --- scale-down ----------------------------------------------------------------------------------

def task(name: str, started_at: float | None, **attributes: str) -> RunningTask:
    return RunningTask(name, agent(f"host-{name}", **attributes), started_at)


def ids(tasks: list[RunningTask]) -> list[str]:
    return [t.id for t in tasks]


def test_kill_order_follows_kill_selection_with_staging_first() -> None:
    tasks = [task("old", 1.0), task("staging", None), task("young", 3.0), task("mid", 2.0)]
    assert ids(kill_order(tasks)) == ["staging", "young", "mid", "old"]
    assert ids(kill_order(tasks, "YOUNGEST_FIRST")) == ["staging", "young", "mid", "old"]
    assert ids(kill_order(tasks, "OLDEST_FIRST")) == ["staging", "old", "mid", "young"]
    with pytest.raises(ValueError, match="killSelection"):
        kill_order(tasks, "RANDOM")


def test_select_kill_without_constraints_honours_kill_selection() -> None:
    tasks = [task("a", 1.0), task("b", 2.0), task("c", 3.0)]
    assert ids(select_kill([], tasks, 2)) == ["c", "b"]
    assert ids(select_kill([], tasks, 2, "OLDEST_FIRST")) == ["a", "b"]
    assert select_kill([], tasks, 0) == []
    assert ids(select_kill([["hostname", "UNIQUE"]], tasks, 5)) == ["c", "b", "a"]


def test_select_kill_evens_out_group_by() -> None:
    tasks = [task("a1", 1.0, rack="a"), task("a2", 2.0, rack="a"), task("a3", 3.0, rack="a"),
             task("b1", 9.0, rack="b")]
    # YOUNGEST_FIRST alone would kill b1 first; GROUP_BY takes the over-full rack down instead.
    assert ids(select_kill([], tasks, 2)) == ["b1", "a3"]
    assert ids(select_kill([["rack", "GROUP_BY"]], tasks, 2)) == ["a3", "a2"]
    assert ids(select_kill([["rack", "GROUP_BY"]], tasks, 2, "OLDEST_FIRST")) == ["a1", "a2"]


def test_select_kill_then_falls_back_to_kill_selection() -> None:
    tasks = [task("a1", 1.0, rack="a"), task("a2", 2.0, rack="a"), task("b1", 3.0, rack="b"),
             task("b2", 4.0, rack="b")]
    # evenly spread: any single kill keeps the spread within 1, so kill selection decides
    assert ids(select_kill([["rack", "GROUP_BY"]], tasks, 1)) == ["b2"]
    # then rack a is the larger one, and its youngest goes
    assert ids(select_kill([["rack", "GROUP_BY"]], tasks, 2)) == ["b2", "a2"]


def test_select_kill_balances_two_group_by_constraints() -> None:
    tasks = [task("1", 1.0, rack="a", row="x"), task("2", 2.0, rack="a", row="x"),
             task("3", 3.0, rack="a", row="y"), task("4", 4.0, rack="b", row="y")]
    killed = select_kill([["rack", "GROUP_BY"], ["row", "GROUP_BY"]], tasks, 2)
    left = [t for t in tasks if t not in killed]
    assert sorted(t.placement.value_of("rack") or "" for t in left) == ["a", "b"]
    assert sorted(t.placement.value_of("row") or "" for t in left) == ["x", "y"]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.one_of(st.none(), st.floats(0, 100))), max_size=12),
       st.integers(0, 14), st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST"]))
def test_select_kill_always_picks_distinct_running_tasks(
        spec: list[tuple[str, float | None]], count: int, selection: str) -> None:
    tasks = [task(str(i), started, rack=rack) for i, (rack, started) in enumerate(spec)]
    killed = select_kill([["rack", "GROUP_BY"]], tasks, count, selection)
    assert len(killed) == min(count, len(tasks))
    assert len(set(ids(killed))) == len(killed)
    assert all(t in tasks for t in killed)
