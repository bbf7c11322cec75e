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
