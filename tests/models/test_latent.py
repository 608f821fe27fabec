"""The latent model: shapes, loss, the linear probe, and a short fit on cart-pole frames."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import gl_problem as _gl_problem

from mbrlax.data.frames import FrameBuffer, collect_random_frames
from mbrlax.errors import ConfigError
from mbrlax.models.latent import LatentModel, encode_frames, fit_latent, open_loop_reward_error, probe_r2


def test_shapes_of_encode_step_reward_and_decode():
    m = LatentModel(act_dim=2, size=16, frame_stack=2, latent_dim=8, channels=(4, 4, 4, 4), hidden=16,
                    objective="both")
    p = jax.eval_shape(m.init, jax.random.key(0))  # shapes only: no compute
    frames = jax.ShapeDtypeStruct((3, 5, 16, 16, 6), jnp.uint8)
    z = jax.eval_shape(m.encode, p, frames)
    a = jax.ShapeDtypeStruct((3, 5, 2), jnp.float32)
    assert z.shape == (3, 5, 8)
    assert jax.eval_shape(m.step, p, z, a).shape == (3, 5, 8)
    assert jax.eval_shape(m.reward, p, z, a).shape == (3, 5)
    assert jax.eval_shape(m.decode, p, z).shape == (3, 5, 16, 16, 6)
    zs, rs, ts = jax.eval_shape(m.rollout, p, jax.ShapeDtypeStruct((3, 8), jnp.float32),
                                jax.ShapeDtypeStruct((3, 4, 2), jnp.float32))
    assert zs.shape == (3, 4, 8) and rs.shape == (3, 4) and ts.shape == (3, 4)


def test_loss_parts_and_no_gradient_into_the_target_encoder():
    frames = jax.random.randint(jax.random.key(2), (2, 4, 16, 16, 3), 0, 256).astype(jnp.uint8)
    actions, rewards = jnp.ones((2, 3, 1)), jnp.ones((2, 3))
    settings = dict(act_dim=1, size=16, frame_stack=1, latent_dim=4, channels=(4, 4, 4, 4), hidden=8)
    both = LatentModel(**settings, objective="both")
    p = jax.eval_shape(both.init, jax.random.key(1))
    _, parts = jax.eval_shape(both.loss, p, p["encoder"], frames, actions, rewards)
    assert set(parts) == {"reward", "termination", "consistency", "reconstruction"}

    m = LatentModel(**settings)  # self_predict: the target encoder is where a gradient could leak
    p = m.init(jax.random.key(1))
    (loss, parts), (g_params, g_target) = jax.value_and_grad(m.loss, argnums=(0, 1), has_aux=True)(
        p, p["encoder"], frames, actions, rewards)
    assert set(parts) == {"reward", "termination", "consistency"} and np.isfinite(float(loss))
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g_target))
    assert float(jnp.abs(g_params["encoder"]["convs"][0]["w"]).max()) > 0.0
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g_params["reward_scale"]))


def test_the_termination_head_learns_which_step_ends_an_episode():
    """Cross-entropy on the ``terminated`` flags: a head fitted on sequences whose last step ends the
    episode after action +1 (and not after -1) puts that step's probability far above the others'."""
    m = LatentModel(act_dim=1, size=16, frame_stack=1, latent_dim=4, channels=(4, 4, 4, 4), hidden=16,
                    consistency_coef=0.0, reward_coef=0.0)
    p = m.init(jax.random.key(0))
    frames = jax.random.randint(jax.random.key(1), (8, 3, 16, 16, 3), 0, 256).astype(jnp.uint8)
    actions = jnp.stack([jnp.zeros((8, 1)), jnp.where(jnp.arange(8)[:, None] % 2 == 0, 1.0, -1.0)], axis=1)
    terminated = jnp.zeros((8, 2), bool).at[::2, 1].set(True)
    grad = jax.grad(lambda p: m.loss(p, p["encoder"], frames, actions, jnp.zeros((8, 2)), terminated)[0])
    descend = jax.jit(lambda p: jax.tree.map(lambda x, g: x - 0.05 * g, p, grad(p)))
    for _ in range(300):
        p = descend(p)
    _, _, logits = m.rollout(p, m.encode(p, frames[:, 0]), actions)
    prob = jax.nn.sigmoid(logits)
    assert float(prob[::2, 1].min()) > 0.8 and float(prob[1::2, 1].max()) < 0.2 and float(prob[:, 0].max()) < 0.2


def test_the_inverse_head_reads_the_action_from_two_frames():
    """``inverse_coef``: a head that predicts a_0 from the encodings of o_0 and o_1 learns it where only
    the pair tells it (o_1 is o_0 brightened by 60 a_0, o_0's brightness random), so the encoder must keep
    what the action changed; without the option there is no such head."""
    settings = dict(act_dim=1, size=16, frame_stack=1, latent_dim=8, channels=(4, 4, 4, 4), hidden=32,
                    consistency_coef=0.0, reward_coef=0.0, termination_coef=0.0)
    assert "inverse" not in LatentModel(**settings).init(jax.random.key(0))
    m = LatentModel(**settings, inverse_coef=1.0)
    p = m.init(jax.random.key(0))
    k1, k2 = jax.random.split(jax.random.key(1))
    a = jax.random.uniform(k1, (32, 1, 1), minval=-1.0, maxval=1.0)
    base = jax.random.uniform(k2, (32, 1, 1, 1), minval=70.0, maxval=185.0) * jnp.ones((32, 16, 16, 3))
    frames = jnp.stack([base, base + 60.0 * a[:, 0, :, None, None]], axis=1).astype(jnp.uint8)  # [32, 2, 16, 16, 3]
    loss = jax.jit(lambda p: m.loss(p, p["encoder"], frames, a, jnp.zeros((32, 1))))
    before = float(loss(p)[1]["inverse"])
    grad = jax.grad(lambda p: loss(p)[0])
    descend = jax.jit(lambda p: jax.tree.map(lambda x, g: x - 0.02 * g, p, grad(p)))
    for _ in range(300):
        p = descend(p)
    after = float(loss(p)[1]["inverse"])  # in units of the actions' variance: 1 is guessing the mean
    assert before > 0.5 and after < 0.1, (before, after)


def test_the_value_head_learns_the_discounted_steps_to_termination():
    """``value_coef``: TD(0) against an EMA target value (the training step's), on one-step sequences
    of a chain whose frame brightness counts the steps d left before a termination, reward 1 per
    step, gives V ~ (1 - gamma^d) / (1 - gamma); without the option there is no value head."""
    from mbrlax.models.latent import _optimiser, _update_step

    settings = dict(act_dim=1, size=16, frame_stack=1, latent_dim=8, channels=(4, 4, 4, 4), hidden=32,
                    consistency_coef=0.0, reward_coef=0.0, termination_coef=0.0, value_discount=0.9)
    assert "value" not in LatentModel(**settings).init(jax.random.key(0))
    m = LatentModel(**settings, value_coef=1.0)
    p = m.init(jax.random.key(0))
    d = np.tile(np.arange(1, 7), 6)  # [36] steps left
    frame = lambda n: (np.asarray(30 * n + 20, np.uint8)[:, None, None, None] * np.ones((1, 16, 16, 3), np.uint8))
    frames = jnp.asarray(np.stack([frame(d), frame(d - 1)], axis=1))  # [36, 2, 16, 16, 3]
    batch = (frames, jnp.zeros((36, 1, 1)), jnp.ones((36, 1)), jnp.asarray(d == 1)[:, None], jnp.ones((36, 1), bool))
    update = _update_step(m, 3e-3, 10.0, 0.1)
    truth = (1 - 0.9 ** np.arange(1, 7)) / 0.1
    value = jax.jit(lambda p: m.value(p, m.encode(p, frames[:6, 0])))
    before = np.abs(np.asarray(value(p)) - truth).max()
    target, opt_state = p["encoder"], _optimiser(3e-3, 10.0).init(p)
    for _ in range(600):
        p, target, opt_state, _ = update(p, target, opt_state, *batch)
    after = np.abs(np.asarray(value(p)) - truth).max()
    assert before > 1.0 and after < 0.3, (before, after, np.asarray(value(p)))


def test_decoded_open_loop_strip(tmp_path):
    """What the model imagines along the newest episode (the pixel loop's open_loop.png): one decoded
    frame per step, uint8, beside the real frames in a PNG."""
    from mbrlax.algorithms.latent_loop import _save_open_loop
    from mbrlax.models.latent import decode_open_loop

    m = LatentModel(act_dim=1, size=16, frame_stack=2, latent_dim=4, channels=(4, 4, 4, 4), hidden=8, objective="both")
    p = m.init(jax.random.key(0))
    frames = np.random.default_rng(0).integers(0, 256, (16, 16, 6)).astype(np.uint8)
    imagined = decode_open_loop(m, p, frames, np.zeros((5, 1), np.float32))
    assert imagined.shape == (6, 16, 16, 3) and imagined.dtype == np.uint8
    buf = FrameBuffer(50, (16, 16, 3), act_dim=1)
    for episode, steps in enumerate((6, 3)):  # the newest episode is shorter than the horizon: 3 steps shown
        buf.add_first(np.full((16, 16, 3), episode, np.uint8))
        for t in range(steps):
            buf.add([0.0], 0.0, np.full((16, 16, 3), t, np.uint8), False, t == steps - 1)
    _save_open_loop(m, p, buf, horizon=5, path=tmp_path / "open_loop.png")
    assert (tmp_path / "open_loop.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="decoder"):
        no_decoder = LatentModel(act_dim=1, size=16, frame_stack=2, latent_dim=4, channels=(4, 4, 4, 4), hidden=8)
        decode_open_loop(no_decoder, no_decoder.init(jax.random.key(0)), frames, np.zeros((5, 1), np.float32))


def test_config_errors():
    with pytest.raises(ConfigError, match="multiple of 16"):
        LatentModel(act_dim=1, size=40)
    with pytest.raises(ConfigError, match="objective"):
        LatentModel(act_dim=1, objective="contrastive")
    with pytest.raises(ConfigError, match="act_dim must be set"):
        LatentModel().init(jax.random.key(0))


def test_probe_r2_reads_linear_states_and_not_noise():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 10))
    s = np.stack([z[:, 0] - 2 * z[:, 3], rng.normal(size=600)], 1)
    r2 = probe_r2(z[:400], s[:400], z[400:], s[400:])
    assert r2[0] > 0.99 and r2[1] < 0.05




WIDE = {"distance": 7.0, "lookat": np.array([0.0, 0.0, 0.2]), "elevation": -5.0, "azimuth": 90.0}
"""A camera that sees the whole rail (|x| <= 2.5; the env's default view ends at |x| ~ 2)."""


def _cartpole_frames(steps: int) -> FrameBuffer:
    """Random-policy frames of short episodes (50 actions), so that the probe's two halves both see the cart
    at many positions: with whole 100-action episodes, a few episodes left the cart at one end of the rail."""
    from mbrlax.envs.pixels import make_pixel_env

    env = make_pixel_env("cartpole-swingup", seed=0, size=32, action_repeat=2, default_camera_config=WIDE,
                         max_episode_steps=100)
    buf = FrameBuffer(steps + 50, (32, 32, 3), act_dim=1, state_dim=4)
    collect_random_frames(env, buf, steps, seed=0)
    env.close()
    return buf


def _probe_targets(states: np.ndarray) -> np.ndarray:
    """Cart-pole state [x, theta, x_dot, theta_dot] -> [x, sin, cos, x_dot, theta_dot] (angles unwrapped)."""
    return np.stack([states[:, 0], np.sin(states[:, 1]), np.cos(states[:, 1]), states[:, 2], states[:, 3]], 1)


def probe_before_and_after(steps: int, seed: int = 0, frames: int = 600, latent_dim: int = 16,
                           objective: str = "self_predict", batch_size: int = 16):
    """Probe R^2 [5] of a random encoder and of the same one after ``steps`` of fit_latent.

    The model trains on the even episodes; the probe fits on the even episodes' frames and is
    scored on the odd ones'."""
    buf = _cartpole_frames(frames)
    pos = np.arange(len(buf))
    even = buf.episode_of(pos) % 2 == 0
    starts = buf.sequence_starts(4)
    starts = starts[buf.episode_of(starts) % 2 == 0]
    model = LatentModel(act_dim=1, size=32, frame_stack=2, latent_dim=latent_dim, channels=(16, 16, 16, 16),
                        hidden=128, objective=objective)
    params = model.init(jax.random.key(seed))
    z_frames, targets = buf.stacked_frames(pos, 2), _probe_targets(buf.states_at(pos))

    def probe(p):
        z = encode_frames(model, p, z_frames)
        return probe_r2(z[even], targets[even], z[~even], targets[~even])

    before = probe(params)
    fit = fit_latent(model, params, buf, jax.random.key(seed + 1), steps=steps, batch_size=batch_size, length=4,
                     starts=starts, progress=False)
    return before, probe(fit.params), fit, model, buf


@pytest.mark.skipif("_gl_problem() is not None", reason="no offscreen OpenGL here")
def test_a_short_fit_on_cartpole_frames_beats_a_random_encoder():
    before, after, fit, model, buf = probe_before_and_after(steps=STEPS)
    assert np.isfinite(fit.history[-1]["loss"]) and fit.history[-1]["step"] == STEPS
    assert after[0] > before[0] + MARGIN, (before.round(2), after.round(2))
    held_out = buf.sequence_starts(4)
    seq = buf.sequences_at(held_out[buf.episode_of(held_out) % 2 == 1], 4, stack=2)
    err = open_loop_reward_error(model, fit.params, seq.frames, seq.actions, seq.rewards)
    assert err.shape == (4,) and np.isfinite(err).all()


STEPS = 200
MARGIN = 0.1
"""Probe R^2 of the cart position x that a 200-step fit must add to the random encoder's. Measured
(model seeds 0, 1, 2, 3; load ~6): 0.18 -> 0.47, 0.15 -> 0.53, 0.13 -> 0.52, 0.20 -> 0.39. The
other targets (pole angle, velocities) are not asserted: after so short a fit on 300 frames their
R^2 moved by -0.2 .. +0.6 with the seed (the longer fits in mbrlax.models.latent's docstring lift
cos(theta)). With 100 steps one seed of four gained nothing on x."""
