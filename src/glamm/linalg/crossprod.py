"""The cross-product matrix ``A = [Z X y]' W [Z X y]`` in blocks, computed once per model.

``A`` never depends on ``theta``; the factor ``L`` is refilled from it for every ``theta``.
Block ``(i, j)`` with ``i >= j`` is stored; the last block index is the dense ``[X y]`` block.
All sums over observations go through ``numpy.bincount``, never a Python loop over rows.
"""

from __future__ import annotations

import numpy as np

from .blocks import BlockDiag, BlockSparse


def _diag_block(refs: np.ndarray, z: np.ndarray, w: np.ndarray, m: int) -> BlockDiag:
    p = z.shape[1]
    data = np.empty((m, p, p))
    for a in range(p):
        for b in range(a + 1):
            v = np.bincount(refs, weights=w * z[:, a] * z[:, b], minlength=m)
            data[:, a, b] = v
            data[:, b, a] = v
    return BlockDiag(data)


def _cross_block(
    refs_i: np.ndarray, z_i: np.ndarray, m_i: int,
    refs_j: np.ndarray, z_j: np.ndarray, m_j: int,
    w: np.ndarray,
) -> BlockSparse:
    key = refs_j.astype(np.int64) * m_i + refs_i  # sorted by column level, then row level
    uniq, inv = np.unique(key, return_inverse=True)
    inv = inv.ravel()
    pi, pj = z_i.shape[1], z_j.shape[1]
    data = np.empty((uniq.shape[0], pi, pj))
    for a in range(pi):
        for b in range(pj):
            data[:, a, b] = np.bincount(inv, weights=w * z_i[:, a] * z_j[:, b],
                                        minlength=uniq.shape[0])
    return BlockSparse(rows=uniq % m_i, cols=uniq // m_i, data=data, m_row=m_i, m_col=m_j)


def _fixed_re_block(refs: np.ndarray, z: np.ndarray, m: int, XYw: np.ndarray) -> np.ndarray:
    """``[X y]' W Z_k`` as a dense ``(p+1) x (m*pk)`` array (level-major columns)."""
    pk = z.shape[1]
    out = np.empty((XYw.shape[1], m, pk))
    for c in range(XYw.shape[1]):
        for b in range(pk):
            out[c, :, b] = np.bincount(refs, weights=XYw[:, c] * z[:, b], minlength=m)
    return out.reshape(XYw.shape[1], m * pk)


def crossprod_blocks(reterms, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[list]:
    """Lower blocks of ``A`` as a list of rows: ``A[i][j]`` for ``j <= i``.

    Parameters
    ----------
    reterms: random-effects terms (objects with ``refs``, ``z``, ``nlevels``).
    X, y: fixed-effects matrix and response (offset already subtracted).
    w: prior weights.
    """
    XY = np.column_stack([X, y])
    XYw = XY * w[:, None]
    K = len(reterms)
    A: list[list] = []
    for i, ti in enumerate(reterms):
        row = []
        for j in range(i):
            tj = reterms[j]
            row.append(_cross_block(ti.refs, ti.z, ti.nlevels, tj.refs, tj.z, tj.nlevels, w))
        row.append(_diag_block(ti.refs, ti.z, w, ti.nlevels))
        A.append(row)
    A.append([_fixed_re_block(t.refs, t.z, t.nlevels, XYw) for t in reterms] + [XY.T @ XYw])
    assert len(A) == K + 1
    return A
