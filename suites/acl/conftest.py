"""The session's ACL run (probe once per test run, shared by xdist workers)."""
import pytest

from fixtures import acl


@pytest.fixture(scope="session")
def acl_run(lab, request):
    report = str(request.config.rootpath / "reports" / "acl-matrix.json")
    return acl.shared_run(lab, report)
