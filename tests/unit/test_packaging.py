"""What a user installs: the licence in both distributions, the metadata, a working worker."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from the tracked files, in a copy of the repository."""
    pytest.importorskip("build", reason="the dev extra installs build")
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if path.is_file():
            target = source / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, (
        f"the build failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    )
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_license_file_says_bsd_3_clause() -> None:
    """The repository has the BSD-3-Clause licence the metadata declares."""
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, celery-parselog developers" in text


def test_sdist_carries_the_license_and_the_changelog(dists: dict[str, Path]) -> None:
    """The source distribution contains LICENSE and CHANGELOG.md."""
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md"} <= names


def wheel_metadata(wheel_path: Path) -> tuple[list[str], Message]:
    """The file names in a wheel and its METADATA."""
    with zipfile.ZipFile(wheel_path) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        return names, Parser().parsestr(wheel.read(metadata_name).decode())


def test_wheel_carries_the_license_and_project_urls(dists: dict[str, Path]) -> None:
    """The wheel has the licence file, the licence expression and the project's URLs."""
    names, metadata = wheel_metadata(dists["wheel"])
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert metadata["License-Expression"] == "BSD-3-Clause"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL", []))
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    assert "redis" in metadata.get_all("Provides-Extra", [])


def test_readme_install_line_brings_a_broker_client(dists: dict[str, Path]) -> None:
    """The README's first install line names an extra that installs Celery's Redis client."""
    readme = (REPO / "README.md").read_text()
    install = readme[readme.index("## Install") :]
    first = re.search(r'pip install "celery-parselog\[([^\]]+)\]"', install)
    assert first is not None
    extras = {extra.strip() for extra in first.group(1).split(",")}
    _, metadata = wheel_metadata(dists["wheel"])
    brought = [
        requirement
        for requirement in metadata.get_all("Requires-Dist", [])
        if any(f'extra == "{extra}"' in requirement for extra in extras)
    ]
    assert any(requirement.startswith("celery[redis]") for requirement in brought)
