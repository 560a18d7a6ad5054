"""reconcile(): both directions fixed, drains kept, other owners' services never touched."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registrator.model import Registered, Registration
from registrator.reconcile import reconcile

pytestmark = pytest.mark.unit

ME = "reg-a"


def reg(n: int, **kw: object) -> Registration:
    return Registration(id=f"h:c{n}:80", name="web", address="10.0.0.1", port=31000 + n,
                        container_id=f"c{n}", **kw)  # type: ignore[arg-type]


def held(r: Registration, owner: str = ME, maintenance: bool = False) -> Registered:
    return Registered.written(r, owner, maintenance)


def test_missing_ones_are_registered_and_ghosts_deregistered() -> None:
    plan = reconcile([reg(1), reg(2)], {"h:c2:80": held(reg(2)), "h:c3:80": held(reg(3))}, ME)
    assert [r.id for r in plan.register] == ["h:c1:80"]
    assert plan.deregister == ("h:c3:80",)
    assert plan.fixes() == 2


def test_a_changed_registration_is_written_again() -> None:
    old = held(reg(1))
    plan = reconcile([replace(reg(1), tags=("new",))], {old.id: old}, ME)
    assert [r.tags for r in plan.register] == [("new",)] and not plan.deregister


def test_foreign_services_are_never_touched_even_on_an_id_clash() -> None:
    foreign = {"h:c1:80": held(reg(1), owner="other"), "x": Registered("x", None, None, None)}
    plan = reconcile([reg(1)], foreign, ME)
    assert plan.empty and plan.conflicts == ("h:c1:80",)
    assert reconcile([], foreign, ME).empty


def test_drains_are_applied_and_lifted() -> None:
    drained = replace(reg(1), drained=True)
    assert reconcile([drained], {drained.id: held(reg(1))}, ME).drain == (drained.id,)
    assert reconcile([drained], {drained.id: held(reg(1), maintenance=True)}, ME).empty
    fresh = reconcile([drained], {}, ME)
    assert [r.id for r in fresh.register] == [drained.id] and fresh.drain == (drained.id,)
    assert reconcile([reg(1)], {drained.id: held(reg(1), maintenance=True)}, ME).undrain == (drained.id,)


@given(st.sets(st.integers(0, 30)), st.sets(st.integers(0, 30)), st.sets(st.integers(0, 30)))
def test_after_the_plan_the_agent_holds_exactly_the_wanted_ones(want: set[int], mine: set[int],
                                                                theirs: set[int]) -> None:
    registered = {reg(n).id: held(reg(n)) for n in mine}
    registered.update({f"t{n}": Registered(f"t{n}", "other", None, None) for n in theirs})
    plan = reconcile([reg(n) for n in want], registered, ME)
    after = {k: v for k, v in registered.items() if k not in plan.deregister}
    after.update({r.id: held(r) for r in plan.register})
    assert {k for k, v in after.items() if v.owner == ME} == {reg(n).id for n in want}
    assert {k for k, v in after.items() if v.owner == "other"} == {f"t{n}" for n in theirs}
    assert reconcile([reg(n) for n in want], after, ME).empty
