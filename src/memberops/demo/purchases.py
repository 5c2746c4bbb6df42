"""When buyers arrive, how often they buy, when they drop out and how much they spend.

The process is exactly the one the BG/NBD and Gamma-Gamma CLV models assume, so a CLV model fitted on
the imported orders can be checked against the true parameters saved in params.json:

* a buyer arrives with a first purchase; repeat purchases follow a Poisson process with rate
  λ ~ Gamma(shape r, rate α) per day, modulated by the day's seasonality factor (mean 1);
* after each repeat purchase the buyer drops out for good with probability p ~ Beta(a, b);
* each order's value is Gamma(shape p_spend, rate ν) yuan with ν ~ Gamma(shape q, rate γ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from memberops.demo.calendar import SECONDS_PER_DAY, seconds_of_day
from memberops.demo.ordering import stable_order

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PurchaseParameters:
    """The true parameters of the purchase process (rates per day, money in yuan)."""

    r: float = 0.55
    alpha: float = 11.0
    a: float = 0.8
    b: float = 7.5
    q: float = 4.0
    gamma: float = 40.0
    p_spend: float = 6.0
    growth_per_year: float = 0.3  # arrival intensity grows as exp(growth × years since the start)
    members_without_purchase: float = 0.10  # members who register and never buy
    minimum_order_fen: int = 300

    def as_dict(self) -> dict[str, float | int]:
        """The parameters, for params.json."""
        return asdict(self)


@dataclass(frozen=True)
class PurchaseHistory:
    """Per buyer: true parameters; per purchase (sorted by person, then time): when and how much."""

    buyers: I64
    rate: F64
    dropout: F64
    spend_rate: F64
    first_seconds: I64
    alive: Bools
    person: I64
    seconds: I64
    value_fen: I64


def arrival_seconds(rng: np.random.Generator, count: int, factors: F64, growth_per_year: float) -> I64:
    """Draw arrival times (local seconds after the period start): growing over time, busier on peak days."""
    days = np.arange(factors.size, dtype=np.float64)
    weights = np.exp(growth_per_year * days / 365.0) * factors
    cumulative = np.cumsum(weights)
    day = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
    day = np.minimum(day, factors.size - 1).astype(np.int64)
    arrivals: I64 = day * SECONDS_PER_DAY + seconds_of_day(rng, count)
    return arrivals


def simulate_purchases(
    rng: np.random.Generator,
    buyers: I64,
    first_seconds: I64,
    factors: F64,
    params: PurchaseParameters,
    progress: Progress | None = None,
) -> PurchaseHistory:
    """Run the BG/NBD process with seasonal thinning for every buyer, then price every order."""
    count = buyers.size
    rate = rng.gamma(params.r, 1.0 / params.alpha, size=count)
    dropout = rng.beta(params.a, params.b, size=count)
    spend_rate = rng.gamma(params.q, 1.0 / params.gamma, size=count)
    index, days, alive = _repeat_purchase_days(rng, first_seconds, rate, dropout, factors, progress)
    repeat_seconds = days * SECONDS_PER_DAY + seconds_of_day(rng, days.size)
    buyer_index = np.concatenate([np.arange(count, dtype=np.int64), index])
    seconds = np.concatenate([first_seconds, repeat_seconds])
    order = stable_order(buyer_index, seconds)
    buyer_index, seconds = buyer_index[order], seconds[order]
    value = rng.gamma(params.p_spend, 1.0 / spend_rate[buyer_index])
    value_fen = np.maximum(np.rint(value * 100).astype(np.int64), params.minimum_order_fen)
    return PurchaseHistory(
        buyers=buyers,
        rate=rate,
        dropout=dropout,
        spend_rate=spend_rate,
        first_seconds=first_seconds,
        alive=alive,
        person=buyers[buyer_index],
        seconds=seconds,
        value_fen=value_fen,
    )


def _repeat_purchase_days(
    rng: np.random.Generator,
    first_seconds: I64,
    rate: F64,
    dropout: F64,
    factors: F64,
    progress: Progress | None,
) -> tuple[I64, I64, Bools]:
    """Repeat purchases by thinning: candidates at rate λ·max(factor), kept with factor/max(factor).

    One loop turn advances every still-active buyer by one candidate, so the loop runs as many turns
    as the busiest buyer has candidates, each turn vectorised over the buyers left.
    """
    horizon = float(factors.size)
    ceiling = float(factors.max())
    time = first_seconds / SECONDS_PER_DAY
    alive = np.ones(rate.size, dtype=np.bool_)
    active = np.arange(rate.size, dtype=np.int64)
    found_index: list[I64] = []
    found_day: list[I64] = []
    turn = 0
    while active.size:
        candidate = time[active] + rng.exponential(1.0, active.size) / (rate[active] * ceiling)
        inside = candidate < horizon
        active, candidate = active[inside], candidate[inside]
        time[active] = candidate
        day = candidate.astype(np.int64)
        bought = rng.random(active.size) * ceiling < factors[day]
        found_index.append(active[bought])
        found_day.append(day[bought])
        leaves = np.zeros(active.size, dtype=np.bool_)
        leaves[np.flatnonzero(bought)] = rng.random(int(bought.sum())) < dropout[active[bought]]
        alive[active[leaves]] = False
        active = active[~leaves]
        turn += 1
        if progress is not None and turn % 50 == 0:
            progress("purchases", int(rate.size - active.size), int(rate.size))
    if progress is not None:
        progress("purchases", int(rate.size), int(rate.size))
    return np.concatenate(found_index), np.concatenate(found_day), alive
