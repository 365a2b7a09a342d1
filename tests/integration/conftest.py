"""Shared fixtures for process-level tests: where the built binaries are, and the
reference/candidate member pair of the compatibility suites (see harness.py, compat.py)."""
import os
import pathlib
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compat  # noqa: E402
import harness  # noqa: E402


def _terminate_as_interrupt(signum, frame):
    # ctest and timeout(1) stop a test with SIGTERM; turned into pytest.exit, pytest ends
    # the session and still runs the fixture finalizers that stop members and remove
    # their data dirs (members also die with this process: harness.die_with_parent).
    pytest.exit(f"terminated by signal {signum}", returncode=128 + signum)


signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def bin_dir() -> pathlib.Path:
    return harness.bin_dir()


@pytest.fixture
def ketch_bin():
    """Returns a function mapping a program name to the path of its built binary."""

    def path(name: str) -> str:
        p = bin_dir() / name
        assert p.is_file(), f"{p} is not built (set KETCH_BIN_DIR or run scripts/test)"
        return str(p)

    return path


def _member_fixture(request, kind, role):
    tmp = harness.TempDir(f"ketch-{role}-")
    request.addfinalizer(tmp.remove)
    holder = {}

    def stop():
        m = holder.get("m")
        if m is not None:
            m.stop()
    request.addfinalizer(stop)  # runs before tmp.remove (finalizers run in reverse)
    holder["m"] = harness.new_member(kind, tmp.path)
    return holder["m"]


@pytest.fixture(scope="module")
def reference(request):
    """A fresh single-member real etcd (the reference), one per test module."""
    return _member_fixture(request, "etcd", "reference")


@pytest.fixture(scope="module")
def candidate(request):
    """A fresh single member of the candidate kind (KETCH_COMPAT_CANDIDATE), per module."""
    return _member_fixture(request, harness.candidate_kind(), "candidate")


@pytest.fixture
def fresh_candidate(request):
    """A fresh single candidate member for one test (durability, restarts)."""
    return _member_fixture(request, harness.candidate_kind(), "fresh")


@pytest.fixture
def compare(reference, candidate):
    """compare(session): runs the session against reference and candidate, asserts the
    normalised transcripts are equal, returns (reference recorder, candidate recorder)."""

    def run(session):
        return compat.compare(reference, candidate, session)

    return run
