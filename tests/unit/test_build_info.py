"""Which build runs is told from outside (duhub.build): `duhub --version`, the servers' banners
and /metrics name the version and the commit. Before, nothing did, and an operator rolling a
hub back or forward could not tell an older build's process from this one's."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from duhub import build
from duhub.metrics import start_metrics

ROOT = Path(__file__).resolve().parents[2]


def git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def checkout(tmp_path: Path) -> Path:
    """A git checkout of one commit with one tracked file."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "tracked.py").write_text("x = 1\n")
    git(repo, "add", "tracked.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return repo


def test_duhub_version_names_the_version_and_the_commit_it_runs_from() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    head = git(ROOT, "rev-parse", "HEAD")
    modified = bool(git(ROOT, "status", "--porcelain", "--untracked-files=no"))
    expected = f"duhub {build.version()} (commit {head[:12]}{', modified' if modified else ''})"
    assert done.stdout == expected + "\n"
    assert build.version() != "unknown"  # `make setup` installs the package


def test_a_checkout_s_commit_and_its_changes_are_told(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    assert build.commit(repo) == (head, False)
    assert build.describe(repo) == f"duhub {build.version()} (commit {head[:12]})"
    (repo / "tracked.py").write_text("x = 2\n")
    build.commit.cache_clear()
    assert build.commit(repo) == (head, True)
    assert build.describe(repo).endswith(f"(commit {head[:12]}, modified)")
    assert build.labels(repo) == {"version": build.version(), "commit": head, "modified": "true"}


def test_a_build_without_its_checkout_names_its_version_only(tmp_path: Path) -> None:
    # Installed in site-packages, with a repository further up (a venv inside some other
    # checkout): that repository's commit is not this build's.
    outer = checkout(tmp_path)
    installed = outer / "venv" / "site-packages"
    installed.mkdir(parents=True)
    assert build.commit(installed) == ("", False)
    assert build.describe(installed) == f"duhub {build.version()}"


def test_metrics_name_the_build() -> None:
    url = start_metrics("127.0.0.1:0")
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    head, modified = build.commit()
    assert head == git(ROOT, "rev-parse", "HEAD")
    line = (
        f'duhub_build_info{{commit="{head}",modified="{str(modified).lower()}",'
        f'version="{build.version()}"}} 1.0'
    )
    assert line in text.splitlines()
