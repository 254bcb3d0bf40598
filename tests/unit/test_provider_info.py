"""What Airflow's providers manager is told about stella-operators is true."""

import re

from stella_operators.entry_points import BUILT_IN
from stella_operators.provider_info import get_provider_info

# types of the roadmap not built yet ("not Kubernetes" is true); built ones leave the list by themselves
NOT_BUILT = tuple(t for t in ("compose", "ecs", "nomad", "ssh", "winrm", "podman")
                  if t not in BUILT_IN["stella_operators.targets"])


def test_description_names_only_built_target_types():
    text = get_provider_info()["description"].lower()
    named = [t for t in NOT_BUILT if re.search(rf"\b{t}\b", text)]
    assert named == [], f"advertised but not built: {named}"
    assert all(t in text for t in BUILT_IN["stella_operators.targets"])


def test_airflow_providers_manager_reads_it():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    info = pm.providers["stella-operators"]
    assert info.data["description"] == get_provider_info()["description"]
    hook = pm.hooks["stella_docker_engine"]
    assert hook is not None and hook.hook_class_name == "stella_operators.hooks.docker_engine.DockerEngineHook"


def test_the_nomad_and_winrm_connection_types_are_known_to_airflow():
    from airflow.providers_manager import ProvidersManager

    hooks = ProvidersManager().hooks
    assert hooks["stella_nomad"].hook_class_name == "stella_operators.hooks.nomad.NomadHook"
    assert hooks["stella_winrm"].hook_class_name == "stella_operators.hooks.winrm.WinrmHook"
