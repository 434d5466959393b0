"""Prices and the budget: USD per 1M tokens per model (prompts/prices.yaml or the manifest),
the cost of a usage, and the spending cap that calls reserve their worst case against."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pipeline.manifest import ResponderConfig
from pipeline.records import Usage
from prompts import load_yaml

__all__ = ["Budget", "BudgetStop", "batch_price_for", "cost_usd", "price_for"]


def price_for(model: str, config: ResponderConfig | None = None) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens: manifest override, else prompts/prices.yaml by
    exact name or longest prefix; None when unknown."""
    if config is not None and (config.price_input_per_1m is not None
                               or config.price_output_per_1m is not None):
        return (config.price_input_per_1m or 0.0, config.price_output_per_1m or 0.0)
    row = _row(model)
    return None if row is None else (float(row["input"]), float(row["output"]))


def _row(model: str) -> dict[str, float] | None:
    """The prompts/prices.yaml row of a model: exact name, else longest prefix."""
    table: dict[str, dict[str, float]] = load_yaml("prices.yaml")
    if model in table:
        return table[model]
    prefixes = [m for m in table if model.startswith(m)]
    return table[max(prefixes, key=len)] if prefixes else None


def batch_price_for(model: str,
                    config: ResponderConfig | None = None) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens through the Batch API: prompts/prices.yaml's
    `batch_input`/`batch_output` for the model when given (and no manifest override),
    else the online price times `responder.batch_price_factor` (0.5 by default)."""
    factor = config.batch_price_factor if config is not None else 0.5
    overridden = config is not None and (config.price_input_per_1m is not None
                                         or config.price_output_per_1m is not None)
    row = None if overridden else _row(model)
    if row is not None and "batch_input" in row and "batch_output" in row:
        return (float(row["batch_input"]), float(row["batch_output"]))
    online = price_for(model, config)
    return None if online is None else (online[0] * factor, online[1] * factor)


def cost_usd(usage: Usage, price: tuple[float, float] | None) -> float:
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6


@dataclass
class Budget:
    """A spending cap for one run. Calls reserve their worst-case cost before they start,
    so the cap holds even with many calls in flight."""

    cap: float | None = None
    spent: float = 0.0
    reserved: float = 0.0
    reached: bool = False
    # one Budget may be shared by chunks running in several threads (each with its own loop)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def try_reserve(self, amount: float) -> bool:
        with self._lock:
            if self.cap is None:
                return True
            if self.reached or self.spent + self.reserved + amount > self.cap:
                self.reached = True
                return False
            self.reserved += amount
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            if self.cap is not None:
                self.reserved = max(0.0, self.reserved - reserved)
            self.spent += actual



class BudgetStop(Exception):
    """The budget leaves no room for this call."""

