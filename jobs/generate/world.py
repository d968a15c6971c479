"""The synthetic world: a two-level category taxonomy, how interests migrate
between categories, and an item catalog with Zipf-like popularity.

The migration structure is the ground truth the model must discover: life-cycle
moves (a new phone leads to phone accessories, maternity to infant to toddler),
hobby progressions (fitness to running to cycling) and seasonal moves whose
weight follows the calendar (summer to winter clothing in autumn).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

TAXONOMY: dict[str, list[str]] = {
    "electronics": ["phones", "phone_accessories", "laptops", "laptop_accessories", "audio", "cameras", "gaming"],
    "baby": ["maternity", "infant", "toddler", "kids_toys"],
    "sports": ["fitness", "running", "cycling", "outdoor"],
    "home": ["furniture", "decor", "kitchen", "garden"],
    "fashion": ["summer", "winter", "shoes", "bags"],
    "beauty": ["skincare", "makeup", "fragrance"],
    "books": ["fiction", "nonfiction", "children"],
    "grocery": ["snacks", "beverages", "pantry"],
    "pets": ["dog", "cat"],
    "auto": ["parts", "car_accessories"],
}
CATEGORIES: list[str] = [f"{top}.{leaf}" for top, leaves in TAXONOMY.items() for leaf in leaves]
CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}

# (from, to, weight, seasonal): seasonal moves peak in autumn (see season_factor).
MIGRATIONS: list[tuple[str, str, float, bool]] = [
    ("electronics.phones", "electronics.phone_accessories", 0.6, False),
    ("electronics.phones", "electronics.audio", 0.3, False),
    ("electronics.laptops", "electronics.laptop_accessories", 0.6, False),
    ("electronics.laptops", "electronics.gaming", 0.2, False),
    ("electronics.cameras", "sports.outdoor", 0.4, False),
    ("electronics.gaming", "electronics.audio", 0.4, False),
    ("baby.maternity", "baby.infant", 0.9, False),
    ("baby.infant", "baby.toddler", 0.8, False),
    ("baby.toddler", "baby.kids_toys", 0.6, False),
    ("baby.toddler", "books.children", 0.3, False),
    ("sports.fitness", "sports.running", 0.5, False),
    ("sports.fitness", "grocery.beverages", 0.2, False),
    ("sports.running", "sports.cycling", 0.4, False),
    ("sports.running", "fashion.shoes", 0.4, False),
    ("sports.cycling", "sports.outdoor", 0.5, False),
    ("home.furniture", "home.decor", 0.6, False),
    ("home.furniture", "home.kitchen", 0.3, False),
    ("home.garden", "home.decor", 0.3, False),
    ("fashion.summer", "fashion.winter", 0.7, True),
    ("sports.outdoor", "fashion.winter", 0.3, True),
    ("home.garden", "home.kitchen", 0.4, True),
    ("beauty.skincare", "beauty.makeup", 0.5, False),
    ("beauty.makeup", "beauty.fragrance", 0.4, False),
    ("pets.dog", "pets.cat", 0.1, False),
    ("auto.parts", "auto.car_accessories", 0.6, False),
    ("books.fiction", "books.nonfiction", 0.3, False),
    ("grocery.snacks", "grocery.beverages", 0.4, False),
]
ITEMS_PER_CATEGORY = 400
ZIPF_EXPONENT = 1.07
TIME_ZONE_OFFSETS_MIN = np.array([0, 60, 120, -300, -360, -480, 330, 480, 540, 600])
TIME_ZONE_WEIGHTS = np.array([0.12, 0.15, 0.06, 0.17, 0.08, 0.1, 0.1, 0.12, 0.06, 0.04])
# Share of a day's sessions starting in each local hour: quiet nights, evening peak.
HOURLY_WEIGHTS = np.array(
    [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 7, 7.5, 6.5, 4.5, 2.5]
)


def season_factor(day: dt.date) -> float:
    """Weight of seasonal moves on ``day``: peaks mid-October, lowest in April."""
    return 1.0 + 0.8 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 288) / 365.25)


@dataclass(frozen=True)
class World:
    """Everything about the synthetic world that does not depend on a user."""

    popularity: np.ndarray  # (C,) share of exploration traffic per category
    item_cdf: np.ndarray  # (ITEMS_PER_CATEGORY,) cumulative Zipf weights of item ranks
    item_prices: np.ndarray  # (C, ITEMS_PER_CATEGORY)
    base_transitions: np.ndarray  # (C, C) non-seasonal move weights, rows not normalised
    seasonal_transitions: np.ndarray  # (C, C) seasonal move weights

    def transition_cdf(self, day: dt.date) -> np.ndarray:
        """Row-wise cumulative move probabilities for ``day`` (rows sum to 1)."""
        weights = self.base_transitions + season_factor(day) * self.seasonal_transitions
        weights = weights / weights.sum(axis=1, keepdims=True)
        return np.cumsum(weights, axis=1)

    def to_json(self) -> dict:
        return {
            "categories": CATEGORIES,
            "popularity": self.popularity.round(6).tolist(),
            "migrations": [list(m) for m in MIGRATIONS],
            "items_per_category": ITEMS_PER_CATEGORY,
            "zipf_exponent": ZIPF_EXPONENT,
        }


def build_world(seed: int) -> World:
    """The world for ``seed``: same seed, same world."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    n = len(CATEGORIES)
    popularity = rng.gamma(2.0, 1.0, n)
    popularity /= popularity.sum()
    ranks = np.arange(1, ITEMS_PER_CATEGORY + 1)
    item_weights = ranks ** -ZIPF_EXPONENT
    item_cdf = np.cumsum(item_weights / item_weights.sum())
    category_price = rng.lognormal(3.2, 0.8, n)
    item_prices = np.round(category_price[:, None] * rng.lognormal(0, 0.35, (n, ITEMS_PER_CATEGORY)), 2)
    base = np.zeros((n, n))
    seasonal = np.zeros((n, n))
    for src, dst, weight, is_seasonal in MIGRATIONS:
        target = seasonal if is_seasonal else base
        target[CATEGORY_INDEX[src], CATEGORY_INDEX[dst]] += weight
    # Every category can also drift to a sibling or to anything popular, weakly.
    top_of = np.array([c.split(".")[0] for c in CATEGORIES])
    siblings = (top_of[:, None] == top_of[None, :]) & ~np.eye(n, dtype=bool)
    base += 0.05 * siblings / np.maximum(siblings.sum(axis=1, keepdims=True), 1)
    base += 0.05 * popularity[None, :]
    return World(popularity, item_cdf, item_prices, base, seasonal)


def catalog_rows(world: World):
    """Rows of the item catalog: item_id, category_id, category, price."""
    for c, category in enumerate(CATEGORIES):
        for rank in range(ITEMS_PER_CATEGORY):
            yield item_id(c, rank), category_id(c), category, float(world.item_prices[c, rank])


def item_id(category: int, rank: int) -> int:
    return 100000 + category * 1000 + rank


def category_id(category: int) -> int:
    return 5000 + category
