"""Every built binary answers --version and --help in etcd's format, in every flag spelling
etcd accepts, and exits 0; an unknown invocation exits non-zero with a message."""
import subprocess

import pytest

SPELLINGS = ["--version", "-version"]


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("flag", SPELLINGS)
def test_ketchd_version_names_program_and_version(ketch_bin, flag):
    r = run([ketch_bin("ketchd"), flag])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ketchd Version: ")
    version = lines[0].split(": ", 1)[1]
    parts = version.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), version
    assert any(line.startswith("Git SHA: ") for line in lines)


@pytest.mark.parametrize("flag", ["--help", "-help", "-h"])
def test_ketchd_help_shows_usage(ketch_bin, flag):
    r = run([ketch_bin("ketchd"), flag])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage:")
    assert "ketchd --version" in r.stdout
