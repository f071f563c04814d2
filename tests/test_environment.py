"""pip users (pyproject.toml + constraints.txt) and conda/Binder users (environment.yml)
must get the same dependencies."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells some packages differently from PyPI.
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for spec in env["dependencies"]:
        if not isinstance(spec, str):  # the nested `pip:` list installs the project itself
            continue
        spec = spec.replace(" ", "")
        name = _name(spec)
        if name in NOT_PACKAGES:
            continue
        pypi_name = CONDA_TO_PYPI.get(name, name)
        found[pypi_name] = pypi_name + spec[len(name):]
    return found


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pip_side, conda_side = _pyproject_requirements(), _environment_requirements()
    assert set(conda_side) == set(pip_side), (
        f"only in pyproject.toml: {sorted(set(pip_side) - set(conda_side))}; "
        f"only in environment.yml: {sorted(set(conda_side) - set(pip_side))}"
    )


def test_environment_yml_uses_the_same_version_ranges():
    pip_side, conda_side = _pyproject_requirements(), _environment_requirements()
    for name, spec in pip_side.items():
        conda_spec = conda_side[name]
        assert conda_spec == spec, f"{name}: pyproject says {spec!r}, environment.yml {conda_spec!r}"


def test_constraints_pin_every_dependency_exactly():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    missing = sorted(set(_pyproject_requirements()) - set(pins))
    assert not missing, f"constraints.txt does not pin {missing}: run `pip freeze` in .venv and add them"


def test_installed_versions_match_the_constraints():
    from importlib.metadata import version

    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, pinned = line.partition("==")
        if name.strip().lower() in _pyproject_requirements():
            installed = version(name.strip()).split("+")[0]
            assert installed == pinned.strip(), f"{name}: installed {installed}, constraints.txt {pinned}"
