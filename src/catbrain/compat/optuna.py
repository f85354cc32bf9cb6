"""Optuna's private member used to mark a trial whose search process died: ``FrozenTrial._trial_id``."""

from __future__ import annotations

from typing import Any


def trial_id(frozen_trial: Any) -> int:
    return frozen_trial._trial_id
