"""The generator: reproducible, realistic shape, every fault type, ground truth written."""
from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from jobs.generate.faults import FaultRates
from jobs.generate.main import generate
from jobs.generate.world import CATEGORIES, MIGRATIONS, TAXONOMY

DAYS = [dt.date(2024, 11, 1) + dt.timedelta(days=d) for d in range(3)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(root: Path) -> list[bytes]:
    return [line for p in sorted((root / "raw" / "events").rglob("*.jsonl.gz"))
            for line in gzip.decompress(p.read_bytes()).splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        generate(tmp_path / name / "raw", tmp_path / name / "truth", 300, DAYS, seed, FaultRates())
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_taxonomy_has_two_levels_and_migrations_stay_inside_it():
    assert all(len(c.split(".")) == 2 for c in CATEGORIES) and len(TAXONOMY) >= 5
    assert all(src in CATEGORIES and dst in CATEGORIES for src, dst, _, _ in MIGRATIONS)


def test_clean_generation_is_valid_json_with_realistic_shape(tmp_path):
    totals = generate(tmp_path / "raw", tmp_path / "truth", 2000, DAYS, 3, FaultRates.none())
    records = [json.loads(line) for line in _lines(tmp_path)]
    assert len(records) == totals["lines"] > 10_000
    types = [r["event_type"].lower() for r in records]
    views = sum(t in ("view", "pv", "page_view") for t in types)
    carts = sum(t in ("cart", "add_to_cart") for t in types)
    purchases = sum(t in ("purchase", "buy") for t in types)
    assert views > 10 * carts and carts > purchases > 0
    times = [r["event_time"] for r in records]
    assert any(isinstance(t, int) and t > 10**12 for t in times)  # epoch ms
    assert any(isinstance(t, int) and t < 10**11 for t in times)  # epoch s
    assert any(isinstance(t, str) and t.endswith("+05:30") for t in times)  # offsets
    assert len({r["event_id"] for r in records}) == len(records)


def test_ground_truth_has_every_users_latent_path(tmp_path):
    generate(tmp_path / "raw", tmp_path / "truth", 250, DAYS, 3, FaultRates())
    world = json.loads((tmp_path / "truth" / "world.json").read_text())
    assert world["categories"] == CATEGORIES and world["days"][0] == "2024-11-01"
    rows = gzip.decompress((tmp_path / "truth" / "latent_focus" / "part-00000.csv.gz").read_bytes()).decode().splitlines()
    assert rows[0] == "user_id,date,focus_category" and len(rows) == 1 + 250 * len(DAYS)
    assert (tmp_path / "raw" / "catalog" / "items.csv").exists()


def test_fault_rates_parse_and_reject_nonsense():
    rates = FaultRates.parse("duplicate=0.05,bot_users=0")
    assert rates.duplicate == 0.05 and rates.bot_users == 0 and rates.replay == FaultRates().replay
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRates.parse("gremlins=0.1")
    with pytest.raises(ValueError, match="between 0 and 0.5"):
        FaultRates.parse("duplicate=2")
