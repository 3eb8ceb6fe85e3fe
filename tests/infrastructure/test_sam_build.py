"""The deploy package: `sam build` as the README runs it (no container), then the built handlers imported by a Python
3.12 interpreter from the built artifacts alone, so a package that cannot build or cannot import fails here and not
at a deployment's first invocation.

The deployed layer is aarch64 (Graviton) and cannot load on an x86_64 machine, so the import check uses the same
layer recipe (src/Makefile) built by SAM with LAYER_ARCH=x86_64; the aarch64 build is checked for what it contains.
One test, so that pytest-xdist runs the two builds once (a module fixture would run once per worker). Both builds
reach the package index; they run side by side and take one to three minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from postroom.local import template as tpl

SAM_VENV = Path(__file__).resolve().parents[2] / ".sam-venv"
# ELF e_machine values (the two bytes at offset 18 of an ELF header, little endian on both architectures).
ELF_MACHINE = {183: "aarch64", 62: "x86_64"}
# Sub-packages for `postroom bridge`, `postroom local`, the submission container and the tests: their dependencies
# (Twisted, aiosmtpd, moto, PyYAML) are extras that never go into the layer, and no Lambda path imports them.
# The operator's tools, never imported by a handler: the CLI (Typer and Rich come with the cli extra, not the layer),
# the bridge and submission listeners, the local harness and the test peers.
NOT_ON_LAMBDA = (
    "postroom.cli.",
    "postroom.protocols.bridge.",
    "postroom.local.",
    "postroom.protocols.submission.",
    "postroom.testing.",
)
BUILD_TIMEOUT = 900

pytestmark = pytest.mark.sam_build


def python312() -> Path:
    """A Python 3.12 interpreter (Lambda's python3.12 runtime): POSTROOM_PYTHON312 (.ci/run sets it), python3.12 on
    PATH, or pyenv's. SAM's python3.12 builder (the functions) also looks for it on PATH."""
    candidates = [os.environ.get("POSTROOM_PYTHON312"), shutil.which("python3.12")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob("versions/3.12*/bin/python3.12"), reverse=True)]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12)); print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = probe.stdout.split()
        if probe.returncode == 0 and lines[:1] == ["True"]:
            return Path(lines[1])
    if os.environ.get("POSTROOM_PYTHON312"):
        pytest.fail(f"POSTROOM_PYTHON312={os.environ['POSTROOM_PYTHON312']} is not a working Python 3.12")
    pytest.skip("no Python 3.12 interpreter (python3.12 on PATH, pyenv, or POSTROOM_PYTHON312); .ci/run finds one")


def sam() -> Path:
    tool = SAM_VENV / "bin" / "sam"
    if not tool.exists():
        pytest.skip(f"{tool} is absent: .ci/run creates the SAM CLI environment (python3 -m venv .sam-venv && ...)")
    return tool


def elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return ELF_MACHINE.get(int.from_bytes(header[18:20], "little"), "other")


def import_check(interpreter: Path, paths: list[Path], code: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` with nothing on sys.path but ``paths`` and the standard library: -S keeps the interpreter's own
    site-packages out, and the environment is empty, as far as AWS settings go, like a fresh execution environment."""
    program = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n{code}"
    return subprocess.run(
        [str(interpreter), "-S", "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.defpath, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"},
        check=False,
    )


def test_sam_build_makes_a_layer_for_lambda_and_handlers_that_import_from_it(repo_root, template_path, tmp_path):
    # GIVEN the SAM CLI and a Python 3.12 (SAM's builder for the functions checks for one)
    sam_cli, interpreter = sam(), python312()
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{interpreter.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
    }
    arm64, x86_64 = tmp_path / "arm64", tmp_path / "x86_64"
    # WHEN `sam build` runs as the README's deploy command runs it, and beside it the layer is built for x86_64
    builds = {
        "arm64": subprocess.Popen(
            [str(sam_cli), "build", "--template-file", str(template_path), "--build-dir", str(arm64)],
            cwd=repo_root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        "x86_64": subprocess.Popen(
            [str(sam_cli), "build", "PostroomLayer", "--template-file", str(template_path), "--build-dir", str(x86_64)],
            cwd=repo_root,
            env={**env, "LAYER_ARCH": "x86_64"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    }
    outputs = {name: process.communicate(timeout=BUILD_TIMEOUT)[0] for name, process in builds.items()}
    # THEN both builds succeed
    for name, process in builds.items():
        assert process.returncode == 0, f"sam build ({name}) failed:\n{outputs[name][-4000:]}"

    # ... the deployed layer holds only aarch64 native code, within Lambda's size limit
    layer = arm64 / "PostroomLayer" / "python"
    assert (layer / "postroom" / "__init__.py").is_file()
    extensions = list(layer.rglob("*.so"))
    assert extensions, "the layer has no native extension (pydantic-core is one)"
    assert {so.name: elf_machine(so) for so in extensions} == {so.name: "aarch64" for so in extensions}
    assert not list(layer.rglob("__pycache__"))
    size = sum(f.stat().st_size for f in (arm64 / "PostroomLayer").rglob("*") if f.is_file())
    assert size < 200 * 1024 * 1024, f"layer is {size / 2**20:.0f} MB unzipped; Lambda allows 250 MB in all"

    # ... the built template names every function of the source template, each with its built handler
    built: dict[str, Any] = tpl.load_template(arm64 / "template.yaml")
    source_functions = {
        lid
        for lid, r in tpl.load_template(template_path)["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    functions = {lid: r for lid, r in built["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == source_functions

    # ... and every handler imports from its built code and the x86_64 twin of the layer, with nothing else on the path
    twin = x86_64 / "PostroomLayer" / "python"
    assert {elf_machine(so) for so in twin.rglob("*.so")} == {"x86_64"}
    for logical_id, function in functions.items():
        module, _, handler = function["Properties"]["Handler"].rpartition(".")
        code_dir = arm64 / function["Properties"]["CodeUri"]
        result = import_check(
            interpreter, [code_dir, twin], f"import {module}; assert callable({module}.{handler}), {handler!r}"
        )
        assert result.returncode == 0, f"{logical_id}: {result.stderr[-3000:]}"

    # ... and so does every module of the package a Lambda path may reach, lazily imported dependencies included
    result = import_check(
        interpreter,
        [twin],
        "import importlib, pkgutil, postroom\n"
        "for info in pkgutil.walk_packages(postroom.__path__, 'postroom.'):\n"
        f"    if not info.name.startswith({NOT_ON_LAMBDA!r}):\n"
        "        importlib.import_module(info.name)\n",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"layer: {size / 2**20:.0f} MB unzipped, {len(extensions)} native extensions", file=sys.stderr)
