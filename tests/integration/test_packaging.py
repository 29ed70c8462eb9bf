"""Issue 12 item 15: a wheel that stands alone.

The sources are copied out of the working tree and built with `python -m build --no-isolation`
(the backend from the test extras, no package index needed: an sdist, then
the wheel from that sdist, as PyPI users get them); both pass `twine check --strict`. The wheel
is installed into a fresh virtualenv and run from a directory that is not a checkout:
`tlog-monitor config example` prints the repository's config.toml, which `config check` accepts,
and `tlog-monitor demo` passes.

The fast variant installs the wheel without its dependencies and lets the new virtualenv see the
project's site-packages through a `.pth` file (installing aiohttp, sigstore, cryptography, ...
takes 20 s and more): a `.pth` line only appends a directory to sys.path, so `monitor` is still
imported from the wheel (asserted) and the project's editable install stays invisible (its own
`.pth` files are processed only in a site directory). The slow variant installs the wheel with
its dependencies from the package index, as `pipx install` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Run

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "tlog-monitor.service"
#: What `python -m build` needs of the working tree (tests, bench and caches stay behind).
SOURCES = ("pyproject.toml", "README.md", "config.toml", "docs", "systemd", "monitor")
#: Where docs/systemd.md installs the package, and so where the unit's Documentation= points.
SERVICE_PREFIX = "/opt/tlog-monitor"


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as zf:
            return set(zf.namelist())

    def wheel_data(self, relative: str) -> str:
        """The name, inside the wheel, of a file installed at <prefix>/`relative`."""
        version = self.wheel.name.split("-")[1]
        return f"tlog_monitor-{version}.data/data/{relative}"


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> Run:
    # Never the checkout's modules: nothing on PYTHONPATH, and a working directory outside it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """The sdist and wheel `python -m build` makes of a copy of the sources."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend comes from the test extras, so the test needs no index.
    built = _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src, cwd=src)
    assert built.code == 0, built
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


def _documentation_paths() -> list[str]:
    """The unit's Documentation= targets, as paths under the service's virtualenv."""
    uris = re.findall(r"^Documentation=(.+)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    targets = [uri for line in uris for uri in line.split()]
    assert targets, "the unit names no Documentation="
    paths = []
    for uri in targets:
        assert uri.startswith(f"file://{SERVICE_PREFIX}/"), uri
        paths.append(uri.removeprefix(f"file://{SERVICE_PREFIX}/"))
    return paths


def test_packaged_example_is_the_repository_config() -> None:
    shipped = ROOT / "monitor" / "config" / "example" / "config.toml"
    assert shipped.read_bytes() == (ROOT / "config.toml").read_bytes(), (
        "monitor/config/example/config.toml (printed by `tlog-monitor config example`) must be "
        "a copy of config.toml: cp config.toml monitor/config/example/config.toml"
    )


def test_service_install_uses_the_prefix_the_unit_documents() -> None:
    text = (ROOT / "docs" / "systemd.md").read_text(encoding="utf-8")
    assert f"python3 -m venv {SERVICE_PREFIX}\n" in text
    assert f"{SERVICE_PREFIX}/share/doc/tlog-monitor" in text
    assert _documentation_paths()


def test_wheel_and_sdist_pass_twine_check(dist: Dist) -> None:
    checked = _run(
        sys.executable, "-m", "twine", "check", "--strict", dist.wheel, dist.sdist, cwd=ROOT
    )
    assert checked.code == 0, checked
    assert checked.out.count("PASSED") == 2, checked


def test_wheel_ships_what_an_installed_copy_needs(dist: Dist) -> None:
    names = dist.wheel_names()
    modules = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "monitor").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules <= names, sorted(modules - names)
    migrations = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "monitor/store/schema").glob("*.sql")
    }
    assert migrations and migrations <= names, sorted(migrations - names)
    assert {"monitor/py.typed", "monitor/config/example/config.toml"} <= names
    with zipfile.ZipFile(dist.wheel) as zf:
        assert zf.read("monitor/config/example/config.toml") == (ROOT / "config.toml").read_bytes()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "tlog-monitor = monitor.cli.main:main" in zf.read(entry_points).decode()
    docs = ["README.md", "config.toml", "systemd/tlog-monitor.service"] + [
        f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")
    ]
    for doc in docs:
        assert dist.wheel_data(f"share/doc/tlog-monitor/{doc}") in names, doc
    for path in _documentation_paths():
        assert dist.wheel_data(path) in names, f"the unit's Documentation= {path} is not installed"


def test_sdist_builds_the_same_wheel_contents(dist: Dist) -> None:
    # `python -m build` made the wheel from the sdist, so this guards the sdist's completeness;
    # the files an sdist user reads directly are there too.
    with tarfile.open(dist.sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {
        "pyproject.toml",
        "README.md",
        "config.toml",
        "monitor/config/example/config.toml",
    } <= names
    assert "systemd/tlog-monitor.service" in names and "docs/systemd.md" in names


def _check_installed(venv: Path, work: Path) -> None:
    """The commands a user without the repository runs first, from a directory of theirs."""
    script = venv / "bin" / "tlog-monitor"
    where = _run(venv / "bin" / "python", "-c", "import monitor; print(monitor.__file__)", cwd=work)
    assert where.code == 0, where
    assert Path(where.out.strip()).is_relative_to(venv), f"monitor not from the wheel: {where}"

    example = _run(script, "config", "example", cwd=work)
    assert example.code == 0, example
    assert example.out == (ROOT / "config.toml").read_text(encoding="utf-8")
    (work / "config.toml").write_text(example.out)
    checked = _run(script, "config", "check", cwd=work)
    assert checked.code == 0, checked

    demo = _run(script, "demo", "--state", "demo-state", cwd=work)
    assert demo.code == 0, demo
    assert "every misbehaviour and signer was caught" in demo.out
    docs = venv / "share" / "doc" / "tlog-monitor"
    assert f"{docs}/docs/" in demo.out, "the demo points at the installed documentation"

    for path in _documentation_paths():
        assert (venv / path).is_file(), f"the unit's Documentation= {path} is not installed"


def test_wheel_alone_runs_from_any_directory(dist: Dist, tmp_path: Path) -> None:
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    assert made.code == 0, made
    python = venv / "bin" / "python"
    installed = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        dist.wheel,
        cwd=tmp_path,
    )
    assert installed.code == 0, installed
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work
    )
    assert purelib.code == 0, purelib
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.out.strip()) / "_project_dependencies.pth").write_text("\n".join(deps) + "\n")
    _check_installed(venv, work)


@pytest.mark.slow
def test_wheel_installs_with_its_dependencies_in_a_clean_venv(dist: Dist, tmp_path: Path) -> None:
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.code == 0, made
    installed = _run(
        venv / "bin" / "pip", "install", "--quiet", dist.wheel, cwd=tmp_path, timeout=600
    )
    assert installed.code == 0, installed
    _check_installed(venv, work)
