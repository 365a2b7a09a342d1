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


def test_ketchd_unknown_flag_exits_nonzero_with_one_line(ketch_bin):
    r = run([ketch_bin("ketchd"), "--bogus"])
    assert r.returncode != 0
    assert r.stderr == "ketchd: flag provided but not defined: -bogus (see ketchd --help)\n"


def test_ketchd_bad_env_value_names_the_variable(ketch_bin):
    import os

    env = dict(os.environ, ETCD_HEARTBEAT_INTERVAL="x")
    r = subprocess.run([ketch_bin("ketchd")], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode != 0
    assert "ETCD_HEARTBEAT_INTERVAL" in r.stderr
    assert r.stderr.count("\n") == 1
