import pytest

from models.registry import Registry, UnknownNameError


def test_duplicate_name_raises_and_unknown_lists_available():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(lambda **kw: 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(lambda **kw: 2)
    with pytest.raises(UnknownNameError, match="available: a"):
        reg.create("b")


def test_none_kwargs_are_dropped_so_factory_defaults_hold():
    reg: Registry[int] = Registry("thing")
    reg.register("x")(lambda size=3: size)
    assert reg.create("x", size=None) == 3
    assert reg.create("x", size=5) == 5
