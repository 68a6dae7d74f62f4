import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The program's packages (components, settings) and tools/ (harness: the program under the SDK's mocks).
for folder in (ROOT, ROOT / "tools"):
    sys.path.insert(0, str(folder))


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory):
    """busybox applets on PATH, as in the backup container (tests/backup_helpers.py)."""
    from backup_helpers import busybox_toolbox

    return busybox_toolbox(tmp_path_factory.mktemp("busybox"))
