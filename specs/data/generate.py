"""Write the messy example files specs/customers.yaml and specs/housing.yaml train on.

    python specs/data/generate.py        # rewrites customers.csv and housing.csv here

customers.csv: 1,200 customers: a string id, a signup date, text categories (plan,
region), yes/no autopay, blanks in income, autopay and region; target churn (yes/no).
housing.csv: 1,000 houses: an id, a neighbourhood, numbers with blanks, a yes/no garage;
target price in dollars (about 100,000 to 900,000).
Seeded: the same files every time.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _blank(rng: np.random.Generator, value: str, p: float) -> str:
    return "" if rng.random() < p else value


def customers(path: Path, n: int = 1200, seed: int = 0) -> None:
    """The churn file (binary target)."""
    rng = np.random.default_rng(seed)
    plans = ["basic", "standard", "premium"]
    regions = ["north", "south", "east", "west", "central"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "signup_date", "plan", "region", "age", "income",
                    "tenure_months", "support_calls", "autopay", "churn"])
        for i in range(n):
            plan = rng.choice(plans, p=[0.5, 0.3, 0.2])
            region = rng.choice(regions)
            age = int(rng.integers(18, 80))
            income = rng.lognormal(10.8, 0.4)
            tenure = int(rng.integers(1, 72))
            calls = int(rng.poisson(2))
            autopay = rng.random() < 0.6
            z = (1.2 * (plan == "basic") - 0.8 * (plan == "premium") + 0.35 * calls
                 - 0.04 * tenure - 1.0 * autopay + 0.4 * (region == "south") - 0.5
                 + rng.normal(0, 0.6))
            churn = "yes" if z > 0 else "no"
            w.writerow([f"C{i:05d}", f"20{rng.integers(19, 25)}-{rng.integers(1, 13):02d}-"
                        f"{rng.integers(1, 29):02d}", plan, _blank(rng, region, 0.05), age,
                        _blank(rng, f"{income:.0f}", 0.1), tenure, calls,
                        _blank(rng, "yes" if autopay else "no", 0.05), churn])


def housing(path: Path, n: int = 1000, seed: int = 1) -> None:
    """The price file (regression target in dollars)."""
    rng = np.random.default_rng(seed)
    hoods = {"riverside": 1.3, "oldtown": 1.0, "hills": 1.6, "docks": 0.8, "suburb": 1.1}
    names = list(hoods)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["house_id", "neighborhood", "sqft", "bedrooms", "year_built",
                    "lot_size", "garage", "price"])
        for i in range(n):
            hood = names[int(rng.integers(0, len(names)))]
            sqft = float(rng.normal(1800, 500))
            sqft = max(sqft, 500.0)
            beds = int(np.clip(round(sqft / 600 + rng.normal(0, 0.7)), 1, 7))
            year = int(rng.integers(1920, 2023))
            lot = float(rng.lognormal(8.5, 0.3))
            garage = rng.random() < 0.7
            price = hoods[hood] * (120 * sqft + 8000 * beds + 600 * (year - 1920)
                                   + 2 * lot + 25000 * garage) + rng.normal(0, 15000)
            w.writerow([f"H-{i:04d}", hood, f"{sqft:.0f}", beds, year,
                        _blank(rng, f"{lot:.0f}", 0.08), "yes" if garage else "no",
                        f"{price:.0f}"])


if __name__ == "__main__":
    customers(HERE / "customers.csv")
    housing(HERE / "housing.csv")
