"""The gradient of the Laplace deviance in (``theta``, ``beta``), analytically.

With ``G = Lambda'Z'WZ Lambda + I`` (Fisher weights ``W``, as in the deviance) and the mode
``u*`` of ``-2 log p(y|u) + |u|^2`` (score ``s = d log p / d eta``, observed weights
``W_obs = -d s / d eta``), the deviance is ``D = -2 sum log p(y_i|u*) + |u*|^2 + log det G``.
By the envelope theorem the first two terms need only their explicit derivative; the log
determinant also moves through ``W(eta)``, and ``eta`` through ``u*``:

    dD = -2 s' d_eta|_u + 2 tr(G^-1 Lambda'Z'WZ dLambda) + sum_i w'_i h_i d_eta_i
    (I + Lambda'Z'W_obs Z Lambda) du = dLambda'Z's - Lambda'Z'W_obs d_eta|_u

with ``h_i`` the diagonal of ``Z Lambda G^-1 Lambda'Z'``, ``w'`` the derivative of the
Fisher weight in ``eta`` and ``dLambda`` from each term's covariance ``jacobian`` (so
``lambda`` need not be linear in ``theta``). With the observed information in the
log-determinant (non-canonical links, glamm's default) ``W`` is ``W_obs`` throughout and
``w'`` its derivative, taken by central differences observation by observation. Every row of
``Z Lambda`` has ``P = sum_k p_k`` nonzeros at known columns, so ``h`` and the traces only
gather entries of ``G^-1`` at those columns (no ``n x q`` dense product), which
:mod:`glamm.linalg.selinv` provides from the blocked factor: the first term's diagonal blocks
and, densely, the rows of the other terms (``q_rest x q``), so the analytic gradient is used
while those stay moderate (:func:`analytic_gradient_affordable`); beyond that glamm uses
finite differences. Dispersions and the families' own parameters act on each row at fixed
``eta`` (:func:`response_gradient`): their per-row derivatives come from the family (closed
forms, or central differences of the family without PIRLS).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..linalg.selinv import DenseInverse, spd_inverse_from_factor

#: the analytic gradient needs ``G^-1`` densely in the rows of the random effects after the
#: first term (``q_rest`` of them): at most this many ...
MAX_Q_REST = 1500
#: ... and at most this many entries ``q_rest x q`` (two such arrays are held, 8 bytes each)
MAX_REST_ENTRIES = 4_000_000


def analytic_gradient_affordable(model) -> bool:
    """Whether :func:`laplace_gradient` is affordable for ``model``: the random effects after
    the first term are few enough for the dense part of the selected inverse."""
    q1 = model.reterms[0].q if model.reterms else 0
    q_rest = sum(t.q for t in model.reterms) - q1
    return q_rest <= MAX_Q_REST and q_rest * q1 <= MAX_REST_ENTRIES


def laplace_gradient(model, theta: np.ndarray, beta: np.ndarray, schur: bool = False,
                     with_loadings: bool = False, with_response: bool = False):
    """Gradient of the Laplace deviance in ``[theta, beta]`` at the model's current state,
    which must be the PIRLS mode for exactly these ``theta`` and ``beta``.

    With ``schur`` also returns ``X'W_obs X - X'W_obs Z Lambda G_obs^-1 Lambda'Z'W_obs X``: half
    the Hessian in ``beta`` of ``-2 log p(y|u*) + |u*|^2`` (all but the log-determinant's
    small curvature), a cheap approximation to the ``beta`` block of the Hessian. With
    ``with_loadings`` the gradient in the model's free factor loadings follows those in
    ``[theta, beta]``; with ``with_response`` that in the response parameters follows last
    (dispersions and variance-function coefficients only: see
    :func:`response_gradient`)."""
    eta, mu = model.eta, model.mu
    design = model.design
    C = design.cols
    lams = model.lambdas(theta)
    V = design.rows(lams)                                # n x P nonzeros of Z Lambda
    ZL, ZLt = design.z_lambda(V)                         # the same as sparse matrices
    s = model.response.score(eta, mu)
    w_obs = model.mode_weights if model.observed_information else None
    if w_obs is None:
        w_obs = model.response.observed_weights(eta, mu)
    if model.observed_information:
        # the log-determinant holds the observed information: its weights and their
        # derivative in eta (central differences per observation; no closed form needed)
        w = w_obs
        dw = model.weight_derivative(eta, observed=True)
    else:
        w, _ = model.response.fisher_weights(eta, mu, mu_eta=model.family.link.mu_eta(eta))
        dw = model.response.fisher_weights_deta(eta, mu)
    # G = L_Z L_Z' is the factor PIRLS left at the mode (same theta and the weights of the
    # log-determinant: Fisher, or observed with model.observed_information)
    Ginv = model.re_inverse_at_mode()
    canonical = model.observed_information or np.allclose(w_obs, w, rtol=1e-12, atol=0.0)
    Gobs_inv = Ginv if canonical else DenseInverse(_spd_inverse(_crossprod(design, V, w_obs)))
    traces = TraceWeights(design, V, C, w, Ginv)
    h = traces.leverages()   # h_i = sum_ab V_ia V_ib Ginv[C_ia, C_ib]
    dwh = dw * h

    X = model.X
    grad_beta = -2.0 * (X.T @ s)
    S = np.zeros((X.shape[1], X.shape[1]))
    if X.shape[1]:
        ZtWX = ZLt @ (w_obs[:, None] * X)
        DU = -Gobs_inv.solve(ZtWX)
        deta = X + ZL @ DU
        grad_beta = grad_beta + deta.T @ dwh
        if schur:
            S = X.T @ (w_obs[:, None] * X) + ZtWX.T @ DU

    u = model.u
    u_terms = [u[design.offsets[k]:design.offsets[k] + t.q].reshape(t.nlevels, t.p)
               for k, t in enumerate(model.reterms)]
    tangent = _Tangent(design, V, C, w_obs, s, traces, Gobs_inv, dwh, u_terms, (ZL, ZLt))

    directions: list[Direction] = []
    for k, (t, sl) in enumerate(zip(model.reterms, model.layout.slices)):
        dlams = model.lambda_scale * t.covariance.jacobian(theta[sl])
        for r in range(sl.start, sl.stop):
            # nonzeros of Z dLambda (term k only)
            directions.append(([(k, design.z[k] @ dlams[r - sl.start])], None))
    n_theta = len(directions)
    parts = [np.zeros(model.n_theta), grad_beta]
    pairs: list[tuple[int, Direction]] = []
    if with_loadings and model.loadings is not None:
        # the loadings' directions join theta's: one solve with G for all of them
        pairs = loading_directions(model, lams)
        directions += [d for _, d in pairs]
        parts.append(np.zeros(model.loadings.n_free))
    # one family with a dispersion: Lambda carries sqrt(dispersion), so the log dispersion
    # also moves Z Lambda (by half of it), a direction like theta's
    scale_moves = with_response and model.response.lambda_scale_moves
    if scale_moves:
        directions.append(([(k, 0.5 * (design.z[k] @ lams[k]))
                            for k in range(len(model.reterms))], None))
    if directions:
        values = tangent.gradients(directions)
        parts[0] = values[:n_theta]
        if pairs:
            parts[2][[r for r, _ in pairs]] = values[n_theta:n_theta + len(pairs)]
    if with_response:
        g_resp = response_gradient(model, V, C, h, dwh, Gobs_inv)
        if scale_moves:
            g_resp[0] += values[-1]
        parts.append(g_resp)
    g = np.concatenate(parts)
    return (g, S) if schur else g


def response_gradient(model, V: np.ndarray, C: np.ndarray, h: np.ndarray, dwh: np.ndarray,
                      Gobs_inv) -> np.ndarray:
    """The gradient of the Laplace deviance in the response parameters when all of them
    act through the rows' dispersions (``J = d log(phi) / d p``,
    :meth:`~glamm.glmm.response.ResponseModel.log_dispersion_jacobian`): with the per-row
    derivatives in ``log(phi_i)`` at fixed ``eta`` of the log-density (``l'``), the score
    (``s'``) and the log-determinant's weights (``w'_phi``),

        dD/dp_j = -2 l' . J_j + (w'_phi h) . J_j + (w'_eta h) . Z Lambda du_j,
        (I + Lambda'Z'W_obs Z Lambda) du_j = Lambda'Z' (s' J_j)

    (the envelope theorem for the first two terms of the deviance, the log-determinant moving
    with the weights at fixed ``eta`` and through the mode's movement)."""
    response = model.response
    J = response.log_dispersion_jacobian()
    if J is None:
        return _own_parameter_gradient(model, V, C, h, dwh, Gobs_inv)
    if J.shape[1] == 0:
        return np.zeros(0)
    design = model.design
    dlp, ds, dw_phi = response.dispersion_derivatives(model.eta, model.mu,
                                                      model.observed_information)
    RHS = np.column_stack([design.t_matvec(V, J[:, j] * ds) for j in range(J.shape[1])])
    DU = Gobs_inv.solve(RHS)
    deta = np.einsum("ia,iaj->ij", V, DU[C])
    return -2.0 * (dlp @ J) + (dw_phi * h) @ J + dwh @ deta


def own_parameters_have_gradient(model) -> bool:
    """Whether :func:`response_gradient` covers the response parameters: dispersions and
    variance functions always; a family's own parameters (NB1's ``phi``, the t's ``df``, a
    negative binomial's size, a zero part's coefficients) for one family that differentiates
    them row by row (``analytic_extra_gradient``) without a variance function. Otherwise
    the gradient takes differences of the deviance (two PIRLS runs per parameter)."""
    response = model.response
    if response.log_dispersion_jacobian() is not None:
        return True
    return (not response.mixed and response.dispersion_design is None
            and (hasattr(response.family, "tmb_sigma")
                 or bool(getattr(response.family, "analytic_extra_gradient", False))))


def _own_parameter_gradient(model, V: np.ndarray, C: np.ndarray, h: np.ndarray,
                            dwh: np.ndarray, Gobs_inv, eps: float = 1e-5) -> np.ndarray:
    """:func:`response_gradient` for one family with parameters of its own (after its log
    dispersion, if it has one): the per-row derivatives at fixed ``eta`` of the log-density,
    the score and the log-determinant's weights in each parameter, by central differences of
    the family (no PIRLS: each row depends on the parameters directly), in the same
    formula as the dispersion's."""
    response, design = model.response, model.design
    eta, mu, y, wt = model.eta, model.mu, response.y, response.wt
    observed = model.observed_information
    fam, disp = response.family, response.dispersion
    values = fam.extra_values()
    # the log-density's own derivatives where the family has them (a series it would
    # otherwise evaluate twice per parameter), computed once for the dispersion's and the
    # own parameters' columns
    own = fam.loglik_parameter_derivatives(y, mu, wt, disp)
    dl_own = None if own is None else own[1]
    cols = []
    if response.has_dispersion:
        cols.append(response.dispersion_derivatives(
            eta, mu, observed, dlp=None if own is None else own[0]))

    def pieces(f) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        w = (-f.d2loglik_deta2(y, mu, eta, wt, disp) if observed
             else f.fisher_weights(eta, mu, wt, disp)[0])
        lp = None if dl_own is not None else f.loglik(y, mu, wt, disp)
        return lp, f.dloglik_deta(y, mu, eta, wt, disp), w

    closed = None if cols else fam.extra_derivatives(y, eta, wt, observed)
    if closed is not None:   # the family's own closed forms (ordinal thresholds)
        dlp, ds, dw = closed
    else:
        for j in range(values.size):
            step = np.zeros(values.size)
            step[j] = eps
            up = pieces(fam.with_extra(values + step))
            down = pieces(fam.with_extra(values - step))
            if dl_own is not None:
                dlp_j = dl_own[:, j]
            else:
                assert up[0] is not None and down[0] is not None
                dlp_j = (up[0] - down[0]) / (2.0 * eps)
            cols.append((dlp_j, (up[1] - down[1]) / (2.0 * eps),
                         (up[2] - down[2]) / (2.0 * eps)))
        dlp = np.column_stack([c[0] for c in cols])
        ds = np.column_stack([c[1] for c in cols])
        dw = np.column_stack([c[2] for c in cols])
    RHS = np.column_stack([design.t_matvec(V, ds[:, j]) for j in range(ds.shape[1])])
    DU = Gobs_inv.solve(RHS)
    deta = np.einsum("ia,iaj->ij", V, DU[C])
    return -2.0 * dlp.sum(axis=0) + h @ dw + dwh @ deta


#: a direction of the linear predictor: ``(term, change of its nonzeros)`` pairs and the change
#: of the fixed part (or ``None``)
Direction = tuple[list[tuple[int, np.ndarray]], "np.ndarray | None"]


#: TraceWeights gathers all entries ``G^-1[C_ia, C_ib]`` of every row in one call when there
#: are at most this many (``n P^2``), else column by column
MAX_ROW_PAIRS = 5_000_000


class TraceWeights:
    """``T(k, c)_i = w_i sum_a V_ia G^-1[C_ia, C_i(k,c)]``, so that the trace
    ``tr(G^-1 (Z Lambda)' W (Z dLambda))`` of a direction moving column ``c`` of term ``k``'s
    nonzeros by ``Vd[:, c]`` is ``sum_c T(k, c) . Vd[:, c]``: half the derivative of
    ``log det G`` at fixed weights. The same for every direction, so each column's is computed
    once (on first use); the entries of ``G^-1`` on each row's pattern are gathered in one
    call where affordable (:data:`MAX_ROW_PAIRS`)."""

    def __init__(self, design, V: np.ndarray, C: np.ndarray, w: np.ndarray, Ginv):
        self.design, self.V, self.C, self.w, self.Ginv = design, V, C, w, Ginv
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._E: np.ndarray | None = None

    def row_entries(self) -> np.ndarray | None:
        """``E[i, a, b] = G^-1[C_ia, C_ib]`` (``n x P x P``; computed once per distinct row
        pattern, the upper triangle mirrored), or ``None`` if too large."""
        n, P = self.C.shape
        if self._E is None and n * P * P <= MAX_ROW_PAIRS:
            patterns, index = self.design.col_patterns
            a, b = np.triu_indices(P)
            vals = self.Ginv.entries(patterns[:, a].reshape(-1), patterns[:, b].reshape(-1))
            Eu = np.empty((patterns.shape[0], P, P))
            Eu[:, a, b] = vals.reshape(patterns.shape[0], -1)
            Eu[:, b, a] = Eu[:, a, b]
            self._E = Eu[index]
        return self._E

    def __call__(self, k: int, c: int) -> np.ndarray:
        key = (k, c)
        if key not in self._cache:
            V, C = self.V, self.C
            j = self.design.term_slices[k].start + c
            E = self.row_entries()
            if E is not None:
                acc = np.einsum("ia,ia->i", V, E[:, :, j])
            else:
                acc = np.zeros(V.shape[0])
                for a in range(V.shape[1]):
                    acc += V[:, a] * self.Ginv.entries(C[:, a], C[:, j])
            self._cache[key] = self.w * acc
        return self._cache[key]

    def leverages(self) -> np.ndarray:
        """``h_i = sum_ab V_ia V_ib G^-1[C_ia, C_ib]``, the diagonal of
        ``Z Lambda G^-1 Lambda'Z'``."""
        V, C = self.V, self.C
        E = self.row_entries()
        if E is not None:
            return np.einsum("ia,ib,iab->i", V, V, E)
        h = np.zeros(V.shape[0])
        for a in range(V.shape[1]):
            for b in range(V.shape[1]):
                h += V[:, a] * V[:, b] * self.Ginv.entries(C[:, a], C[:, b])
        return h

    def trace(self, parts: list[tuple[int, np.ndarray]]) -> float:
        """``tr(G^-1 (Z Lambda)' W (Z dLambda))`` for the direction ``parts``."""
        return float(sum(self(k, c) @ Vd[:, c] for k, Vd in parts for c in range(Vd.shape[1])))


class _Tangent:
    """The derivative of the Laplace deviance along a direction of ``Z Lambda`` (a change
    of the nonzeros of one or more terms, ``Vd``), at the mode, by the envelope theorem plus
    the mode's own movement; shared by ``theta`` and the factor loadings. Directions are
    taken in batches (:meth:`gradients`): one solve with ``G`` for all of them."""

    def __init__(self, design, V, C, w_obs, s, traces: TraceWeights, Gobs_inv, dwh, u_terms,
                 ZL=None):
        self.design, self.V, self.C = design, V, C
        #: ``Z Lambda`` and its transpose as sparse matrices (RandomDesign.z_lambda), made
        #: here if not given
        self.ZL, self.ZLt = design.z_lambda(V) if ZL is None else ZL
        self.w_obs, self.s = w_obs, s
        self.Gobs_inv, self.dwh = Gobs_inv, dwh
        self.u_terms = u_terms
        self._trace_weight = traces

    def gradients(self, directions: list[Direction]) -> np.ndarray:
        """``d (-2 log L) / d param`` for each direction ``(parts, fixed)``: term ``k``'s
        nonzeros move by ``Vd`` for every ``(k, Vd)`` in ``parts`` and the fixed part of the
        linear predictor by ``fixed`` (``(dX) beta``, for loadings on fixed-effect columns;
        or ``None``)."""
        design, C, s = self.design, self.C, self.s
        m = len(directions)
        if m == 0:
            return np.zeros(0)
        n = s.shape[0]
        A = np.zeros((n, m))
        tr = np.zeros(m)
        for j, (parts, fixed) in enumerate(directions):
            a_vec = A[:, j]
            for k, Vd in parts:
                a_vec += np.einsum("ic,ic->i", Vd, self.u_terms[k][design.terms[k].refs])
            if fixed is not None:
                a_vec += fixed
        RHS = -(self.ZLt @ (self.w_obs[:, None] * A))
        for j, (parts, _) in enumerate(directions):
            rhs = RHS[:, j]
            for k, Vd in parts:
                t = design.terms[k]
                Ck = C[:, design.term_slices[k]]
                for c in range(t.p):
                    rhs += np.bincount(Ck[:, c], weights=Vd[:, c] * s, minlength=design.q)
                    tr[j] += float(self._trace_weight(k, c) @ Vd[:, c])
        DU = self.Gobs_inv.solve(RHS)
        deta = A + self.ZL @ DU
        return -2.0 * (s @ A) + 2.0 * tr + self.dwh @ deta

    def gradient(self, parts: list[tuple[int, np.ndarray]],
                 fixed: np.ndarray | None = None) -> float:
        """One direction of :meth:`gradients`."""
        return float(self.gradients([(parts, fixed)])[0])


def loading_directions(model, lams: list[np.ndarray], beta: np.ndarray | None = None
                       ) -> list[tuple[int, Direction]]:
    """The directions of the free loadings: loading ``r`` of factor ``f`` moves the loaded
    columns of factor ``f`` by ``d loading_i / d lambda_r`` (the rows of its item; times the
    covariate for an interaction loading), in every term that uses it, and, for a smooth on
    the latent scale, its fixed-effect columns (``(dX) beta``). Loadings that move nothing
    are left out; returns ``(r, direction)`` pairs. ``beta``: the fixed effects of the
    ``(dX) beta`` part (default the model's)."""
    loadings = model.loadings
    beta = model.beta if beta is None else beta
    out: list[tuple[int, Direction]] = []
    for r in range(loadings.n_free):
        f, weight = loadings.derivative(r)
        parts = []
        for k, cols in loadings.terms:
            dz = np.zeros_like(loadings.base_z[k])
            for c, fc in cols:
                if fc == f:
                    dz[:, c] = loadings.base_z[k][:, c] * weight
            if np.any(dz):
                parts.append((k, dz @ lams[k]))
        fixed = None
        if loadings.x_cols:   # loaded fixed-effect columns (an sl() smooth): (dX) beta
            assert loadings.base_X is not None
            fixed = np.zeros(model.n)
            for j, fc in loadings.x_cols:
                if fc == f:
                    fixed += loadings.base_X[:, j] * weight * beta[j]
        if parts or fixed is not None:
            out.append((r, (parts, fixed)))
    return out


def _crossprod(design, V: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Dense ``(Z Lambda)' W (Z Lambda) + I``."""
    q = design.q
    C = design.cols
    G = np.zeros((q, q))
    P = V.shape[1]
    flat = G.reshape(-1)
    for a in range(P):
        for b in range(P):
            flat += np.bincount(C[:, a] * q + C[:, b], weights=w * V[:, a] * V[:, b],
                                minlength=q * q)
    G[np.diag_indices(q)] += 1.0
    return G
def _spd_inverse(G: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix by LAPACK's potrf + potri."""
    c, info = sla.lapack.dpotrf(G, lower=1, clean=0, overwrite_a=0)
    if info != 0:
        raise np.linalg.LinAlgError("G is not positive definite")
    return spd_inverse_from_factor(c)
