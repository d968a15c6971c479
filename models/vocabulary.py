"""Category and event-type vocabularies, versioned with each model.

Ids 0 and 1 are reserved: 0 pads short histories, 1 is the out-of-vocabulary
bucket that any category unseen at training time maps to, so a model keeps
scoring when the catalog grows (the new category simply cannot be predicted
until the next training run adds it).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from jobs.core.tables import EVENT_TYPES

PAD, OOV = 0, 1


@dataclass(frozen=True)
class Vocabulary:
    """Categories in id order (id = position + 2)."""

    categories: tuple[str, ...]

    @classmethod
    def fit(cls, categories: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Categories seen at least ``min_count`` times, most frequent first (ties by name)."""
        counts = Counter(c for c in categories if c is not None)
        kept = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        if not kept:
            raise ValueError("no category to build a vocabulary from: the training sequences are empty")
        return cls(tuple(kept))

    @property
    def size(self) -> int:
        """Ids including padding and out-of-vocabulary."""
        return len(self.categories) + 2

    def index(self) -> dict[str, int]:
        return {c: i + 2 for i, c in enumerate(self.categories)}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"categories": list(self.categories), "pad": PAD, "oov": OOV,
                                    "event_types": list(EVENT_TYPES)}, indent=1))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls(tuple(json.loads(path.read_text())["categories"]))


def event_type_index() -> dict[str, int]:
    """view 2, cart 3, purchase 4, fav 5 (0 pad, 1 unknown)."""
    return {t: i + 2 for i, t in enumerate(EVENT_TYPES)}
