"""The backup job's Qdrant backup and restore (lib/qdrant.sh), against the Qdrant
stand-in of the real-engine tests (tests/e2e/images/qdrant) run as a local process,
and a real restic repository.

The stand-in serves the calls the script makes (collection exists, exact count,
create/download/delete a snapshot, upload with priority=snapshot) as Qdrant 1.12
documents them and refuses any call without the api-key; its snapshots are its
own tar format, so what is compared here is the collection's points before and
after, not Qdrant's engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backup_helpers import (Qdrant, restic_env, restic_files, restic_snapshots, run_lib, script_env, server_dir,
                            stub_bin)
from real_tools import need

COLLECTION = "test_documents"


def fill(server: Qdrant, count: int = 300) -> None:
    server.api("PUT", f"/collections/{COLLECTION}", {"vectors": {"size": 4, "distance": "Cosine"}})
    points = [{"id": i, "vector": [i % 7 + 0.5, i % 3 + 0.25, 1.0, i / count],
               "payload": {"source": f"kitab-{i // 50}.pdf", "page": i % 50,
                           "text": "بسم الله" if i == 7 else ""}}
              for i in range(count)]
    server.api("PUT", f"/collections/{COLLECTION}/points?wait=true", {"points": points})


@pytest.fixture
def qdrant():
    server = Qdrant(server_dir("shia-backup-qdrant-")).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


def qdrant_env(toolbox: Path, tmp_path: Path, server: Qdrant, *extra_path: Path, **extra: str) -> dict[str, str]:
    need("curl")
    return script_env(toolbox, tmp_path, *extra_path, **{**restic_env(tmp_path), **server.env(COLLECTION), **extra})


def test_a_snapshot_round_trip_brings_back_every_point_even_into_a_new_stack(qdrant, toolbox, tmp_path):
    fill(qdrant)
    before = qdrant.points(COLLECTION)
    env = qdrant_env(toolbox, tmp_path, qdrant)
    backup = run_lib("qdrant", "backup", "daily", env=env)
    assert backup.returncode == 0, backup.stderr
    (stored,) = restic_snapshots(env, "qdrant")
    assert backup.stdout == stored["short_id"] + "\n"
    assert sorted(restic_files(env, stored["id"], "qdrant")) == ["collection.info", "collection.snapshot"]
    assert list((qdrant.folder / "snapshots").rglob("*.snapshot")) == []  # the server's copy was deleted
    assert "300 points" in backup.stderr

    # Points deleted and one changed after the backup: the restore puts the
    # collection back as it was (priority=snapshot), and counts it.
    qdrant.api("POST", f"/collections/{COLLECTION}/points/delete?wait=true", {"points": list(range(100))})
    qdrant.api("PUT", f"/collections/{COLLECTION}/points?wait=true",
               {"points": [{"id": 150, "vector": [0, 0, 0, 1], "payload": {"source": "changed"}}]})
    restore = run_lib("qdrant", "restore", "latest", env=env)
    assert restore.returncode == 0, restore.stderr
    assert qdrant.points(COLLECTION) == before
    assert "300 points" in restore.stderr
    assert qdrant.api_key not in backup.stdout + backup.stderr + restore.stdout + restore.stderr

    # A rebuilt stack: Qdrant starts on an empty storage volume; the upload
    # makes the collection.
    qdrant.stop()
    shutil.rmtree(qdrant.folder / "storage")
    qdrant.start()
    again = run_lib("qdrant", "restore", stored["short_id"], env=env)
    assert again.returncode == 0, again.stderr
    assert qdrant.points(COLLECTION) == before


def test_the_first_backup_of_a_new_stack_succeeds_and_stores_nothing(qdrant, toolbox, tmp_path):
    # The case: the collection does not exist until the app makes it.
    env = qdrant_env(toolbox, tmp_path, qdrant)
    backup = run_lib("qdrant", "backup", "daily", env=env)
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout == ""
    assert f"collection {COLLECTION} does not exist yet" in backup.stderr
    assert restic_snapshots(env, "qdrant") == []

    restore = run_lib("qdrant", "restore", "latest", env=env)
    assert restore.returncode != 0
    assert "nothing to restore" in restore.stderr and "did not exist" in restore.stderr
    assert qdrant.api("GET", f"/collections/{COLLECTION}/exists")["result"]["exists"] is False


@pytest.mark.parametrize("fault", ["wrong api key", "server down"])
def test_an_unanswered_question_is_a_failure_not_a_missing_collection(qdrant, toolbox, tmp_path, fault):
    # "Not created yet" must come from Qdrant itself: any other failure fails.
    extra = {"QDRANT_API_KEY": "not-the-key"} if fault == "wrong api key" else {"QDRANT_URL": "http://127.0.0.1:9"}
    backup = run_lib("qdrant", "backup", "daily", env=qdrant_env(toolbox, tmp_path, qdrant, **extra))
    assert backup.returncode != 0 and "cannot ask Qdrant" in backup.stderr
    assert "does not exist yet" not in backup.stderr


def test_a_download_that_does_not_match_the_checksum_is_refused(qdrant, toolbox, tmp_path):
    fill(qdrant, 20)
    # A download spoiled on the way while curl exits 0.
    curl = need("curl")
    fake = stub_bin(tmp_path / "fake-bin", "curl", f'''{curl} "$@" || exit
for arg; do [ "$prev" = --output ] && printf 'x' >> "$arg"; prev=$arg; done
''')
    env = qdrant_env(toolbox, tmp_path, qdrant, fake)
    result = run_lib("qdrant", "backup", "daily", env=env)
    assert result.returncode != 0 and "does not match the checksum" in result.stderr
    assert restic_snapshots(env, "qdrant") == []


def test_a_collection_written_to_during_every_snapshot_fails_the_backup(qdrant, toolbox, tmp_path):
    fill(qdrant, 20)
    # Each count answers one more point than the last (a stand-in for an ingest running).
    curl = need("curl")
    counter = tmp_path / "counted"
    fake = stub_bin(tmp_path / "fake-bin", "curl", f'''case "$*" in
*points/count*) n=$(cat {counter} 2>/dev/null || echo 20); echo $((n + 1)) > {counter}
    printf '{{"result":{{"count":%s}},"status":"ok","time":0}}' "$n"; exit 0 ;;
esac
exec {curl} "$@"
''')
    env = qdrant_env(toolbox, tmp_path, qdrant, fake)
    result = run_lib("qdrant", "backup", "daily", env=env)
    assert result.returncode != 0 and "kept changing" in result.stderr
    assert result.stderr.count("during the snapshot") == 3
    assert restic_snapshots(env, "qdrant") == []
    assert list((qdrant.folder / "snapshots").rglob("*.snapshot")) == []  # none left on the server
