"""Cost estimate of a stack's AWS node pools at min, desired and max size.

Prices come from the built-in catalog (us-east-1 on-demand, Linux; its date is in the catalog) or from a
price file the user passes. Spot is priced at ``1 - spot_discount`` of on-demand unless the price file gives
a spot price: spot prices move hourly and per zone, so the default discount is an assumption, stated in the
output. A pool is priced at its preferred (first) instance type. Mixed pools split each size as the Auto
Scaling group does: the on-demand base first, then the on-demand percentage of the rest, rounded up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gpucluster.catalog import catalog
from gpucluster.plan import Plan, PoolPlan

HOURS_PER_MONTH = 730  # AWS pricing's month: 365 * 24 / 12
DEFAULT_SPOT_DISCOUNT = 0.6  # spot at 40 % of on-demand: typical of g4dn/g5/g6 in 2025-2026, optimistic for p4d/p5
SIZES = ("min", "desired", "max")


class PriceFileError(ValueError):
    """A price file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Price:
    on_demand: float
    spot: float


@dataclass(frozen=True)
class SizeCost:
    nodes: int
    on_demand_nodes: int
    hourly: float

    @property
    def monthly(self) -> float:
        return self.hourly * HOURS_PER_MONTH


@dataclass(frozen=True)
class PoolCost:
    pool: str
    instance_type: str
    capacity: str
    price: Price
    sizes: dict[str, SizeCost]  # "min" | "desired" | "max"


def on_demand_nodes(pool: PoolPlan, nodes: int) -> int:
    """How many of ``nodes`` the pool buys on demand."""
    capacity = pool.spec.capacity
    if capacity.type == "on-demand":
        return nodes
    if capacity.type == "spot":
        return 0
    base = min(nodes, capacity.on_demand_base)
    return base + math.ceil((nodes - base) * capacity.on_demand_percentage / 100)


def load_prices(path: Path) -> dict[str, dict[str, float]]:
    """A YAML or JSON price file: ``{instance_type: {on_demand: USD/h, spot: USD/h}}`` (either key optional)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PriceFileError(f"{path}: cannot read prices: {error}") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a mapping of instance type to {{on_demand, spot}} prices")
    prices: dict[str, dict[str, float]] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not set(entry) <= {"on_demand", "spot"}:
            raise PriceFileError(f"{path}: {name}: expected on_demand and/or spot, in USD per hour")
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise PriceFileError(f"{path}: {name}.{key}: {value!r} is not a price in USD per hour")
        prices[str(name)] = {key: float(value) for key, value in entry.items()}
    return prices


def price_of(instance_type: str, spot_discount: float, prices: dict[str, dict[str, float]] | None = None) -> Price:
    given = (prices or {}).get(instance_type, {})
    on_demand = given.get("on_demand", catalog().instance_types[instance_type].on_demand_usd_per_hour)
    return Price(on_demand=on_demand, spot=given.get("spot", on_demand * (1 - spot_discount)))


def pool_costs(
    plan: Plan, spot_discount: float = DEFAULT_SPOT_DISCOUNT, prices: dict[str, dict[str, float]] | None = None
) -> list[PoolCost]:
    """Hourly and monthly cost of every provisioned pool at its min, desired and max size."""
    if not 0 <= spot_discount < 1:
        raise ValueError(f"spot discount {spot_discount} is not a fraction in [0, 1)")
    costs = []
    for pool in plan.pools:
        if not pool.spec.instance_types:
            continue
        instance_type = pool.spec.instance_types[0]
        price = price_of(instance_type, spot_discount, prices)
        scaling = pool.spec.scaling
        sizes = {}
        for size, nodes in zip(SIZES, (scaling.min, scaling.desired, scaling.max), strict=True):
            on_demand = on_demand_nodes(pool, nodes)
            hourly = on_demand * price.on_demand + (nodes - on_demand) * price.spot
            sizes[size] = SizeCost(nodes=nodes, on_demand_nodes=on_demand, hourly=hourly)
        costs.append(PoolCost(pool.name, instance_type, pool.spec.capacity.type, price, sizes))
    return costs
