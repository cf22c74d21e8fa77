"""confd's check-and-replace step, without starting BIRD (no namespace, no root needed)."""
from __future__ import annotations

import os
import shutil

import pytest

from lab.calico import model
from lab.calico.bird.confd import Confd, RouteReflectorConfd
from lab.calico.bird.config import render_rr_config

BIRD = shutil.which("bird") or "/usr/sbin/bird"
pytestmark = pytest.mark.skipif(not os.path.exists(BIRD), reason="BIRD 1.6 is not installed")


class StaticDatastore:
    def __init__(self, snapshot):
        self.snap = snapshot

    def snapshot(self):
        return self.snap

    def wait_for_change(self, index, timeout):
        return index


SNAP = model.Snapshot(hosts=(model.Host("a", "10.77.0.1", "10.77.0.1"),),
                      pools=(model.Pool("192.168.0.0/16"),), affinities=(("a", "192.168.0.0/26"),))


def test_install_checks_then_replaces_atomically(tmp_path):
    conf = tmp_path / "cfg" / "bird.cfg"
    logs = []
    c = Confd(StaticDatastore(SNAP), "a", "10.77.0.1", str(conf), str(tmp_path / "bird.ctl"),
              bird=BIRD, log=logs.append)
    good = c.render(SNAP)
    assert c._install(good) and conf.read_text() == good
    assert not c._install("protocol bgp peer { }\n")
    assert "syntax error" in c.last_error
    assert conf.read_text() == good
    assert [p.name for p in conf.parent.iterdir()] == ["bird.cfg"]
    assert logs and all(m.startswith("confd: ") for m in logs)
    assert any("check of new bird.cfg failed" in m for m in logs)


def test_rejected_text_is_not_rechecked_on_every_pass(tmp_path):
    conf = tmp_path / "bird.cfg"
    logs = []
    c = Confd(StaticDatastore(SNAP), "a", "10.77.0.1", str(conf), str(tmp_path / "bird.ctl"),
              bird=BIRD, log=logs.append)
    assert c.apply("garbage {\n") is False and not conf.exists()
    n = len(logs)
    assert c.apply("garbage {\n") is False
    assert len(logs) == n


def test_bird_command_lines(tmp_path):
    c = Confd(StaticDatastore(SNAP), "a", "10.77.0.1", "rel/bird.cfg", "run/bird.ctl",
              bird_argv_prefix=["ip", "netns", "exec", "x"])
    assert c.bird_argv == ["ip", "netns", "exec", "x", "bird", "-R", "-s",
                           os.path.abspath("run/bird.ctl"), "-d", "-c", os.path.abspath("rel/bird.cfg")]
    rr = RouteReflectorConfd(StaticDatastore(SNAP), "10.77.0.10", "c", "s")
    assert rr.render(SNAP) == render_rr_config(SNAP, "10.77.0.10")
