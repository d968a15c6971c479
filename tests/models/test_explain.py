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
    line, = explain(top, np.array([[0.6, 0.4, 0.2]]), NAMES, habit, sequence, -2.0, seen, history, attention)
    # audio: habit lift 3 against sequence 1 -> 75%; phones: lift 0 against 3 -> 0%; tv is new to the user.
    assert line == "audio 0.60 (75% own habits), phones 0.40 (0% own habits), tv 0.20 (new to the user) " \
                   "| recent: audio 60%, phones 35%"


def test_without_attention_or_any_lift_it_says_so():
    top = np.array([[2]])
    line, = explain(top, np.array([[0.3]]), NAMES, np.full((1, 5), -2.0), np.full((1, 5), -1.0), -2.0,
                    np.ones((1, 5), bool), np.array([[2]]))
    assert line == "audio 0.30 (weak signals)"


def test_drivers_grow_with_the_history_not_the_catalogue():
    """A million categories and 20,000 users: a rows x vocabulary array would need 160 GB; the drivers
    sum each user's attention over their own history, ties and padding included."""
    names = np.array([f"c{i}" for i in range(1_000_000)], dtype=object)
    rows = 20_000
    history = np.tile(np.array([[0, 999_999, 5, 999_999, 5, 7]]), (rows, 1))
    attention = np.tile(np.array([[0.5, 0.2, 0.2, 0.2, 0.2, 0.2]]), (rows, 1))  # padding's attention is ignored
    drivers = drivers_text(history, attention, names)
    assert drivers[0] == drivers[-1] == "c5 40%, c999999 40%" and len(drivers) == rows
    assert drivers_text(np.zeros((2, 3), int), np.ones((2, 3)), names) == ["", ""]
