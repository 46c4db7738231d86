"""What a fitted model says about its smooths: coefficients in the smooths' own bases, their
Bayesian covariance (mgcv's ``Vp``), effective degrees of freedom, smoothing parameters, the
approximate test per smooth (mgcv's ``summary.gam`` table, as gamm4 reports it) and the
estimated curves with standard errors.

Everything is read off the blocked Cholesky factor at the optimum. The smooths' random-effects
terms come last (one "level" each), so the trailing diagonal block ``L22`` of the factor covers
the smooths' penalized coefficients ``u_s`` and all fixed effects, and

    Cov(u_s, beta | y) = scale (L22 L22')^{-1}

with the other random effects integrated out (the trailing block of the inverse of a
triangular product is the inverse of the trailing block's product). The data's part of that
precision is ``L22 L22' - E`` (``E``: identity on ``u_s``, zero on ``beta``), so the effective
degrees of freedom of a smooth are ``n_fixed + sum_j (1 - [(L22 L22')^{-1}]_jj)`` over its
``u_s``, the trace of its block of ``F = (X'V^-1 X + S)^-1 X'V^-1 X`` (as gamm4).

Not public API.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..linalg.blocks import to_dense


@dataclass
class SmoothFit:
    """The smooths of a fitted model, in mgcv's conventions.

    Attributes
    ----------
    coef : Series
        the coefficients, named as mgcv: the parametric ones, then ``s(x).1``, ... per
        smooth.
    Vp : DataFrame
        their Bayesian covariance.
    edf : Series
        effective degrees of freedom per smooth.
    sp : Series
        smoothing parameters per smooth (``scale / variance`` of the penalized part, on
        mgcv's penalty scale).
    table : DataFrame
        edf, Ref.df, F (or Chi.sq without an estimated scale) and p-value per smooth.
    scale : float
        the residual variance (1 for binomial and Poisson).
    """

    coef: pd.Series
    Vp: pd.DataFrame
    edf: pd.Series
    sp: pd.Series
    table: pd.DataFrame
    scale: float
    slices: dict
    residual_df: float


def _trailing_offsets(fac, first: int) -> np.ndarray:
    """Row offsets of the terms ``first..K-1`` and of the fixed effects in the trailing part."""
    K = fac.K
    sizes = [fac.ms[j] * fac.ps[j] for j in range(first, K)] + [fac.L[K][K].shape[0] - 1]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def _trailing_dense(blocks, fac, first: int) -> np.ndarray:
    """The lower blocks ``blocks[i][j]`` (``first <= j <= i <= K``: the factor's ``L`` or the
    cross-products ``A``) as one dense lower triangle, the response row and column left out."""
    K = fac.K
    offs = _trailing_offsets(fac, first)
    out = np.zeros((offs[-1], offs[-1]))
    idx = list(range(first, K + 1))
    for a, i in enumerate(idx):
        for b_, j in enumerate(idx[:a + 1]):
            blk = to_dense(blocks[i][j])
            if i == K:
                blk = blk[:-1]
            if j == K:
                blk = blk[:, :-1]
            out[offs[a]:offs[a + 1], offs[b_]:offs[b_ + 1]] = blk
    return out


def trailing_factor(fac, first: int) -> np.ndarray:
    """Dense lower-triangular block of the factor for the terms ``first..K-1`` and the fixed
    effects (the response row and column left out)."""
    return _trailing_dense(fac.L, fac, first)


def smooth_fit(frame, reterms, fac, theta_of_term, scale: float, nobs: int,
               beta: np.ndarray, b_terms: list[np.ndarray], scale_estimated: bool,
               lambda_scale: float = 1.0, unit_factor=None,
               sig2: float | None = None) -> SmoothFit:
    """Assemble :class:`SmoothFit` from the factor at the optimum.

    Parameters
    ----------
    frame : ModelFrame
        the model frame (its ``smooths`` and parametric column count).
    reterms : list of ReTerm
        the model's terms (smooth terms last).
    fac : BlockedCholesky
        the blocked Cholesky factor holding the penalized system at the optimum.
    theta_of_term : list of float
        ``theta`` of each term's covariance (the smooth terms' scalars used).
    scale : float
        residual variance (dispersion).
    nobs : int
        number of observations.
    beta : ndarray
        the fixed-effects estimates.
    b_terms : list of ndarray
        the random-effects estimates of each term.
    scale_estimated : bool
        F tests (True) or chi-squared tests (False), as mgcv.
    lambda_scale : float, optional
        ``b = lambda_scale * theta * u`` (GLMMs with a dispersion: its square
        root; their factor is already divided by the dispersion, so ``scale`` is 1).
    sig2 : float, optional
        the residual scale the random-effect test divides by (default ``scale``; a
        GLMM's dispersion, whose factor already holds it).
    unit_factor : callable, optional
        a callable giving the factor with every smooth's ``theta`` set to 1,
        needed when a smooth's ``theta`` is 0 (its rows of the factor are then zero and
        cannot give the raw cross-products); called after everything else is read.
    """
    smooths = frame.smooths
    first = next((i for i, t in enumerate(reterms) if t.is_smooth), len(reterms))
    if not all(t.is_smooth for t in reterms[first:]):   # the order formula.design sets
        raise AssertionError("smooth terms must come after the grouped terms")
    L22 = trailing_factor(fac, first)
    nu_s = sum(t.q for t in reterms[first:])
    P = L22.shape[0]
    Linv = sla.solve_triangular(L22, np.eye(P), lower=True, check_finite=False)
    Ainv = Linv.T @ Linv                       # (L22 L22')^{-1}
    Cov = scale * Ainv
    lams_s = [lambda_scale * theta_of_term[k] for k in range(first, len(reterms))]
    if min(lams_s, default=1.0) > 0 or unit_factor is None:
        M = data_precision(fac, first, lams_s)
    else:
        M = None   # after the rest is read off this factor
    n_param = frame.n_parametric
    # map from the mixed coordinates v = [u_s..., beta] to the coefficients
    term_of = {id(t.smooth): k for k, t in enumerate(reterms) if t.is_smooth}
    u_off = np.concatenate([[0], np.cumsum([t.q for t in reterms[first:]])])
    names = list(frame.xnames[:n_param])
    blocks = [(np.arange(n_param) + nu_s, np.eye(n_param))]
    slices, coef_parts = {}, [beta[:n_param]]
    fixed_pos = n_param
    edf, sp = {}, {}
    for sm in smooths:
        idx_f = nu_s + fixed_pos + np.arange(sm.n_fixed)
        fixed_pos += sm.n_fixed
        if sm.rank > 0:
            k = term_of[id(sm)]
            th = float(theta_of_term[k])
            idx_u = u_off[k - first] + np.arange(sm.rank)
            b = b_terms[k].ravel()
            lam = lambda_scale * th
        else:
            idx_u, b, lam = np.zeros(0, dtype=int), np.zeros(0), 1.0
        idx = np.concatenate([idx_u, idx_f])
        G = sm.transform * np.concatenate([np.full(sm.rank, lam), np.ones(sm.n_fixed)])[None, :]
        blocks.append((idx, G))
        start = len(names)
        names += sm.coef_names
        slices[sm.label] = slice(start, len(names))
        coef_parts.append(sm.to_basis_coef(b, beta[idx_f - nu_s]))
        edf[sm.label] = float(sm.n_fixed + np.sum(1.0 - np.diag(Ainv)[idx_u]))
        sp[sm.label] = float(1.0 / th**2) if sm.rank > 0 and th > 0 else \
            (np.inf if sm.rank > 0 else np.nan)
    if M is None:
        M = data_precision(unit_factor(), first, [lambda_scale] * len(lams_s))
    ncoef = len(names)
    T = np.zeros((ncoef, P))
    pos = 0
    for idx, G in blocks:
        T[pos:pos + G.shape[0], idx] = G
        pos += G.shape[0]
    Vp = T @ Cov @ T.T
    coef = np.concatenate(coef_parts)
    edf_total = n_param + sum(edf.values())
    rdf = nobs - edf_total
    # X'V^-1 X of all coefficients in their own bases (M is in the raw columns [b, beta])
    Traw = np.zeros((ncoef, P))
    pos = 0
    for k_, (idx, _G) in enumerate(blocks):
        Graw = np.eye(n_param) if k_ == 0 else smooths[k_ - 1].transform
        Traw[pos:pos + Graw.shape[0], idx] = Graw
        pos += Graw.shape[0]
    Tinv = np.linalg.inv(Traw)
    XVX_all = Tinv.T @ M @ Tinv / scale
    sig2 = scale if sig2 is None else sig2
    terms = _group_terms(smooths)
    for label, parts in terms.items():   # a t2 term: its parts' coefficients together
        if len(parts) > 1:
            slices[label] = slice(slices[parts[0].label].start, slices[parts[-1].label].stop)
    rows = []
    for label, parts in terms.items():
        if len(parts) > 1:
            sl = slices[label]
            e = sum(edf[p.label] for p in parts)
            n_coef = sl.stop - sl.start
            if sum(p.n_fixed for p in parts) == 0:
                # mgcv tests a term without null space by reTest, not written for several
                # penalties here: no test rather than a different one
                rows.append((label, e, float("nan"), float("nan"), float("nan")))
                continue
            stat, pval, rank = test_smooth(coef[sl], XVX_all[sl, sl], Vp[sl, sl],
                                           min(n_coef, e), rdf if scale_estimated else -1.0)
            rows.append((label, e, rank,
                         (stat / rank if rank > 0 else 0.0) if scale_estimated else stat, pval))
            continue
        sm = parts[0]
        sl = slices[sm.label]
        e = edf[sm.label]
        if sm.n_fixed == 0 and sm.rank > 0 and not np.isfinite(sp[sm.label]):
            # a shrinkage smooth shrunk to zero: nothing to test (gamm4: F = 0, p = 1)
            stat, pval, rank = 0.0, 1.0, float(sm.rank)
        elif sm.n_fixed == 0 and sm.rank > 0:
            # no unpenalized part (bs="ts", "cs"): mgcv tests it as a random effect
            stat, pval, rank = re_test(coef, XVX_all, Vp, smooths, slices, sp, sm, sig2,
                                       rdf if scale_estimated else -1.0)
        else:
            stat, pval, rank = test_smooth(coef[sl], XVX_all[sl, sl], Vp[sl, sl],
                                           min(sm.n_coef, e), rdf if scale_estimated else -1.0)
        rows.append((sm.label, e, rank,
                     (stat / rank if rank > 0 else 0.0) if scale_estimated else stat, pval))
    cols = ["edf", "Ref.df", "F" if scale_estimated else "Chi.sq", "p-value"]
    table = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=cols)
    edf_terms = {label: sum(edf[p.label] for p in parts) for label, parts in terms.items()}
    return SmoothFit(coef=pd.Series(coef, index=names), Vp=pd.DataFrame(Vp, index=names,
                                                                         columns=names),
                     edf=pd.Series(edf_terms), sp=pd.Series(sp), table=table, scale=scale,
                     slices=slices, residual_df=rdf)


def _group_terms(smooths) -> dict:
    """The smooths by the term of the table they belong to (a ``t2`` term's parts, one per
    penalty, form one term; every other smooth is its own), in order."""
    terms: dict = {}
    for sm in smooths:
        terms.setdefault(getattr(sm, "term_label", sm.label), []).append(sm)
    return terms


def data_precision(fac, first: int, thetas: list[float]) -> np.ndarray:
    """``C' V^-1 C`` (unscaled, prior and working weights included) for the raw columns
    ``C`` of the trailing variables (the smooths' penalized columns and ``X``), with ``V``
    the covariance of the ordinary random effects plus the residual: the raw cross-products
    minus what the ordinary terms explain (Woodbury, through the factor's off-diagonal
    blocks). Computed this way rather than as ``L22 L22' - I``, which loses the small
    eigen-directions of a smooth to cancellation."""
    K = fac.K
    offs = _trailing_offsets(fac, first)
    A = _trailing_dense(fac.A, fac, first)
    Lo = np.zeros((offs[-1], sum(fac.ms[j] * fac.ps[j] for j in range(first))))
    col_offs = np.concatenate([[0], np.cumsum([fac.ms[j] * fac.ps[j] for j in range(first)])])
    for a, i in enumerate(range(first, K + 1)):
        rows = slice(offs[a], offs[a + 1])
        # rows of L are in u = b / theta (a smooth shrunk to theta = 0 has zero rows there)
        scale = (1.0 / thetas[a] if thetas[a] > 0 else 0.0) if i < K else 1.0
        for j in range(first):
            blk = to_dense(fac.L[i][j])
            if i == K:
                blk = blk[:-1]
            Lo[rows, col_offs[j]:col_offs[j + 1]] = scale * blk
    A = np.tril(A) + np.tril(A, -1).T
    return A - Lo @ Lo.T


# --------------------------------------------------------------------------- the test
def test_smooth(p: np.ndarray, XVX: np.ndarray, V: np.ndarray, rank: float, res_df: float):
    """mgcv's ``testStat`` (type 0, Wood 2013): a Wald statistic on the smooth's
    coefficients ``p`` using the Bayesian covariance ``V`` truncated to rank ``rank`` (a
    fractional rank mixes the last two eigen-directions), with ``R`` the triangular root of
    ``X'V^-1X`` (``XVX``). Returns ``(statistic, p-value, reference df)``; the F form divides
    the statistic by the reference df and uses ``res_df`` residual degrees of freedom
    (``res_df <= 0``: chi-squared)."""
    from scipy import stats  # (on first use: importing scipy.stats costs 20 MB)

    R = _upper_root(XVX)
    W = R @ V @ R.T
    W = 0.5 * (W + W.T)
    evals, evecs = np.linalg.eigh(W)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    sgn = np.sign(evecs[0, :])
    sgn[sgn == 0] = 1.0
    evecs = evecs * sgn[None, :]
    k = max(0, int(np.floor(rank)))
    nu = abs(rank - k)
    k1 = k + 1 if nu > 0 else k
    r_est = int(np.sum(evals > evals[0] * np.finfo(float).eps ** 0.9))
    if r_est < k1:
        k1 = k = r_est
        nu = 0.0
        rank = float(r_est)
    vec = evecs[:, :k1].copy()
    if nu > 0 and k > 0:
        if k > 1:
            vec[:, :k - 1] /= np.sqrt(evals[:k - 1])[None, :]
        b12 = np.sqrt(max(0.5 * nu * (1 - nu), 0.0))
        B = np.array([[1.0, b12], [b12, nu]])
        ev = np.diag(evals[k - 1:k1] ** -0.5)
        B = ev @ B @ ev
        eb_val, eb_vec = np.linalg.eigh(B)
        rB = eb_vec @ np.diag(np.sqrt(eb_val)) @ eb_vec.T
        vec1 = vec.copy()
        vec1[:, k - 1:k1] = (rB @ np.diag([-1.0, 1.0]) @ vec[:, k - 1:k1].T).T
        vec[:, k - 1:k1] = (rB @ vec[:, k - 1:k1].T).T
    else:
        if k == 0:
            vec = evecs[:, :k1] / np.sqrt(evals[0])
        else:
            vec = vec / np.sqrt(evals[:k])[None, :]
        vec1 = vec
        if k == 1:
            rank = 1.0
    Rp = R @ p
    d = float(np.sum((vec.T @ Rp) ** 2))
    d1 = float(np.sum((vec1.T @ Rp) ** 2))
    rank1 = rank
    pval = 2.0
    if nu > 0:
        if k1 == 1:
            rank1 = 1.0
            val = np.array([1.0])
        else:
            val = np.ones(k1)
            rp = nu + 1
            val[k - 1] = (rp + np.sqrt(rp * (2 - rp))) / 2
            val[k1 - 1] = rp - val[k - 1]
        if res_df <= 0:
            pval = 0.5 * (_sum_chisq_upper(d, val, np.ones(val.size))
                          + _sum_chisq_upper(d1, val, np.ones(val.size)))
        else:
            k0 = max(1, round(res_df))
            dfs = np.concatenate([np.ones(val.size), [k0]])
            pval = 0.5 * (_sum_chisq_upper(0.0, np.concatenate([val, [-d / k0]]), dfs)
                          + _sum_chisq_upper(0.0, np.concatenate([val, [-d1 / k0]]), dfs))
    if pval > 1:
        if res_df <= 0:
            pval = 0.5 * (stats.chi2.sf(d, rank1) + stats.chi2.sf(d1, rank1))
        else:
            pval = 0.5 * (stats.f.sf(d / rank1, rank1, res_df)
                          + stats.f.sf(d1 / rank1, rank1, res_df))
    return d, float(min(1.0, max(pval, 0.0))), float(rank)


def re_test(coef: np.ndarray, XVX: np.ndarray, Vp: np.ndarray, smooths, slices: dict,
            sp: dict, sm, sig2: float, res_df: float):
    """mgcv's ``reTest`` for a smooth without unpenalized part (gamm4 objects have no other
    random-effect smooths): with ``P = X'V^-1X + sum_j sp_j S_j``, ``S_m`` the Schur complement
    of the other coefficients in ``P`` and ``Ve = Vp X'V^-1X Vp``, the statistic is
    ``b' S_m b / sig2``, referred to the weighted sum of chi-squares with the eigenvalues of
    ``S_m Ve_mm / sig2`` (an F-type version with ``res_df`` when the scale is estimated).
    Returns ``(statistic, p-value, rank)``."""
    Ptot = XVX.copy()
    for other in smooths:
        if other.rank > 0 and np.isfinite(sp[other.label]):
            o = slices[other.label]
            Ptot[o, o] += sp[other.label] * other.S
    sl = slices[sm.label]
    ind = np.arange(Ptot.shape[0])[sl]
    rest = np.setdiff1d(np.arange(Ptot.shape[0]), ind)
    Pmm = Ptot[np.ix_(ind, ind)]
    if rest.size:
        Pmo = Ptot[np.ix_(ind, rest)]
        Pmm = Pmm - Pmo @ np.linalg.solve(Ptot[np.ix_(rest, rest)], Pmo.T)
    Ve = Vp @ XVX @ Vp
    b = coef[sl]
    stat = float(b @ Pmm @ b) / sig2
    ev = np.linalg.eigvals(Pmm @ Ve[np.ix_(ind, ind)]).real / sig2
    ev = np.clip(ev, 0.0, None)
    rank = int(np.sum(ev > ev.max() * np.finfo(float).eps ** 0.8))
    if res_df > 0:
        k = max(1, round(res_df))
        pval = _sum_chisq_upper(0.0, np.concatenate([ev, [-stat / k]]),
                                np.concatenate([np.ones(ev.size), [k]]))
    else:
        pval = _sum_chisq_upper(stat, ev, np.ones(ev.size))
    return stat, float(min(1.0, max(pval, 0.0))), float(rank)


def _upper_root(A: np.ndarray) -> np.ndarray:
    """Upper-triangular ``R`` with ``R'R = A`` (Cholesky; a symmetric root if ``A`` is only
    semi-definite)."""
    try:
        return np.linalg.cholesky(A).T
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(0.5 * (A + A.T))
        return (v * np.sqrt(np.clip(w, 0.0, None))).T


def _sum_chisq_upper(q: float, lam: np.ndarray, df: np.ndarray) -> float:
    """``P(sum_j lam_j chi2_{df_j} > q)`` by Imhof's (1961) inversion formula."""
    from scipy import integrate, stats

    lam = np.asarray(lam, dtype=float)
    df = np.asarray(df, dtype=float)
    if q <= 0 and np.all(lam >= 0):
        return 1.0   # a sum of non-negative terms exceeds 0 almost surely
    c = float(np.max(np.abs(lam))) if lam.size else 0.0
    if c == 0.0:
        return 1.0 if q < 0 else 0.0
    lam, q = lam / c, q / c   # the probability is scale-free; quad needs lam of order one

    def integrand(u: float) -> float:
        if u == 0.0:
            return 0.5 * (np.sum(df * lam) - q)
        theta = 0.5 * np.sum(df * np.arctan(lam * u)) - 0.5 * q * u
        log_rho = np.sum(0.25 * df * np.log1p((lam * u) ** 2))
        return np.sin(theta) * np.exp(-log_rho) / u

    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        try:
            val, _ = integrate.quad(integrand, 0.0, np.inf, limit=500, epsabs=1e-12,
                                    epsrel=1e-10)
            return float(min(1.0, max(0.0, 0.5 + val / np.pi)))
        except integrate.IntegrationWarning:
            pass
    # far in the tail the integrand oscillates too fast for quad: a scaled chi-squared with
    # the same first two moments (Satterthwaite), accurate enough for a tiny p-value
    mean = float(np.sum(df * lam))
    var = float(2.0 * np.sum(df * lam**2))
    if mean <= 0:
        return 0.0
    c, nu = var / (2.0 * mean), 2.0 * mean**2 / var
    return float(stats.chi2.sf(q / c, nu))


# --------------------------------------------------------------------------- curves
def smooth_curve(sfit: SmoothFit, sm, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The smooth ``sm`` (centred, as mgcv) and its standard error at ``data``'s rows."""
    B = sm.term_design(data)
    sl = sfit.slices[sm.term_label]
    coef = sfit.coef.to_numpy()[sl]
    V = sfit.Vp.to_numpy()[sl, sl]
    fit = B @ coef
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", B, V, B), 0.0))
    return fit, se
