"""The gradient planner solves a linear-quadratic problem to within 1% of the Riccati optimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.planning import GradientPlanner

DT, H = 0.1, 20
A_SYS = np.array([[1.0, DT], [0.0, 1.0]])  # double integrator
B_SYS = np.array([[0.0], [DT]])
Q, R, QF = np.eye(2), 0.1 * np.eye(1), 10.0 * np.eye(2)
X0 = np.array([1.0, -0.5])


def riccati_cost() -> float:
    """Optimal cost ``x0' P_0 x0`` from the backward Riccati recursion (NumPy, float64)."""
    P = QF
    for _ in range(H):
        K = np.linalg.solve(R + B_SYS.T @ P @ B_SYS, B_SYS.T @ P @ A_SYS)
        P = Q + A_SYS.T @ P @ A_SYS - A_SYS.T @ P @ B_SYS @ K
    return float(X0 @ P @ X0)


def rollout_cost(u: np.ndarray) -> float:
    """Cost of one control sequence ``u [H, 1]`` (NumPy, float64)."""
    x, cost = X0.copy(), 0.0
    for t in range(H):
        cost += x @ Q @ x + u[t] @ R @ u[t]
        x = A_SYS @ x + B_SYS @ u[t]
    return float(cost + x @ QF @ x)


def objective(key, u):
    """Returns (minus costs) of ``u [N, H, 1]``: ``[N]``."""
    del key
    a, b, q, r, qf = (jnp.asarray(m, jnp.float32) for m in (A_SYS, B_SYS, Q, R, QF))

    def step(x, ut):  # x [N, 2], ut [N, 1]
        c = jnp.einsum("ni,ij,nj->n", x, q, x) + jnp.einsum("ni,ij,nj->n", ut, r, ut)
        return x @ a.T + ut @ b.T, c

    x0 = jnp.broadcast_to(jnp.asarray(X0, jnp.float32), (u.shape[0], 2))
    x_final, costs = jax.lax.scan(step, x0, jnp.swapaxes(u, 0, 1))
    return -(costs.sum(0) + jnp.einsum("ni,ij,nj->n", x_final, qf, x_final))


def test_gradient_planner_matches_riccati():
    # loose bounds (|u*| < 1 here) so they do not bind
    planner = GradientPlanner(H, (-20.0,), (20.0,), candidates=4, steps=150)
    plan = jax.jit(lambda state, key: planner.plan(state, objective, key))
    actions, _, info = plan(planner.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    optimum = riccati_cost()
    cost = rollout_cost(np.asarray(actions, np.float64))
    assert np.max(np.abs(actions)) < 5.0
    assert cost <= 1.01 * optimum, (cost, optimum)
    assert cost >= optimum * (1 - 1e-4)  # sanity: nothing beats the Riccati optimum
    np.testing.assert_allclose(-float(info["best_return"]), cost, rtol=1e-4)
