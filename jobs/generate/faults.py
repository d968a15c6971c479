"""Faults injected into the landing files, at configurable per-event rates.

Real event feeds are at-least-once, late and sometimes broken; the pipeline
must count and quarantine every kind of damage, so the generator produces each.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class FaultRates:
    """Share of events hit by each fault (bots: share of users)."""

    duplicate: float = 0.015  # the exact same line delivered twice
    replay: float = 0.01  # the same event_id re-sent later, some the next day
    late: float = 0.01  # an event landing in the next day's partition
    malformed_json: float = 0.003
    missing_field: float = 0.003  # a required field absent or null
    wrong_type: float = 0.002  # e.g. user_id as an object, event_time as a boolean
    unknown_event_type: float = 0.002
    future_timestamp: float = 0.001
    ancient_timestamp: float = 0.001
    invalid_utf8: float = 0.001
    bot_users: float = 0.00005  # at least one bot whenever this is > 0

    @classmethod
    def none(cls) -> "FaultRates":
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def parse(cls, spec: str | None, base: "FaultRates | None" = None) -> "FaultRates":
        """``"duplicate=0.02,bot_users=0"`` over the defaults (or ``base``)."""
        rates = base or cls()
        if not spec:
            return rates
        known = {f.name for f in fields(cls)}
        updates = {}
        for item in spec.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(sorted(known))}")
            try:
                updates[name] = float(value)
            except ValueError:
                raise ValueError(f"fault rate for {name!r} must be a number, got {value!r}") from None
            if not 0.0 <= updates[name] <= 0.5:
                raise ValueError(f"fault rate for {name!r} must be between 0 and 0.5, got {value}")
        return replace(rates, **updates)

    def to_json(self) -> dict:
        return asdict(self)


# Codes used inside the generator for the per-event line faults.
LINE_FAULTS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "future_timestamp",
    "ancient_timestamp",
    "invalid_utf8",
)
