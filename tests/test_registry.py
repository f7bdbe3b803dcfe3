import pytest

from deepfake_lab.errors import UserError
from deepfake_lab.registry import Registry


def test_register_build_records_name_and_kwargs():
    reg: Registry = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, x: int = 1):
            self.x = x

    obj = reg.build("a", x=3)
    assert obj.x == 3 and obj.registry_name == "a" and obj.init_kwargs == {"x": 3}
    assert reg.names() == ["a"] and "a" in reg


def test_unknown_name_lists_choices_and_duplicates_rejected():
    reg: Registry = Registry("thing")
    reg.register("b")(dict)
    with pytest.raises(UserError, match="unknown thing 'zz'; choose one of: b"):
        reg.get("zz")
    with pytest.raises(ValueError):
        reg.register("b")(list)
