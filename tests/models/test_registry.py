"""The registry on its own: version names and order, atomic pointers under concurrent writers, file hashes."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from models.registry import Registry, RegistryError, atomic_write, check_version_name, verify_files


def _register(registry: Registry, version: str) -> None:
    folder = registry.version_dir(version)
    (folder / "saved_model" / "variables").mkdir(parents=True)
    (folder / "saved_model" / "saved_model.pb").write_bytes(b"graph")
    (folder / "saved_model" / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x00weights" * 10)
    (folder / "vocabulary.json").write_text('{"categories": ["a"]}')
    registry.write_metadata(version, {"version": version, "files": registry.file_hashes(version)})


def test_versions_order_by_number_not_by_text(tmp_path):
    registry = Registry(tmp_path)
    for version in ("2024-11-02.9", "2024-11-02.10", "2024-11-01.11", "2024-11-02.2"):
        _register(registry, version)
    assert registry.versions() == ["2024-11-01.11", "2024-11-02.2", "2024-11-02.9", "2024-11-02.10"]
    assert registry.latest() == "2024-11-02.10"
    assert registry.new_version(dt.date(2024, 11, 2)) == "2024-11-02.11"


@pytest.mark.parametrize("name", ["../../etc", "2024-11-02.1/../../x", "2024-11-02.1\x00", "latest", "", "2024-11-02.0",
                                  "2024-11-02.01", "/abs/2024-11-02.1", "2024-11-02.1 ", "2024-11-02.-1", None])
def test_a_name_that_is_not_a_version_never_becomes_a_path(tmp_path, name):
    with pytest.raises(RegistryError):
        Registry(tmp_path).version_dir(name)
    with pytest.raises(RegistryError):
        check_version_name(name)


def test_a_champion_naming_a_path_is_refused_from_an_old_pointer_or_a_tampered_tag(tmp_path):
    from models.tracking import REGISTERED_MODEL, VERSION_TAG, Tracking

    registry = Registry(tmp_path)
    atomic_write(registry.root / "champion.json", json.dumps({"version": "../../elsewhere"}))
    with pytest.raises(RegistryError):
        registry.champion()
    (registry.root / "champion.json").unlink()
    registry.set_champion("2024-11-02.1")
    client = Tracking(tmp_path).client
    number = client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version
    client.set_model_version_tag(REGISTERED_MODEL, number, VERSION_TAG, "../../elsewhere")
    with pytest.raises(RegistryError):
        registry.champion()


def test_an_old_lakes_champion_pointer_is_adopted_into_the_alias_once(tmp_path):
    registry = Registry(tmp_path)
    atomic_write(registry.root / "champion.json", json.dumps({"version": "2024-11-02.3", "decision": {}}))
    assert registry.champion() == "2024-11-02.3"
    assert not (registry.root / "champion.json").exists() and (registry.root / "champion.json.adopted").is_file()
    registry.clear_champion()
    assert registry.champion() is None  # the adopted pointer is not read again


def test_concurrent_promotions_leave_one_whole_alias(tmp_path):
    """Writers in several processes move the alias while a reader resolves it: every read is a version some
    writer set (never an error), and the alias ends on one of the last ones."""
    import subprocess
    import sys

    registry = Registry(tmp_path)
    registry.set_champion("2024-11-02.1")
    code = ("import sys; from pathlib import Path; from models.registry import Registry; "
            "r = Registry(Path(sys.argv[1])); w = int(sys.argv[2])\n"
            "for i in range(15): r.set_champion(f'2024-11-0{w}.{i + 1}')")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(w)]) for w in (3, 4, 5)]
    seen = set()
    while any(w.poll() is None for w in writers):
        seen.add(registry.champion())
    assert [w.returncode for w in writers] == [0, 0, 0]
    assert seen <= {"2024-11-02.1"} | {f"2024-11-0{w}.{i}" for w in (3, 4, 5) for i in range(1, 16)}
    assert registry.champion() in {"2024-11-03.15", "2024-11-04.15", "2024-11-05.15"}


def test_model_files_are_checked_against_their_registration_hashes(tmp_path):
    registry = Registry(tmp_path)
    _register(registry, "2024-11-02.1")
    folder = registry.version_dir("2024-11-02.1")
    verify_files(folder, registry.metadata("2024-11-02.1"))
    weights = folder / "saved_model" / "variables" / "variables.data-00000-of-00001"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + b"\x01")  # one byte changed
    with pytest.raises(RegistryError, match="1 file\\(s\\) differ from registration"):
        verify_files(folder, registry.metadata("2024-11-02.1"))
    weights.write_bytes(original)
    (folder / "saved_model" / "extra.pb").write_bytes(b"planted")
    with pytest.raises(RegistryError, match="extra.pb"):
        verify_files(folder, registry.metadata("2024-11-02.1"))
    (folder / "saved_model" / "extra.pb").unlink()
    (folder / "vocabulary.json").unlink()
    with pytest.raises(RegistryError, match="vocabulary.json"):
        verify_files(folder, registry.metadata("2024-11-02.1"))
    registry.write_metadata("2024-11-02.1", {"version": "2024-11-02.1"})
    with pytest.raises(RegistryError, match="no file hashes"):
        verify_files(folder, registry.metadata("2024-11-02.1"))


def test_one_decision_per_candidate_is_found_again(tmp_path):
    registry = Registry(tmp_path)
    assert registry.decision_for("2024-11-02.1") is None
    now = dt.datetime.now(dt.timezone.utc)
    registry.record_decision({"decided_at": now, "candidate": "2024-11-02.1", "promoted": True, "reason": "won"})
    registry.record_decision({"decided_at": now, "candidate": "2024-11-02.2", "promoted": False, "reason": "lost"})
    assert registry.decision_for("2024-11-02.1")["reason"] == "won"
    assert registry.decision_for("2024-11-03.1") is None


def test_promotion_survives_a_crash_at_each_write_and_retries_decide_once(tmp_path, monkeypatch):
    from deltalake import DeltaTable

    from jobs.evaluate.main import settle_decision

    registry = Registry(tmp_path)
    registry.set_champion("2024-11-01.1", {"reason": "before"})
    calls = []

    def decide(candidate: str, previous: str):
        def now():
            calls.append(candidate)
            return {"decided_at": dt.datetime.now(dt.timezone.utc), "candidate": candidate,
                    "previous_champion": previous, "promoted": True, "reason": f"promoted {candidate}"}
        return now

    def decisions() -> list[str]:
        return DeltaTable(str(tmp_path / "model_decisions")).to_pyarrow_table()["candidate"].to_pylist()

    # 1. The process dies between recording the decision and moving the pointer.
    real = Registry.set_champion
    monkeypatch.setattr(Registry, "set_champion", lambda *a, **k: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        settle_decision(registry, "2024-11-02.1", decide("2024-11-02.1", "2024-11-01.1"))
    monkeypatch.setattr(Registry, "set_champion", real)
    assert decisions() == ["2024-11-02.1"] and registry.champion() == "2024-11-01.1"
    # 2. The retry decides nothing new and completes the promotion.
    settle_decision(registry, "2024-11-02.1", decide("2024-11-02.1", "2024-11-01.1"))
    assert calls == ["2024-11-02.1"] and decisions() == ["2024-11-02.1"] and registry.champion() == "2024-11-02.1"
    # 3. A later candidate wins; a late retry of the earlier one does not take the pointer back.
    settle_decision(registry, "2024-11-03.1", decide("2024-11-03.1", "2024-11-02.1"))
    settle_decision(registry, "2024-11-02.1", decide("2024-11-02.1", "2024-11-01.1"))
    assert calls == ["2024-11-02.1", "2024-11-03.1"] and registry.champion() == "2024-11-03.1"
    assert sorted(decisions()) == ["2024-11-02.1", "2024-11-03.1"]
