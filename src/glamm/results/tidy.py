"""Tidy tables of a fitted mixed model (broom.mixed's ``tidy``) and lme4's ``coef``: the
fixed effects, the random-effect parameters and the conditional modes as long data frames,
and per-level coefficients. Written against what every mixed-model result has (``fixef``,
``stderr``, ``coef_table``, ``varcorr``, ``ranef``, ``ranef_condvar``, ``confint``). Not
public API (the results' ``tidy`` and ``coef`` are)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import GlammError

EFFECTS = ("fixed", "ran_pars", "ran_vals")


def tidy(result, effects: str | tuple[str, ...] = ("fixed", "ran_pars"),
         conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "Wald",
         ddf: str | None = None) -> pd.DataFrame:
    """See :meth:`glamm.results.base.MixedResultBase.tidy`."""
    wanted = (effects,) if isinstance(effects, str) else tuple(effects)
    bad = [e for e in wanted if e not in EFFECTS]
    if bad:
        raise GlammError(f"effects must be among {', '.join(EFFECTS)}, got {bad}")
    parts = []
    ci = None
    if conf_int and ("fixed" in wanted or "ran_pars" in wanted):
        ci = result.confint(level=conf_level, method=conf_method)
    for e in wanted:
        if e == "fixed":
            parts.append(_fixed(result, ci, ddf))
        elif e == "ran_pars":
            parts.append(_ran_pars(result, ci))
        else:
            parts.append(_ran_vals(result, conf_int, conf_level))
    out = pd.concat(parts, ignore_index=True)
    if not conf_int:
        out = out.drop(columns=[c for c in ("conf.low", "conf.high") if c in out.columns])
    return out


def _fixed(result, ci, ddf) -> pd.DataFrame:
    table = result.coef_table(ddf=ddf) if ddf is not None else result.coef_table()
    stat_col = next((c for c in table.columns if c.endswith("value")), None)
    p_col = next((c for c in table.columns if c.startswith("Pr(")), None)
    out = pd.DataFrame({
        "effect": "fixed", "group": None, "term": list(table.index),
        "estimate": table["Estimate"].to_numpy(float),
        "std.error": table["Std. Error"].to_numpy(float),
        "statistic": table[stat_col].to_numpy(float) if stat_col else np.nan,
    })
    if "df" in table.columns:
        out["df"] = table["df"].to_numpy(float)
    out["p.value"] = table[p_col].to_numpy(float) if p_col else np.nan
    out["conf.low"], out["conf.high"] = _ci_columns(ci, list(table.index))
    return out


def _ci_columns(ci, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if ci is None:
        return np.full(len(names), np.nan), np.full(len(names), np.nan)
    lo = np.array([float(ci.iloc[:, 0].get(n, np.nan)) for n in names])
    hi = np.array([float(ci.iloc[:, 1].get(n, np.nan)) for n in names])
    return lo, hi


def _ran_pars(result, ci) -> pd.DataFrame:
    """broom.mixed's rows: ``sd__(Intercept)``, ``cor__(Intercept).Days``, and the residual
    ``sd__Observation`` (group ``Residual``)."""
    vc = result.varcorr
    rows, keys = [], []
    for _, r in vc.iterrows():
        group, v1, v2 = r["group"], r["var1"], r["var2"]
        if group == "Residual":
            rows.append((group, "sd__Observation", float(r["sdcor"])))
            keys.append("sigma")
        elif v2 is None or (isinstance(v2, float) and np.isnan(v2)):
            rows.append((group, f"sd__{v1}", float(r["sdcor"])))
            keys.append(f"sd_{v1}|{group}")
        else:
            rows.append((group, f"cor__{v1}.{v2}", float(r["sdcor"])))
            keys.append(f"cor_{v2}.{v1}|{group}")   # (lme4's alias: the later column first)
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    out["std.error"] = np.nan
    out["statistic"] = np.nan
    out["p.value"] = np.nan
    lo = np.full(len(out), np.nan)
    hi = np.full(len(out), np.nan)
    if ci is not None and "term" in ci.columns:
        # the intervals' aliases name the same quantities: sd_(Intercept)|Subject, sigma
        by_alias = {str(a): i for i, a in enumerate(ci["term"])}
        for j, key in enumerate(keys):
            i = by_alias.get(key)
            if i is not None:
                lo[j], hi[j] = float(ci.iloc[i, 0]), float(ci.iloc[i, 1])
    out["conf.low"], out["conf.high"] = lo, hi
    return out


def _ran_vals(result, conf_int: bool, conf_level: float) -> pd.DataFrame:
    """One row per level and column: the conditional mode and its conditional SD."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + conf_level / 2)
    parts = []
    for g, modes in result.ranef.items():
        cv = result.ranef_condvar.get(g)
        for col in modes.columns:
            est = modes[col].to_numpy(float)
            se = np.sqrt(np.maximum(cv[col].to_numpy(float), 0.0)) if cv is not None \
                else np.full(est.size, np.nan)
            parts.append(pd.DataFrame({
                "effect": "ran_vals", "group": g, "level": [str(v) for v in modes.index],
                "term": col, "estimate": est, "std.error": se,
                "conf.low": est - z * se if conf_int else np.nan,
                "conf.high": est + z * se if conf_int else np.nan}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def coef(result) -> dict[str, pd.DataFrame]:
    """lme4's ``coef``: per grouping factor, one row per level with every fixed effect plus
    that level's random effect where the term has the same column."""
    beta = result.fixef
    out: dict[str, pd.DataFrame] = {}
    for g, modes in result.ranef.items():
        table = pd.DataFrame(np.tile(beta.to_numpy(float), (len(modes), 1)),
                             index=modes.index, columns=list(beta.index))
        for col in modes.columns:
            if col in table.columns:
                table[col] = table[col] + modes[col].to_numpy(float)
            else:
                table[col] = modes[col].to_numpy(float)
        out[g] = table
    return out
