"""One error type for everything a user can get wrong: its message is the whole story."""


class LabError(Exception):
    """A problem the user can fix; str(err) says what is wrong and how to fix it.

    The CLI prints it as one line and exits non-zero; the pytest plugin turns it into a
    usage error. Never raise it with a traceback-worthy message."""


class TopologyError(LabError):
    """A topology file that is missing, not YAML, or not a valid lab description."""


class InventoryError(LabError):
    """An inventory file (a real lab's hosts) that is missing, unreadable or invalid."""
