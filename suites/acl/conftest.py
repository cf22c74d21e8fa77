"""The session's ACL run (probe once per test run, shared by xdist workers)."""
import pytest

from fixtures import acl
from fixtures.pytest_lab import acl_matrix_path


@pytest.fixture(scope="session")
def acl_run(lab, request):
    report = acl_matrix_path(request.config)
    try:
        return acl.shared_run(lab, report)
    except Exception as exc:   # one clear failure per acl test, not a traceback storm
        pytest.fail(f"the ACL matrix could not be probed: {type(exc).__name__}: {exc}", pytrace=False)
