"""glamm.optim.kkt: the point a boundary fit is refitted from."""

import numpy as np

from glamm.optim.kkt import interior_restart_point


def test_interior_restart_point_moves_only_variances_on_their_bound():
    lower = np.array([0.0, -np.inf, 0.0, -np.inf, 0.0])
    x = np.array([0.0, 0.3, 0.5, -2.0, 1e-12])
    start = np.array([1.0, 0.0, 1.0, 0.0, 0.01])
    # theta is the first three entries: the last one is on a bound but not a variance
    on, trial = interior_restart_point(x, lower, 3, start, step=0.1)
    assert on.tolist() == [0]
    np.testing.assert_array_equal(trial, [1.0, 0.3, 0.5, -2.0, 1e-12])
    # all five as theta: a start below the step stays the step inside the bound
    on, trial = interior_restart_point(x, lower, 5, start, step=np.full(5, 0.1))
    assert on.tolist() == [0, 4]
    np.testing.assert_allclose(trial, [1.0, 0.3, 0.5, -2.0, 0.1])
    on, trial = interior_restart_point(np.array([0.2, 0.0]), np.zeros(2), 2, np.ones(2), 0.1)
    assert on.size == 1 and on[0] == 1
