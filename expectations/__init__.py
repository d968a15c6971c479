"""Great Expectations suites as code, one module per dataset.

Each module has ``build_suite(params: SuiteParams) -> gx.ExpectationSuite``
(and, where a check reads a value computed from the row, ``prepare(frame, params)``):
a short list of ``gxe.Expect...`` objects, each with a severity. A
**critical** failure stops the run before the partition is published; a
**warning** is recorded and shown in Data Docs, and the run goes on. The
bounds that depend on the date (the partition's time window, the trailing
volume, the reference category mix) arrive in ``params``, computed by
``jobs.core.quality`` from the lake; the suites themselves read nothing.
"""
from __future__ import annotations

from typing import Callable

import great_expectations as gx

from expectations import events, events_clean, sessions, user_interest_predictions, user_sequences
from expectations.params import SuiteParams

SUITES: dict[str, Callable[[SuiteParams], gx.ExpectationSuite]] = {
    "events_clean": events_clean.build_suite,
    "events": events.build_suite,
    "sessions": sessions.build_suite,
    "user_sequences": user_sequences.build_suite,
    "user_interest_predictions": user_interest_predictions.build_suite,
}

# Columns a suite checks that are computed from the rows (each table's ``prepare``), added to the batch first.
PREPARE: dict[str, Callable] = {"user_interest_predictions": user_interest_predictions.prepare}

__all__ = ["PREPARE", "SUITES", "SuiteParams"]
