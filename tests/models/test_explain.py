"""Explanations: each top category's share from the user's habits against the sequence model, and the drivers."""
from __future__ import annotations

import numpy as np

from models.explain import drivers_text, explain

NAMES = np.array(["", "(other)", "audio", "phones", "tv"], dtype=object)


def test_habit_and_sequence_shares_and_the_recent_drivers():
    top = np.array([[2, 3, 4]])
    habit = np.array([[0.0, 0.0, 1.0, -2.0, -3.0]])      # habit part at zero shares is -2.0
    sequence = np.array([[0.0, 0.0, 1.0, 3.0, 0.5]])
    seen = np.array([[False, False, True, True, False]])
    history = np.array([[0, 2, 2, 3, 1]])
    attention = np.array([[0.0, 0.3, 0.3, 0.35, 0.05]])
    line, = explain(top, np.array([[0.6, 0.4, 0.2]]), NAMES, habit, sequence, -2.0, seen, history, attention).to_pylist()
    # audio: habit lift 3 against sequence 1 -> 75%; phones: lift 0 against 3 -> 0%; tv is new to the user.
    assert line == "audio 0.60 (75% own habits), phones 0.40 (0% own habits), tv 0.20 (new to the user) " \
                   "| recent: audio 60%, phones 35%"


def test_without_attention_or_any_lift_it_says_so():
    top = np.array([[2]])
    line, = explain(top, np.array([[0.3]]), NAMES, np.full((1, 5), -2.0), np.full((1, 5), -1.0), -2.0,
                    np.ones((1, 5), bool), np.array([[2]])).to_pylist()
    assert line == "audio 0.30 (weak signals)"


def test_drivers_grow_with_the_history_not_the_catalogue():
    """A million categories and 20,000 users: a rows x vocabulary array would need 160 GB; the drivers
    sum each user's attention over their own history, ties and padding included."""
    names = np.array([f"c{i}" for i in range(1_000_000)], dtype=object)
    rows = 20_000
    history = np.tile(np.array([[0, 999_999, 5, 999_999, 5, 7]]), (rows, 1))
    attention = np.tile(np.array([[0.5, 0.2, 0.2, 0.2, 0.2, 0.2]]), (rows, 1))  # padding's attention is ignored
    drivers = drivers_text(history, attention, names).to_pylist()
    assert drivers[0] == drivers[-1] == "c5 40%, c999999 40%" and len(drivers) == rows
    assert drivers_text(np.zeros((2, 3), int), np.ones((2, 3)), names).to_pylist() == ["", ""]


def _reference_line(ids, probabilities, habit, sequence, habit_zero, seen, drivers):
    """The explanation of one row written the plain way, one f-string per category."""
    parts = []
    for c, p in zip(ids[:3], probabilities[:3]):
        lift, rest = max(habit[c] - habit_zero, 0.0), max(sequence[c], 0.0)
        note = ("new to the user" if not seen[c] else
                f"{lift / (lift + rest):.0%} own habits" if lift + rest > 0 else "weak signals")
        parts.append(f"{NAMES_MANY[c]} {p:.2f} ({note})")
    text = ", ".join(parts)
    return f"{text} | recent: {drivers}" if drivers else text


NAMES_MANY = np.array(["", "(other)", *[f"cat{i}" for i in range(40)]], dtype=object)


def test_the_vectorised_lines_match_plain_formatting_on_random_rows():
    """Arrow builds the lines from looked-up strings; on 2,000 random rows every line must equal the plain
    per-row formatting (shares, rounding, new and weak categories, rows with and without drivers)."""
    rng = np.random.default_rng(7)
    rows, size = 2_000, len(NAMES_MANY)
    habit = rng.normal(0, 2, (rows, size))
    sequence = rng.normal(0, 1, (rows, size))
    sequence[rng.random((rows, size)) < 0.3] = -1.0          # no lift from the sequence part
    seen = rng.random((rows, size)) < 0.6
    top = np.stack([rng.choice(np.arange(2, size), 5, replace=False) for _ in range(rows)])
    probabilities = np.sort(rng.random((rows, 5)), axis=1)[:, ::-1]
    history = rng.integers(0, size, (rows, 12))
    attention = rng.random((rows, 12))
    attention /= attention.sum(axis=1, keepdims=True)
    attention[:100] = 0.0                                     # rows without any driver
    lines = explain(top, probabilities, NAMES_MANY, habit, sequence, -0.5, seen, history, attention).to_pylist()
    drivers = drivers_text(history, attention, NAMES_MANY).to_pylist()
    assert sum(d == "" for d in drivers) >= 100
    for r in range(rows):
        mass: dict[int, float] = {}
        for c, a in zip(history[r], attention[r]):
            mass[int(c)] = mass.get(int(c), 0.0) + (a if c > 0 else 0.0)
        total = sum(mass.values())
        kept = sorted(((-m / total, c) for c, m in mass.items() if c > 0 and total > 0 and m / total >= 0.1))
        assert drivers[r] == ", ".join(f"{NAMES_MANY[c]} {-m:.0%}" for m, c in kept[:2])
    for r in range(rows):
        assert lines[r] == _reference_line(top[r], probabilities[r], habit[r], sequence[r], -0.5, seen[r], drivers[r])


def test_a_broken_models_nan_outputs_still_give_a_line():
    """NaN probabilities and logits (weights gone NaN): scoring must go on so that the predictions' suite can
    refuse the partition, rather than fail on an out-of-range string lookup."""
    nan = np.full((1, 5), np.nan)
    line, = explain(np.array([[2, 3]]), np.array([[np.nan, np.nan]]), NAMES, nan, nan, np.nan,
                    np.ones((1, 5), bool), np.array([[2, 3]]), np.array([[np.nan, np.nan]])).to_pylist()
    assert line == "audio 0.00 (weak signals), phones 0.00 (weak signals)"
