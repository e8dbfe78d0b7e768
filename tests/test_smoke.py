from __future__ import annotations

from gitclaim import Store


def test_claim_roundtrip(initialized, store_factory):
    remote, admin = initialized
    admin.add("Fix login", task_id="fix-login")
    a = store_factory(remote, "agent-a")
    b = store_factory(remote, "agent-b")
    r = a.claim("fix-login")
    assert r.changed and r.task.holder == "agent-a"
    import pytest

    from gitclaim.errors import LostRace

    with pytest.raises(LostRace) as ei:
        b.claim("fix-login")
    assert ei.value.details["holder"] == "agent-a"
    assert ei.value.details["commit"] == r.commit
    assert isinstance(a, Store)
