"""Shared fixtures for process-level tests: where the built binaries are."""
import os
import pathlib

import pytest


def bin_dir() -> pathlib.Path:
    d = os.environ.get("KETCH_BIN_DIR")
    if not d:
        root = pathlib.Path(__file__).resolve().parents[2]
        d = str(root / "build" / "asan" / "bin")
    return pathlib.Path(d)


@pytest.fixture
def ketch_bin():
    """Returns a function mapping a program name to the path of its built binary."""

    def path(name: str) -> str:
        p = bin_dir() / name
        assert p.is_file(), f"{p} is not built (set KETCH_BIN_DIR or run scripts/test)"
        return str(p)

    return path
