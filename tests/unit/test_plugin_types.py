"""What target types and router types share: found through their entry point group, picked by name
(an unknown name lists the installed ones), and a `settings:` block refused by its model with the
first problem as (path, message)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from stella_operators.plugin_types import SettingsError, installed_types, pick, validate_block
from stella_operators.routing.registry import RouterSettingsError, RouterType, router_type, validate_router_settings
from stella_operators.targets.registry import TargetSettingsError, TargetType, target_type, validate_settings


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner


def test_the_first_problem_is_given_with_its_dotted_path():
    ok = validate_block(Block, {"name": "a", "inner": {"port": 1}}, SettingsError, unknown_key=str)
    assert isinstance(ok, Block) and ok.inner.port == 1
    with pytest.raises(SettingsError) as err:
        validate_block(Block, {"name": "a", "inner": {"port": "x"}}, SettingsError, unknown_key=str)
    assert err.value.path == "inner.port" and "valid integer" in err.value.message
    with pytest.raises(SettingsError) as err:
        validate_block(Block, {"name": "a", "inner": {"port": 1, "prot": 2}}, SettingsError,
                       unknown_key=lambda key: f"what is {key}?")
    assert (err.value.path, err.value.message, str(err.value)) == ("inner.prot", "what is prot?", "what is prot?")


def test_targets_and_routers_word_an_unknown_key_their_own_way_through_the_one_helper():
    with pytest.raises(TargetSettingsError) as target_err:
        validate_settings("docker", {"project_dir": "/srv"})
    assert isinstance(target_err.value, SettingsError)
    assert target_err.value.path == "project_dir"
    assert target_err.value.message.startswith("unknown key 'project_dir' for a docker target (allowed: ")
    with pytest.raises(RouterSettingsError) as router_err:
        validate_router_settings("haproxy", {"socket": "/x", "backend": "b", "sokcet": "/y"})
    assert isinstance(router_err.value, SettingsError)
    assert (router_err.value.path, router_err.value.message) == ("sokcet", "unknown key")
    with pytest.raises(RouterSettingsError) as router_err:
        validate_router_settings("f5", {})
    assert router_err.value.path == "" and "no installed router type 'f5'" in router_err.value.message


def test_installed_types_come_from_their_entry_point_group_and_unknown_names_list_them():
    routers = installed_types("stella_operators.routers", RouterType)
    assert routers["haproxy"] is router_type("haproxy") and routers["haproxy"].name == "haproxy"
    assert target_type("docker").name == "docker"
    with pytest.raises(KeyError, match=r"no installed router type 'f5' \(installed: .*haproxy"):
        router_type("f5")
    with pytest.raises(KeyError, match=r"no installed thing type 'x' \(installed: none\)"):
        pick({}, "x", "thing")
    # a group whose objects are of another kind is refused, naming the entry point
    with pytest.raises(TypeError, match=r"entry point haproxy = .* is not a stella TargetType"):
        installed_types("stella_operators.routers", TargetType)
