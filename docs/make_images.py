"""Draw the images the README shows (run from the repository root after ``make test``)::

    .venv/bin/python docs/make_images.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import glamm  # noqa: E402

OUT = Path(__file__).parent / "images"


def scaling_plot(csv_path: Path, out: Path) -> None:
    """The log-log plot of ``benchmarks/run_scaling.py --out``'s table: fit time and peak
    memory against the number of rows, one panel per model, one line per package."""
    import matplotlib.pyplot as plt
    import pandas as pd

    t = pd.read_csv(csv_path)
    t = t[t["status"] == "ok"]
    models = list(dict.fromkeys(t["model"]))
    fig, axes = plt.subplots(2, len(models), figsize=(4.0 * len(models), 6.4), squeeze=False)
    for j, model in enumerate(models):
        part = t[t["model"] == model]
        for pkg, g in part.groupby("package", sort=False):
            g = g.sort_values("n")
            axes[0, j].loglog(g["n"], g["seconds"], "-o", label=pkg)
            axes[1, j].loglog(g["n"], g["peak_mb"], "-o", label=pkg)
        axes[0, j].set_title(model)
        axes[0, j].set_ylabel("fit time (s)")
        axes[1, j].set_ylabel("peak memory (MB)")
        axes[1, j].set_xlabel("rows")
        axes[0, j].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=70)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    sleep = glamm.datasets.load("sleepstudy")
    m = glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    glamm.plot_ranef(m).savefig(OUT / "caterpillar.png", dpi=80)
    glamm.plot_profile(m.profile(progress=False)).savefig(OUT / "profile.png", dpi=70)
    table = Path(__file__).parents[1] / "benchmarks" / "scaling.csv"
    if table.exists():
        scaling_plot(table, OUT / "scaling.png")


if __name__ == "__main__":
    main()
