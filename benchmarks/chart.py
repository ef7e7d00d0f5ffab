"""The end-to-end benchmark's chart: latency percentiles against the change rate, per destination,
with the floor beside them (PNG, drawn without a display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "marketing": "tab:blue",
    "analytics": "tab:green",
    "customer_service": "tab:purple",
    "suppression": "tab:red",
    "floor": "black",
}


def draw(results: dict[str, Any], path: Path) -> None:
    steps = results["steps"]
    rates = [s["target_rate"] for s in steps]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, quantile in zip(axes, ("p50", "p99"), strict=True):
        for name, colour in COLOURS.items():
            values = [(s["floor"] if name == "floor" else s["destinations"][name])[quantile] for s in steps]
            ax.plot(rates, values, marker="o", color=colour, label=name, linestyle="--" if name == "floor" else "-")
        if quantile == "p99":
            ax.axhline(250, color="grey", linewidth=0.8, linestyle=":", label="250 ms objective")
        ax.set_title(f"{quantile} commit -> destination")
        ax.set_xlabel("consent changes / s (target)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("milliseconds")
    axes[1].legend(loc="upper left", fontsize=8)
    machine = results["machine"]
    figure.suptitle(
        f"samtykke end to end, {machine['cores']} cores, everything on one machine ({results['started_at'][:10]})"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
