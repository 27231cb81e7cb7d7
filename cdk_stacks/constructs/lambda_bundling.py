"""Lambda code packaged on this machine, without Docker or network.

Third-party packages go into one layer, installed with ``pip --target`` for the
Lambda platform from a local wheelhouse (``make lambda-wheels`` fills it). Each
function's code is its thin handler plus the ``cohort`` package it calls.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "lambdas"
REQUIREMENTS = LAMBDAS / "requirements.txt"
WHEELHOUSE = REPO / "build" / "lambda-wheels"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.X86_64
# The Python 3.14 runtime runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels fit it.
PIP_PLATFORM = [
    *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"),
    *("--implementation", "cp", "--python-version", "3.14"),
]
# Never runs: local bundling always succeeds or fails loudly, but CDK requires an image.
_UNUSED_IMAGE = DockerImage.from_registry("public.ecr.aws/sam/build-python3.14")


@jsii.implements(ILocalBundling)
class _InstallDependencies:
    def try_bundle(self, output_dir: str, *_: object, **__: object) -> bool:
        if not any(WHEELHOUSE.glob("*.whl")):
            raise RuntimeError(
                f"no wheels in {WHEELHOUSE}: run `make lambda-wheels` once (it needs the network)"
            )
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += ["--no-index", "--find-links", str(WHEELHOUSE), "--only-binary=:all:", *PIP_PLATFORM]
        command += ["--no-deps", "--target", str(Path(output_dir) / "python"), "-r", str(REQUIREMENTS)]
        subprocess.run(command, check=True)
        _prune(Path(output_dir) / "python")
        return True


def _prune(site_packages: Path) -> None:
    """Drop what never runs on Lambda (test suites, C headers) to stay within the size limit."""
    for unused in [*site_packages.glob("*/tests"), site_packages / "pyarrow" / "include"]:
        shutil.rmtree(unused, ignore_errors=True)


@jsii.implements(ILocalBundling)
class _CopyHandler:
    def __init__(self, handler_dir: Path) -> None:
        self._handler_dir = handler_dir

    def try_bundle(self, output_dir: str, *_: object, **__: object) -> bool:
        if not (self._handler_dir / "handler.py").is_file():
            raise RuntimeError(f"{self._handler_dir / 'handler.py'} is missing")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(self._handler_dir, output_dir, dirs_exist_ok=True, ignore=ignore)
        shutil.copytree(REPO / "cohort", Path(output_dir) / "cohort", dirs_exist_ok=True, ignore=ignore)
        return True


def dependencies_code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(LAMBDAS),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=hashlib.sha256(REQUIREMENTS.read_bytes() + " ".join(PIP_PLATFORM).encode()).hexdigest(),
        bundling=BundlingOptions(image=_UNUSED_IMAGE, local=_InstallDependencies()),
    )


def handler_code(name: str) -> lambda_.Code:
    """The code of ``lambdas/<name>``: its ``handler.py`` next to the ``cohort`` package."""
    handler_dir = LAMBDAS / name
    return lambda_.Code.from_asset(
        str(handler_dir), bundling=BundlingOptions(image=_UNUSED_IMAGE, local=_CopyHandler(handler_dir))
    )


def download_wheels() -> None:
    """Fill the wheelhouse for the Lambda platform; the one step that needs the network."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--no-deps", *PIP_PLATFORM, "--dest", str(WHEELHOUSE)]
    command += ["-r", str(REQUIREMENTS)]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    download_wheels()
