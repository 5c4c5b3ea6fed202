"""Job records on disk: a record that cannot be loaded never stops a peer
from starting; it is quarantined, logged and shown as a FAILED job."""

from __future__ import annotations

import json
import os

import pytest

from spirtd.jobs.records import JobRecord, RecordError, load_all, parse_record, write_record
from spirtd.jobs.spec import parse
from tests.jobs.jobs import DIGITS, spirtctl, submit, wait_for_end

GOOD_SPEC = parse(DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 3")).to_dict()


def record_json(**changes) -> dict:
    values = {"id": "j0000000001", "spec": GOOD_SPEC, "phase": "queued", "submitted_unix": 1.0}
    values.update(changes)
    return values


BAD_RECORDS = {
    "epochs-1e308": (json.dumps(record_json(spec={**GOOD_SPEC, "epochs": 1e308, "rounds": None})).encode(),
                     "its spec is no longer valid"),
    "huge-epochs": (json.dumps(record_json(spec={**{k: v for k, v in GOOD_SPEC.items() if k != "rounds"},
                                                 "epochs": 1e308})).encode(), "epochs must be at most"),
    "garbage": (os.urandom(64), "not"),
    "not-utf8": (b'{"id": "\xff\xfe"}', "not UTF-8"),
    "nested": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "not-an-object": (b"[1, 2]", "not a JSON object"),
    "wrong-type": (json.dumps(record_json(total_rounds="many")).encode(), "'total_rounds' holds str"),
    "bool-for-int": (json.dumps(record_json(total_rounds=True)).encode(), "'total_rounds' holds bool"),
    "unknown-field": (json.dumps(record_json(colour="blue")).encode(), "fields are not a job record's"),
    "bad-phase": (json.dumps(record_json(phase="exploded")).encode(), "is not a job phase"),
    "other-id": (json.dumps(record_json(id="j9999999999")).encode(), "not the one its file name says"),
    "empty": (b"", "not valid JSON"),
}


@pytest.mark.parametrize("name", BAD_RECORDS)
def test_records_that_cannot_be_loaded_say_why(tmp_path, name):
    data, words = BAD_RECORDS[name]
    path = tmp_path / "j0000000001.json"
    path.write_bytes(data)
    with pytest.raises(RecordError, match=words if name != "garbage" else None):
        parse_record(path)


def test_records_round_trip_and_bad_ones_go_to_quarantine(tmp_path, caplog):
    write_record(tmp_path, JobRecord(**record_json()))
    (tmp_path / "j0000000002.json").write_bytes(b"not json at all")
    good, bad = load_all(tmp_path)
    assert [r.id for r, _ in good] == ["j0000000001"] and good[0][1].to_dict() == GOOD_SPEC
    assert [(r.id, r.phase) for r, _ in bad] == [("j0000000002", "failed")]
    assert "not valid JSON" in bad[0][0].error and "quarantine" in bad[0][0].error
    assert not (tmp_path / "j0000000002.json").exists() and (tmp_path / "quarantine" / "j0000000002.json").exists()
    assert any("cannot be loaded" in r.getMessage() for r in caplog.records)
    # and on the next start it is still shown, with its reason
    _, again = load_all(tmp_path)
    assert [r.id for r, _ in again] == ["j0000000002"] and "not valid JSON" in again[0][0].error


def test_a_peer_with_unloadable_records_starts_and_shows_them_failed(peers, certs, tmp_path):
    """The crash loop of `epochs = 1e308`: its record is moved aside and the
    peer keeps serving, every start; good jobs beside it still run."""
    peer = peers.start("node1")
    good_id = submit(certs, peer, _spec_file(tmp_path)).stdout.strip()
    assert wait_for_end(certs, peer, good_id)["state"] == "succeeded"
    peer.signal(15)
    peer.wait()
    jobs = peer.data_dir / "jobs"
    for i, name in enumerate(("epochs-1e308", "garbage", "nested", "not-utf8")):
        job_id = f"j{i:010d}"
        data = BAD_RECORDS[name][0]
        if name == "epochs-1e308":
            spec = {**{k: v for k, v in GOOD_SPEC.items() if k != "rounds"}, "epochs": 1e308}
            data = json.dumps(record_json(id=job_id, spec=spec)).encode()
        (jobs / f"{job_id}.json").write_bytes(data)
    for start in range(2):  # and again after a restart: no crash loop
        peers.restart(peer)
        listed = spirtctl(certs, peer, "job", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        by_id = {j["job_id"]: j for j in json.loads(listed.stdout)}
        assert by_id[good_id]["state"] == "succeeded" and by_id[good_id]["model_kept"]
        for i in range(4):
            assert by_id[f"j{i:010d}"]["state"] == "failed" and "could not be loaded" in by_id[f"j{i:010d}"]["error"]
        status = spirtctl(certs, peer, "job", "status", "j0000000000", "--json")
        assert status.returncode == 0 and "epochs must be at most" in json.loads(status.stdout)["error"]
        assert peer.alive
        peer.signal(15)
        assert peer.wait() == 0
    assert sorted(p.name for p in (jobs / "quarantine").iterdir()) == [f"j{i:010d}.json" for i in range(4)]
    peers.restart(peer)
    # a record with no owner (as quarantined ones are) is an operator's to delete
    refused = spirtctl(certs, peer, "job", "delete", "j0000000001")
    assert refused.returncode == 1 and "only its owner or an operator" in refused.stderr
    deleted = spirtctl(certs, peer, "job", "delete", "j0000000001", name="ops")
    assert deleted.returncode == 0, deleted.stderr
    assert not (jobs / "quarantine" / "j0000000001.json").exists()


def _spec_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 3"))
    return path
