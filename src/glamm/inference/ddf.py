"""Denominator degrees of freedom for the fixed effects of a linear mixed model:
Satterthwaite's (lmerTest) and Kenward and Roger's (pbkrtest), with t tests of the
coefficients, F tests of linear hypotheses ``L beta = 0`` and the type III table of the model's
terms.

**Satterthwaite** (Kuznetsova, Brockhoff and Christensen 2017). With ``v = (theta, sigma)`` the
variance parameters, ``C(v) = sigma^2 (R_X' R_X)^{-1}`` the covariance of ``beta_hat`` and
``A = 2 H^{-1}`` the asymptotic covariance of ``v_hat`` (``H`` the Hessian of the deviance in
``v``: the REML criterion for a REML fit, with ``sigma`` explicit, not profiled), a contrast
``l`` has ``df = 2 (l' C l)^2 / (g' A g)``, ``g_k = l' (dC / dv_k) l``. An F test of ``q``
contrasts uses the eigen-decomposition of ``L C L'`` as lmerTest does. Derivatives are central
differences of the exact deviance and covariance (the df do not depend on how ``v`` is
parameterized).

**Kenward-Roger** (Kenward and Roger 1997; Halekoh and Hojsgaard 2014). The marginal
covariance of ``y`` is written linearly in the covariance components, ``V = sum_i s_i G_i``
(one ``G_i`` per variance and covariance of each term and the residual). From ``P_i = -X'
V^-1 G_i V^-1 X``, ``Q_ij = X' V^-1 G_i V^-1 G_j V^-1 X`` and ``W``, twice the inverse of
``tr(Pi G_i Pi G_j)`` (``Pi`` the REML projection), the adjusted covariance is ``Phi_A = Phi +
2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi`` and the df and scale of the F statistic follow
from the ``A1``, ``A2`` sums. This needs ``V`` densely: ``n x n``, so it is limited to
:data:`KR_MAX_ROWS` observations.

Not public API (the results' ``coef_table(ddf=...)``, ``summary(ddf=...)`` and
:func:`glamm.anova` with ``type=3`` are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import GlammError
from ..lmm.estimates import vcov_beta

#: Kenward-Roger forms the marginal covariance of y densely
KR_MAX_ROWS = 5000

DDF_METHODS = ("Satterthwaite", "Kenward-Roger", "residual", "asymptotic")


def _method(ddf: str) -> str:
    key = ddf.strip().lower().replace("_", "-").replace(" ", "-")
    aliases = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
               "kr": "Kenward-Roger", "kenwardroger": "Kenward-Roger",
               "residual": "residual", "asymptotic": "asymptotic", "normal": "asymptotic"}
    if key not in aliases:
        raise GlammError(f"ddf must be one of {', '.join(DDF_METHODS)}, got {ddf!r}")
    return aliases[key]


# --------------------------------------------------------------------------- Satterthwaite
class _Satterthwaite:
    """The covariance of ``beta_hat`` as a function of ``v = (theta, sigma)``, its Jacobian and
    the asymptotic covariance of ``v_hat``, at the fit."""

    def __init__(self, result):
        self.result = result
        self.model = result.model.copy_with(reml=result.reml)
        self.v_hat = np.concatenate([np.asarray(result.theta, dtype=float), [result.sigma]])
        # (a parameter on its bound is held there: lmerTest differentiates around it anyway,
        # the deviance being even in a zero diagonal element of lambda)
        # (steps of 1e-3 with a floor of 0.1: the deviance is exact to about 1e-13
        # relative, so smaller steps on a small theta turn its rounding into the Hessian)
        self.steps = 1e-3 * np.maximum(np.abs(self.v_hat), 0.1)
        self.A = self._asymptotic_covariance()
        self.C = self.vcov(self.v_hat)
        self.jac = self._jacobian()

    def deviance(self, v: np.ndarray) -> float:
        self.model.set_theta(v[:-1])
        return self.model.deviance_at(float(v[-1]))

    def vcov(self, v: np.ndarray) -> np.ndarray:
        self.model.set_theta(v[:-1])
        return vcov_beta(self.model, float(v[-1]))

    def _asymptotic_covariance(self) -> np.ndarray:
        """``2 H^{-1}`` from a central-difference Hessian of the deviance (a pseudo-inverse
        where it is singular, as lmerTest falls back to)."""
        v, h = self.v_hat, self.steps
        k = v.size
        f0 = self.deviance(v)
        H = np.zeros((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            H[i, i] = (self.deviance(v + ei) - 2 * f0 + self.deviance(v - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                H[i, j] = H[j, i] = (self.deviance(v + ei + ej) - self.deviance(v + ei - ej)
                                     - self.deviance(v - ei + ej)
                                     + self.deviance(v - ei - ej)) / (4 * h[i] * h[j])
        ev = np.linalg.eigvalsh(H)
        if ev[0] > 1e-10 * max(abs(ev[-1]), 1.0):
            return 2.0 * np.linalg.inv(H)
        return 2.0 * np.linalg.pinv(H)

    def _jacobian(self) -> np.ndarray:
        """``dC / dv_k`` stacked as ``(k, p, p)`` (central differences; ``sigma``'s exactly)."""
        v = self.v_hat
        out = []
        for i in range(v.size - 1):
            e = np.zeros(v.size)
            e[i] = self.steps[i]
            out.append((self.vcov(v + e) - self.vcov(v - e)) / (2 * self.steps[i]))
        out.append(2.0 * self.C / v[-1])
        self.vcov(v)
        return np.array(out)

    def contrast(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        """``(L beta_hat covariance, df)`` for the rows of ``L`` (one row: a t test; several:
        an F test's denominator df, lmerTest's way through the eigenvectors of ``L C L'``)."""
        L = np.atleast_2d(L)
        VL = L @ self.C @ L.T
        if L.shape[0] == 1:
            return VL, self._df_one(L[0])
        ev, P = np.linalg.eigh(VL)
        keep = ev > 1e-8 * ev[-1]
        Lp = P[:, keep].T @ L
        nus = np.array([self._df_one(row) for row in Lp])
        q = int(keep.sum())
        E = np.sum(nus / (nus - 2.0) * (nus > 2))
        if not np.all(nus > 2):
            return VL, float(np.min(nus))   # lmerTest's fallback
        return VL, float(2 * E / (E - q))

    def _df_one(self, c: np.ndarray) -> float:
        var = float(c @ self.C @ c)
        g = np.array([float(c @ J @ c) for J in self.jac])
        denom = float(g @ self.A @ g)
        return 2.0 * var**2 / denom if denom > 0 else math.inf


# --------------------------------------------------------------------------- Kenward-Roger
@dataclass
class _KRParts:
    Phi: np.ndarray            # unadjusted covariance of beta_hat
    PhiA: np.ndarray           # adjusted covariance
    P: list[np.ndarray]        # P_i
    W: np.ndarray              # asymptotic covariance of the covariance components


def _component_matrices(result) -> tuple[list[np.ndarray], np.ndarray]:
    """The ``G_i`` (``n x n``) of each covariance component of each term and of the residual,
    and the components' values at the fit (``s_i``), so that ``V = sum_i s_i G_i``."""
    frame = result.frame
    n = frame.n
    G: list[np.ndarray] = []
    values: list[float] = []
    covs = result.term_covariances()
    for t, S in zip(frame.reterms, covs):
        Zcols = []
        for a in range(t.p):
            Za = np.zeros((n, t.nlevels))
            Za[np.arange(n), t.refs] = t.z[:, a]
            Zcols.append(Za)
        for b in range(t.p):
            for a in range(b, t.p):
                M = Zcols[a] @ Zcols[b].T
                G.append(M if a == b else M + M.T)
                values.append(float(S[a, b]))
    G.append(np.diag(1.0 / frame.weights))
    values.append(float(result.sigma) ** 2)
    return G, np.array(values)


def _kenward_roger_parts(result) -> _KRParts:
    frame = result.frame
    if not result.reml:
        raise GlammError("Kenward-Roger degrees of freedom need a REML fit (as pbkrtest's); "
                         "refit with reml=True")
    if frame.n > KR_MAX_ROWS:
        raise GlammError(f"Kenward-Roger degrees of freedom form the {frame.n} x {frame.n} "
                         f"covariance of the response; above {KR_MAX_ROWS} rows use "
                         "ddf='Satterthwaite'")
    X = frame.X
    G, s = _component_matrices(result)
    V = sum(si * Gi for si, Gi in zip(s, G))
    Vinv = np.linalg.inv(V)
    VinvX = Vinv @ X
    Phi = np.linalg.inv(X.T @ VinvX)
    # the REML projection and the expected information of the components
    Pi = Vinv - VinvX @ Phi @ VinvX.T
    PiG = [Pi @ Gi for Gi in G]
    k = len(G)
    IE = np.array([[float(np.sum(PiG[i] * PiG[j].T)) for j in range(k)] for i in range(k)])
    ev = np.linalg.eigvalsh(IE)
    W = 2.0 * (np.linalg.inv(IE) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE))
    GVX = [Gi @ VinvX for Gi in G]
    P = [-(VinvX.T @ gx) for gx in GVX]
    U = np.zeros_like(Phi)
    for i in range(k):
        for j in range(k):
            Qij = GVX[i].T @ Vinv @ GVX[j]
            U += W[i, j] * (Qij - P[i] @ Phi @ P[j])
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    return _KRParts(Phi=Phi, PhiA=PhiA, P=P, W=W)


def _kr_df(parts: _KRParts, L: np.ndarray) -> tuple[float, float]:
    """``(df, scale)`` of the Kenward-Roger F test of ``L beta = 0`` (``scale`` multiplies
    the Wald F statistic computed with the adjusted covariance)."""
    L = np.atleast_2d(L)
    q = np.linalg.matrix_rank(L)
    Phi = parts.Phi
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    M = [TP @ Pi @ Phi for Pi in parts.P]
    k = len(M)
    A1 = A2 = 0.0
    for i in range(k):
        for j in range(k):
            A1 += parts.W[i, j] * np.trace(M[i]) * np.trace(M[j])
            A2 += parts.W[i, j] * float(np.sum(M[i] * M[j].T))
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    Estar = 1.0 / (1.0 - A2 / q)
    Vstar = (2.0 / q) * (1.0 + c1 * B) / ((1.0 - c2 * B) ** 2 * (1.0 - c3 * B))
    rho = Vstar / (2.0 * Estar**2)
    m = 4.0 + (q + 2.0) / (q * rho - 1.0)
    lam = m / (Estar * (m - 2.0))
    return float(m), float(lam)


# --------------------------------------------------------------------------- the tables
def _check_lmm(result) -> None:
    from ..results.lmer_result import LmerResult

    if not isinstance(result, LmerResult):
        raise GlammError("denominator degrees of freedom are for linear mixed models "
                         "(glamm.lmer fits); GLMMs use z tests")
    if getattr(result, "_exact", None) is not None:
        raise GlammError("denominator degrees of freedom are not available for a model "
                         "without a residual")
    if getattr(result, "variance_function", None) is not None:
        raise GlammError("denominator degrees of freedom are not available with a residual "
                         "variance function (dispformula)")


def coef_table(result, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """The fixed effects with ``Estimate``, ``Std. Error``, ``df``, ``t value`` and
    ``Pr(>|t|)`` (lmerTest's / pbkrtest's coefficient table), indexed by coefficient.
    ``ddf``: ``"Satterthwaite"``, ``"Kenward-Roger"`` (its adjusted standard errors),
    ``"residual"`` (``n - p``) or ``"asymptotic"`` (infinite: z tests)."""
    method = _method(ddf)
    _check_lmm(result)
    beta = result.fixef.to_numpy()
    p = beta.size
    if method == "Kenward-Roger":
        parts = _kenward_roger_parts(result)
        se = np.sqrt(np.diag(parts.PhiA))
        df = np.array([_kr_df(parts, np.eye(p)[j])[0] for j in range(p)])
    else:
        se = result.stderr.to_numpy()
        if method == "Satterthwaite":
            sat = _Satterthwaite(result)
            df = np.array([sat.contrast(np.eye(p)[j])[1] for j in range(p)])
        elif method == "residual":
            df = np.full(p, float(result.nobs - p))
        else:
            df = np.full(p, np.inf)
    t = beta / se
    pval = 2.0 * stats.t.sf(np.abs(t), df)
    return pd.DataFrame({"Estimate": beta, "Std. Error": se, "df": df, "t value": t,
                         "Pr(>|t|)": pval}, index=result.fixef.index)


def contrast_test(result, L, ddf: str = "Satterthwaite", rhs=None) -> pd.DataFrame:
    """F test of ``L beta = rhs`` (``L``: one row per contrast over the fixed effects, an array
    or a DataFrame with the coefficient names as columns; ``rhs`` default 0). One row:
    ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)`` (lmerTest's
    ``contest``)."""
    method = _method(ddf)
    _check_lmm(result)
    names = list(result.fixef.index)
    if isinstance(L, pd.DataFrame | pd.Series):
        frame = L.to_frame().T if isinstance(L, pd.Series) else L
        missing = [c for c in frame.columns if c not in names]
        if missing:
            raise GlammError(f"contrast columns {missing} are not fixed effects ({names})")
        L = frame.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(names):
        raise GlammError(f"the contrast matrix needs {len(names)} columns (one per fixed "
                         f"effect: {', '.join(names)}), got {L.shape[1]}")
    row = _f_test(result, L, method, None if rhs is None else np.asarray(rhs, dtype=float))
    return pd.DataFrame([row], columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value",
                                        "Pr(>F)"])


def _f_test(result, L: np.ndarray, method: str, rhs: np.ndarray | None = None,
            cache: dict | None = None) -> list[float]:
    beta = result.fixef.to_numpy()
    d = L @ beta - (0.0 if rhs is None else rhs)
    q = int(np.linalg.matrix_rank(L))
    cache = {} if cache is None else cache
    if method == "Kenward-Roger":
        parts = cache.get("kr") or cache.setdefault("kr", _kenward_roger_parts(result))
        VL = L @ parts.PhiA @ L.T
        den_df, scale = _kr_df(parts, L)
        F = scale * float(d @ np.linalg.solve(VL, d)) / q
    else:
        V = result.vcov.to_numpy()
        VL = L @ V @ L.T
        F = float(d @ np.linalg.solve(VL, d)) / q
        if method == "Satterthwaite":
            sat = cache.get("sat") or cache.setdefault("sat", _Satterthwaite(result))
            den_df = sat.contrast(L)[1]
        elif method == "residual":
            den_df = float(result.nobs - beta.size)
        else:
            den_df = math.inf
    pval = float(stats.f.sf(F, q, den_df)) if np.isfinite(den_df) \
        else float(stats.chi2.sf(F * q, q))
    # lmerTest's sums of squares: F times the residual variance
    ms = F * float(result.sigma) ** 2
    return [ms * q, ms, float(q), float(den_df), F, pval]


def type3_contrasts(result) -> dict[str, np.ndarray]:
    """For each term of the fixed-effects formula but the intercept, the rows of ``L`` of its
    type III test (lmerTest's): the term's coefficients jointly zero in the parameterization
    with sum-to-zero contrasts for every factor. For a term no interaction contains, or
    whose containing interactions have numeric covariates only, these are its own
    coefficients; otherwise they come from the sum-coded design (:func:`_sum_coded_map`)."""
    frame = result.frame
    spec = frame.xspec
    if spec is None:
        raise GlammError("the type III table needs the fixed-effects formula's terms")
    keep = frame.x_keep if frame.x_keep is not None else np.ones(len(spec.column_names),
                                                                 dtype=bool)
    new_pos = np.cumsum(keep) - 1
    p = int(np.sum(keep))
    terms = list(spec.term_indices.items())
    factors = {str(term): {str(f) for f in term.factors} for term, _ in terms}
    categorical = {str(k) for k, (kind, _) in spec.encoder_state.items()
                   if getattr(kind, "value", kind) == "categorical"}
    out: dict[str, np.ndarray] = {}
    inverse: np.ndarray | None = None
    for term, cols in terms:
        name = str(term)
        if name == "1" or not factors[name]:
            continue
        bigger = [str(u) for u, _ in terms
                  if str(u) != name and factors[name] < factors[str(u)]]
        cols_kept = [int(new_pos[c]) for c in cols if keep[c]]
        if not cols_kept:
            continue
        # with treatment contrasts the term's coefficients are its effect at the reference
        # level of the other factors of an interaction containing it: its type III
        # hypothesis only when those other factors are numeric covariates
        if any((factors[u] - factors[name]) & categorical for u in bigger):
            if inverse is None:
                inverse = _sum_coded_map(result, categorical)
            out[name] = inverse[np.asarray(cols, dtype=int)]
            continue
        L = np.zeros((len(cols_kept), p))
        L[np.arange(len(cols_kept)), cols_kept] = 1.0
        out[name] = L
    return out


def _sum_coded_map(result, categorical: set[str]) -> np.ndarray:
    """``A^-1`` for the sum-coded design ``X_sum = X A`` of the same formula: the sum-coded
    coefficients are ``A^-1 beta``, so a term's rows of ``A^-1`` are its type III ``L``.
    ``X_sum`` is built from the data the model was fitted to (the call a result records)."""
    from formulaic import model_matrix

    from ..formula.safety import formula_context

    frame = result.frame
    spec = frame.xspec
    call = getattr(result, "_call", None)
    data = call[1].get("data") if call is not None else None
    if data is None or not isinstance(data, pd.DataFrame):
        raise GlammError("the type III test of a factor inside an interaction needs the "
                         "fitted data frame (a result from glamm.lmer with a pandas "
                         "DataFrame)")
    if frame.x_keep is not None and not np.all(frame.x_keep):
        raise GlammError("type III tests with aliased (dropped) fixed-effects columns are "
                         "not available")
    pieces = []
    for term in spec.formula:
        name = str(term)
        if name == "1":
            pieces.append("1")
            continue
        pieces.append(":".join(f"C({f}, contr.sum)" if str(f) in categorical else str(f)
                               for f in term.factors))
    if "1" not in pieces:
        pieces.insert(0, "0")
    rows = data.loc[frame.row_index]
    X_sum = np.asarray(model_matrix(" + ".join(pieces), rows, na_action="ignore",
                                    context=formula_context(), output="numpy"), dtype=float)
    X = frame.X
    if X_sum.shape != X.shape:
        raise GlammError("the sum-coded design of the type III tests does not match the "
                         "model's columns")
    A, _, rank, _ = np.linalg.lstsq(X, X_sum, rcond=None)
    tol = 1e-8 * max(1.0, float(np.abs(X_sum).max()))
    if rank < X.shape[1] or not np.allclose(X @ A, X_sum, atol=tol):
        raise GlammError("the sum-coded design of the type III tests spans other columns "
                         "than the model's")
    return np.linalg.inv(A)


def anova_type3(result, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """lmerTest's ``anova(m, type = 3)``: an F test of each fixed-effects term (its
    coefficients jointly zero), with ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
    ``F value`` and ``Pr(>F)``."""
    method = _method(ddf)
    _check_lmm(result)
    cache: dict = {}
    rows, names = [], []
    for name, L in type3_contrasts(result).items():
        rows.append(_f_test(result, L, method, cache=cache))
        names.append(name)
    out = pd.DataFrame(rows, columns=["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value",
                                      "Pr(>F)"], index=names)
    out.attrs["heading"] = (f"Type III Analysis of Variance Table with {method}'s method"
                            if method in ("Satterthwaite", "Kenward-Roger")
                            else f"Type III Analysis of Variance Table ({method} df)")
    return out
