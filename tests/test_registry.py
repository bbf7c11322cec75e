import pytest

from fastexit_bench.errors import UnknownNameError
from fastexit_bench.registry import Registry


def test_register_and_get():
    reg = Registry("widget")
    reg.register("alpha", 1)
    assert reg.get("alpha") == 1
    assert reg.names() == ["alpha"]
    assert "alpha" in reg


def test_duplicate_and_bad_keys_are_rejected():
    reg = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha", 2)
    for bad in ("Alpha", "a.b", "a/b", "1a", ""):
        with pytest.raises(ValueError, match="must match"):
            reg.register(bad, 3)


def test_unknown_name_lists_near_matches_and_all_names():
    reg = Registry("widget")
    for name in ("entropy", "patience", "max_prob"):
        reg.register(name, name)
    with pytest.raises(UnknownNameError) as info:
        reg.get("entropi")
    message = str(info.value)
    assert "Did you mean entropy" in message
    assert "max_prob, patience" in message


def test_add_registers_a_class_by_its_name_and_refuses_a_second_one():
    reg = Registry("widget")

    @reg.add
    class Alpha:
        name = "alpha"

    assert reg.get("alpha") is Alpha
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(type("Other", (), {"name": "alpha"}))


def test_every_head_class_has_a_torch_free_kind_and_every_kind_a_class():
    from fastexit_bench.analysis.head_kinds import EXTERNAL, HEAD_KINDS
    from fastexit_bench.models.heads import HEADS

    assert HEADS.names() == [name for name in HEAD_KINDS.names() if name != EXTERNAL]  # imported outputs
    for name in HEADS:
        head = HEADS.get(name)
        assert head.kind is HEAD_KINDS.get(name) and head.pools == head.kind.pools


def test_the_analytic_count_refuses_a_head_it_does_not_know():
    from fastexit_bench.analysis.flops import AnalyticFlops

    with pytest.raises(UnknownNameError, match="unknown head 'mystery'"):
        AnalyticFlops({"hidden_size": 8, "intermediate_size": 16, "num_outputs": 2, "head": "mystery"})


def test_every_scheduler_name_has_a_class():
    from fastexit_bench.serving.record import SCHEDULERS
    from fastexit_bench.serving.schedulers import SCHEDULER_TYPES

    assert sorted(SCHEDULERS) == SCHEDULER_TYPES.names()
