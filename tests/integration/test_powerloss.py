"""A power loss loses nothing ketchd acknowledged (issue 6, "Durability").

powerloss_shim.c, preloaded into ketchd, holds WAL writes in memory until fdatasync, so a
kill -9 drops exactly what a power loss would: everything not yet synced. It also fakes the
boot id, so the restart looks like a new boot of the machine: the store, which runs without
fsync, must then be rebuilt from the newest snapshot and the WAL. A low --snapshot-count makes
the crash land after several snapshots and WAL releases."""
import os
import pathlib

import harness
from test_ketchd_durability import Load, read_tree



def shimmed_member(tmp_path, boot_id):
    shim = harness.bin_dir() / "libketch_powerloss_shim.so"
    assert shim.is_file(), f"{shim} is not built"
    cport, pport = harness.free_ports(2)
    m = harness.Member("ketchd", "pl", tmp_path / "pl.data", cport, pport,
                       extra_flags=["--snapshot-count=150"], log_dir=tmp_path)
    asan = os.environ.get("ASAN_OPTIONS", "")
    m.extra_env = {
        "LD_PRELOAD": str(shim),
        # ASan wants its runtime first; the shim only wraps a few libc calls.
        "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
        "KETCH_SHIM_BOOT_ID": boot_id,
    }
    return m


import pytest


@pytest.fixture
def members():
    """Every member a test starts, stopped (kill -9 if need be) however the test ends."""
    started = []
    yield started
    harness.stop_all(started)


def test_power_loss_keeps_every_acknowledged_write(tmp_path, members):
    m = shimmed_member(tmp_path, "boot-before-the-power-loss")
    members.append(m)
    m.start()
    load = Load(m)
    load.start()
    try:
        harness.wait_until(lambda: load.count() >= 700, 120, "700 acknowledged writes")
        m.kill9()  # with the shim: everything not fdatasynced is gone
    finally:
        load.join()
    assert not load.errors, load.errors
    acked = dict(load.acked)
    inflight = dict(load.inflight)
    snaps = list((pathlib.Path(m.data_dir) / "ketch" / "snap").glob("*.snap"))
    assert len(snaps) >= 1, "the load should have crossed a snapshot"

    m.extra_env["KETCH_SHIM_BOOT_ID"] = "boot-after-the-power-loss"
    m.start()
    assert "rebuilding it from the snapshot and the WAL" in m.stderr_text(), m.log_tail()
    got, index = read_tree(m, "/load")
    for key, (val, mi) in acked.items():
        if key.endswith("/last"):
            continue
        assert key in got, f"acknowledged write {key}={val} was lost in the power loss"
        assert got[key]["value"] == val and got[key]["modifiedIndex"] == mi
    for key, node in got.items():
        if key.endswith("/last"):
            t = int(key.split("/")[2][1:])
            allowed = {acked[key][0]} if key in acked else set()
            if inflight.get(t, (None,))[0] == key:
                allowed.add(inflight[t][1])
            assert node["value"] in allowed, (key, node, allowed)
        else:
            assert key in acked or any(v[0] == key for v in inflight.values()), key
    assert index >= max(mi for _, mi in acked.values())
    # The member keeps working after the rebuild.
    r = harness.http(m.client_port, "PUT", "/v2/keys/after", {"value": "ok"})
    assert r.status == 201
    m.stop()


def test_kill_9_without_reboot_keeps_the_store(tmp_path, members):
    """The same crash on the same boot: the page cache survived, so the store is kept."""
    m = shimmed_member(tmp_path, "same-boot")
    members.append(m)
    m.start()
    for i in range(50):
        r = harness.http(m.client_port, "PUT", f"/v2/keys/k{i}", {"value": str(i)})
        assert r.status == 201
    m.kill9()
    m.start()
    assert "rebuilding" not in m.stderr_text()
    for i in range(50):
        r = harness.http(m.client_port, "GET", f"/v2/keys/k{i}")
        assert r.status == 200 and r.json()["node"]["value"] == str(i)
    m.stop()
