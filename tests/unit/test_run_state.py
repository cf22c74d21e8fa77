"""Files the suite writes cannot be redirected by another local user (fs.protected_symlinks off,
as on this machine): a symlink planted at each path that used to be predictable in /tmp — the
inventory run lock, the shared ACL result, the partial file of `python -m lab inventory -o` —
and at the user-chosen output paths, is never written through. Private run state lives in a
directory only root can write; the files there are opened without following symlinks."""
from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures import snapshot
from fixtures.acl import shared
from fixtures.targets import InventoryTarget
from fixtures.targets.run_lock import RunLock
from lab import cli
from lab.errors import LabError
from lab.inventory import load_inventory
from lab.safe_files import make_run_dir, state_dir, write_replacing
from lab.sshd import SshMaterial
from lab.topology import load_topology
from tests.unit.test_bad_input import inventory, run, suites

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="run state is root's (/run)")

PRECIOUS = "precious: root's own file\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file of root's that no run may change (where a planted symlink points)."""
    path = tmp_path / "victim"
    path.write_text(PRECIOUS)
    return path


@pytest.fixture
def plant():
    """plant(path, target): a symlink as another user would leave it; removed afterwards. The
    tests plant at the predictable /tmp names the suite used before issue 16 on purpose: an
    attacker's guess, which the suite must neither use nor write through."""
    planted = []

    def make(path, target) -> Path:
        os.symlink(target, path)
        planted.append(path)
        return Path(path)
    yield make
    for path in planted:
        if os.path.lexists(path):
            os.unlink(path)


def test_inventory_lock_is_private_and_its_former_path_is_never_followed(tmp_path, victim, plant):
    name = f"cftest-{secrets.token_hex(4)}"
    former = plant(os.path.join(tempfile.gettempdir(), f"calab-suites-{name}.lock"), victim)
    # the real run: it takes the lock, then stops at the etcd that does not answer
    cp, _ = run(tmp_path, *suites(f"--inventory={inventory(tmp_path, 'http://127.0.0.1:9', name)}"))
    assert cp.returncode == 4 and "does not answer" in cp.stderr, cp.stderr
    assert victim.read_text() == PRECIOUS and former.is_symlink()
    lock = InventoryTarget.lock_path(name)
    assert os.path.dirname(lock) == state_dir() == "/run" and not os.path.exists(lock)


def test_run_lock_never_follows_a_symlink(tmp_path, victim, plant):
    link = plant(tmp_path / "x.lock", victim)
    with pytest.raises(LabError, match=r"cannot open the run lock .*x\.lock.*remove it"):
        RunLock(str(link), "the lab").acquire()
    assert victim.read_text() == PRECIOUS


def test_run_directory_is_root_only_and_unpredictable():
    first, second = make_run_dir(), make_run_dir()
    try:
        assert first != second and os.path.dirname(first) == "/run"
        for d in (first, second):
            st = os.lstat(d)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
        parent = os.lstat("/run")
        assert parent.st_uid == 0 and not parent.st_mode & 0o022
    finally:
        os.rmdir(first)
        os.rmdir(second)


def test_acl_result_lives_in_the_run_directory_never_through_a_symlink(victim, plant):
    run_id = secrets.token_hex(4)
    former = plant(os.path.join(tempfile.gettempdir(), f"calab-acl-{run_id}.json"), victim)
    run_dir = make_run_dir()
    try:
        def compute():
            raise RuntimeError("probing failed")
        with pytest.raises(shared.AclRunFailed, match="RuntimeError: probing failed"):
            shared.once(run_dir, compute)          # written, then read back by the same path
        assert sorted(os.listdir(run_dir)) == ["acl-matrix.json", "acl-matrix.json.lock"]
        assert victim.read_text() == PRECIOUS and former.is_symlink()
        # even inside the run directory, a symlink (which only root could plant) is not followed
        os.unlink(os.path.join(run_dir, "acl-matrix.json"))
        plant(os.path.join(run_dir, f"acl-matrix.json.{os.getpid()}.tmp"), victim)
        with pytest.raises(FileExistsError):
            shared.once(run_dir, compute)
        assert victim.read_text() == PRECIOUS
    finally:
        for f in os.listdir(run_dir):
            os.unlink(os.path.join(run_dir, f))
        os.rmdir(run_dir)


def test_lab_inventory_output_is_never_written_through_a_symlink(tmp_path, victim, plant, monkeypatch):
    shared_dir = tmp_path / "shared"              # a folder like /tmp: anyone may plant files
    shared_dir.mkdir()
    shared_dir.chmod(0o1777)
    out = shared_dir / "lab.yaml"
    former = plant(shared_dir / ".lab.yaml.partial.yaml", victim)   # the old partial file
    planted_out = tmp_path / "victim2"
    planted_out.write_text(PRECIOUS)
    plant(out, planted_out)
    topo = load_topology("seed")
    st = SimpleNamespace(topology=topo, lab_id="cftest", mgmt_netns_file="/run/netns/cftest-mgmt")
    monkeypatch.setattr(cli.state, "require_running", lambda: st)
    monkeypatch.setattr("lab.sshd.lab_ssh_material", lambda _st: SshMaterial(
        key_file=str(tmp_path / "key"), known_hosts=str(tmp_path / "known_hosts"),
        hosts={n.name: (n.ip, 22) for n in topo.nodes}))
    assert cli.main(["inventory", "-o", str(out)]) == 0
    assert victim.read_text() == PRECIOUS and planted_out.read_text() == PRECIOUS
    assert former.is_symlink() and out.is_file() and not out.is_symlink()
    assert load_inventory(out).node_names == ("node1", "node2")
    assert sorted(p.name for p in shared_dir.iterdir()) == [".lab.yaml.partial.yaml", "lab.yaml"]


@pytest.mark.parametrize("write", [
    lambda path: snapshot.save({"version": 1}, path),           # --snapshot FILE
    lambda path: write_replacing(path, json.dumps({})),          # --acl-matrix FILE
], ids=["snapshot", "acl-matrix"])
def test_output_paths_replace_a_planted_symlink(tmp_path, victim, plant, write):
    link = plant(tmp_path / "out.json", victim)
    write(str(link))
    assert victim.read_text() == PRECIOUS
    assert link.is_file() and not link.is_symlink() and json.loads(link.read_text()) is not None
