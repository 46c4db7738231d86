"""Draw the images the README shows (run from the repository root after ``make test``)::

    .venv/bin/python docs/make_images.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import glamm  # noqa: E402

OUT = Path(__file__).parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    sleep = glamm.datasets.load("sleepstudy")
    m = glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    glamm.plot_ranef(m).savefig(OUT / "caterpillar.png", dpi=80)
    glamm.plot_profile(m.profile(progress=False)).savefig(OUT / "profile.png", dpi=70)


if __name__ == "__main__":
    main()
