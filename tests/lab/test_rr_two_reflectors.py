"""Two route reflectors sharing a cluster id (topology rr2): the migration and its acceptance."""
import pytest

from tests.helpers import lab_cli, run_suites

pytestmark = pytest.mark.lab


def test_two_reflectors_with_one_cluster_id(tmp_path):
    assert lab_cli("up", "--topology", "rr2").returncode == 0
    try:
        before = tmp_path / "before.json"
        assert run_suites(tmp_path, "suites/", "--lab-attach", "-n", "2", f"--snapshot={before}").rc == 0
        mig = lab_cli("migrate-rr")
        assert mig.returncode == 0, mig.stdout + mig.stderr
        run = run_suites(tmp_path, "suites/", "--lab-attach", "-n", "2", f"--baseline={before}")
        assert run.rc == 0 and not run.failed(), run.output
        for test_id in ("test_route_reflectors::test_rr_session_established[rr1-rr2]",
                        "test_route_reflectors::test_rr_session_established[rr2-rr1]",
                        "test_sessions::test_session_established[node2-global-rr2]",
                        "test_route_reflectors::test_rr_client_configuration[rr2]"):
            assert run.outcomes.get(test_id) == "passed", f"{test_id}: {run.outcomes.get(test_id)}"
    finally:
        assert lab_cli("down").returncode == 0
