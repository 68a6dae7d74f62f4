import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory):
    """busybox applets on PATH, as in the backup container (tests/backup_helpers.py)."""
    from backup_helpers import busybox_toolbox

    return busybox_toolbox(tmp_path_factory.mktemp("busybox"))
