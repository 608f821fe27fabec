"""Pixel pipeline speed and probe quality (issue 20): rendering, frame memory, encoder, latent rollout, probe R^2.

Run: ``.venv/bin/python benchmarks/pixels.py`` (a few minutes on 2 shared cores; ``--quick``: under a
minute, a smoke test whose numbers mean little). Prints tables and writes
``benchmarks/results/pixels.json`` (and ``pixels.png``, the probe R^2 per state dimension).

What is measured (every timing is stored with the load average at that moment and the CPU model):

1. **rendering**: frames/s of ``PixelObservation._render`` (``env.render`` into a 64x64 frame, the
   env stepped with a random action between frames, the step untimed) for cartpole-swingup,
   InvertedPendulum-v5 and HalfCheetah-v5, shadows (and reflections) on against off. "on" is
   ``make_env(..., fast_render=False)`` wrapped with ``PixelObservation(fast=False)``; "off" is
   ``make_pixel_env`` (model and scene flags off). The two settings are interleaved, ``--render-frames``
   frames per setting per repeat, the order alternating; the median over ``--repeats`` is reported.
2. **memory**: ``FrameBuffer(10_000, (s, s, 3), act_dim=1, state_dim=4).nbytes`` at 64x64 and 32x32,
   as frames per GiB.
3. **encoder / latent rollout**: ``jax.jit(LatentModel.encode)`` on a batch of 256 frame stacks
   (3 frames, the docstring's model: 4 convolutions of 32 channels, Z = 50) at 64x64 and at ``--size``;
   and ``jax.jit(LatentModel.rollout)`` of 1000 latents x 30 steps with uniform random actions (A = 1).
   Each is timed interleaved with the 2048^2 matmul (``common.interleaved``) and reported as FLOP/s
   divided by the matmul rate of the same repeat. FLOPs are counted from the layer shapes, 2 per
   multiply-add, biases, activations and the uint8 -> float scaling ignored:
   a convolution: ``2 * H_out * W_out * C_out * (4 * 4 * C_in)`` (SAME padding, stride 2, so
   H_out = H_in / 2); the encoder's linear map ``2 * flat * Z``; one latent step: the dynamics MLP
   ``(Z + A) -> 256 -> 256 -> Z`` plus the reward and termination MLPs ``(Z + A) -> 256 -> 256 -> 1``, each
   ``2 * sum(n_in * n_out)``.
4. **probe**: cart-pole swing-up seen at ``--size`` (the wide camera of ``tests/models/test_latent.py``,
   3 stacked frames, action repeat 2, episodes of 100 actions), ``--frames`` random-policy frames.
   The last 20% of the episodes (at most 20) are held out. A ridge probe (``probe_r2``) from the latent
   to (x, sin theta, cos theta, x_dot, theta_dot) is fitted on up to 4000 frames of the other episodes
   and scored on the held-out ones: the random encoder (model seed ``--seed``) against the same
   encoder after a ``self_predict`` fit of ``--steps`` Adam steps (batch 32, sequences of 8 steps) on
   the training episodes. Also the fit's seconds and the open-loop reward error (share of the reward
   variance) on held-out sequences.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (requests the host devices before JAX starts)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mbrlax.data.frames import FrameBuffer, collect_random_frames  # noqa: E402
from mbrlax.envs import make_env  # noqa: E402
from mbrlax.envs.pixels import PixelObservation, make_pixel_env  # noqa: E402
from mbrlax.models.latent import LatentModel, encode_frames, fit_latent, open_loop_reward_error, probe_r2  # noqa: E402

RENDER_ENVS = ("cartpole-swingup", "InvertedPendulum-v5", "HalfCheetah-v5")
WIDE = {"distance": 7.0, "lookat": np.array([0.0, 0.0, 0.2]), "elevation": -5.0, "azimuth": 90.0}
PROBE_NAMES = ("x", "sin", "cos", "x_dot", "theta_dot")
GIB = 1024 ** 3


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------- 1. rendering
def _render_env(env_id: str, shadows: bool, size: int = 64) -> PixelObservation:
    if shadows:
        env = make_env(env_id, 0, render_mode="rgb_array", width=size, height=size, fast_render=False)
        return PixelObservation(env, size=size, fast=False)
    return make_pixel_env(env_id, seed=0, size=size)


def _time_renders(env: PixelObservation, n: int, rng: np.random.Generator) -> float:
    """Seconds spent in n renders (the env stepped between them, untimed)."""
    total = 0.0
    low, high = env.action_space.low, env.action_space.high
    for _ in range(n):
        _, _, term, trunc, _ = env.env.step(rng.uniform(low, high).astype(np.float32))
        if term or trunc:
            env.env.reset()
        t0 = time.perf_counter()
        env._render()  # noqa: SLF001  (the wrapper's render: context current, then env.render)
        total += time.perf_counter() - t0
    return total


def bench_render(repeats: int, frames: int) -> list[dict]:
    out = []
    for env_id in RENDER_ENVS:
        envs = {True: _render_env(env_id, True), False: _render_env(env_id, False)}
        rng = np.random.default_rng(0)
        for e in envs.values():
            e.reset(seed=0)
            _time_renders(e, 3, rng)  # warm-up (first frames build GL objects)
        fps = {True: [], False: []}
        loads = []
        for r in range(repeats):
            for shadows in ((True, False) if r % 2 == 0 else (False, True)):
                fps[shadows].append(frames / _time_renders(envs[shadows], frames, rng))
            loads.append(load())
        for e in envs.values():
            e.close()
        row = {"env": env_id, "size": 64, "frames_per_repeat": frames, "repeats": repeats,
               "fps_shadows_on": statistics.median(fps[True]), "fps_shadows_off": statistics.median(fps[False]),
               "fps_on_all": fps[True], "fps_off_all": fps[False], "load_average": loads}
        row["speedup_off_vs_on"] = row["fps_shadows_off"] / row["fps_shadows_on"]
        out.append(row)
        print(f"  render {env_id}: on {row['fps_shadows_on']:.0f} fps, off {row['fps_shadows_off']:.0f} fps "
              f"(load {loads[-1]})", flush=True)
    return out


# ---------------------------------------------------------------------- 2. memory
def bench_memory() -> list[dict]:
    rows = []
    for size in (64, 32):
        buf = FrameBuffer(10_000, (size, size, 3), act_dim=1, state_dim=4)
        per_row = buf.nbytes / buf.capacity
        rows.append({"size": size, "rows": buf.capacity, "nbytes": buf.nbytes, "bytes_per_frame": per_row,
                     "frame_bytes": size * size * 3, "frames_per_gib": GIB / per_row})
    return rows


# ---------------------------------------------------------------------- 3. encoder and latent rollout
def encoder_flops(m: LatentModel) -> float:
    """FLOPs of encoding one frame stack (2 per multiply-add; see the module doc)."""
    flops, hw, c_in = 0.0, m.size, m.in_channels
    for c_out in m.channels:
        hw //= 2
        flops += 2.0 * hw * hw * c_out * 16 * c_in
        c_in = c_out
    return flops + 2.0 * hw * hw * c_in * m.latent_dim


def step_flops(m: LatentModel) -> float:
    """FLOPs of one latent step: dynamics MLP + reward MLP + termination MLP."""
    widths = [m.latent_dim + m.act_dim] + [m.hidden] * m.depth
    mlp = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 2.0 * (3 * mlp + m.hidden * m.latent_dim + 2 * m.hidden * 1)


def probe_model(size: int) -> LatentModel:
    return LatentModel(act_dim=1, size=size, frame_stack=3, latent_dim=50)


def bench_encoder(probe, size: int, repeats: int, batch: int = 256) -> dict:
    m = probe_model(size)
    params = m.init(jax.random.key(0))
    frames = jax.random.randint(jax.random.key(1), (batch, size, size, m.in_channels), 0, 256).astype(jnp.uint8)
    fn = jax.jit(m.encode)
    flops = batch * encoder_flops(m)
    r = common.interleaved(probe, fn, (params, frames), flops, repeats)
    r.update(size=size, batch=batch, flops_per_frame=encoder_flops(m), frames_per_s=batch / r["seconds"],
             load_average=load())
    return r


def bench_rollout(probe, repeats: int, n: int = 1000, horizon: int = 30) -> dict:
    m = probe_model(32)  # the latent step does not depend on the frame size
    params = m.init(jax.random.key(0))
    z0 = jax.random.normal(jax.random.key(1), (n, m.latent_dim))
    actions = jax.random.uniform(jax.random.key(2), (n, horizon, m.act_dim), minval=-1.0, maxval=1.0)

    @jax.jit
    def run(params, z0, actions):
        zs, rs, _ = m.rollout(params, z0, actions)
        return zs[:, -1].sum() + rs.sum()

    flops = n * horizon * step_flops(m)
    r = common.interleaved(probe, run, (params, z0, actions), flops, repeats)
    r.update(sequences=n, horizon=horizon, flops_per_step=step_flops(m), steps_per_s=n * horizon / r["seconds"],
             load_average=load())
    return r


# ---------------------------------------------------------------------- 4. probe
def probe_targets(states: np.ndarray) -> np.ndarray:
    return np.stack([states[:, 0], np.sin(states[:, 1]), np.cos(states[:, 1]), states[:, 2], states[:, 3]], 1)


def bench_probe(size: int, n_frames: int, steps: int, seed: int) -> dict:
    t0 = time.perf_counter()
    env = make_pixel_env("cartpole-swingup", seed=0, size=size, action_repeat=2, default_camera_config=WIDE,
                         max_episode_steps=200)
    buf = FrameBuffer(n_frames + 200, (size, size, 3), act_dim=1, state_dim=4)
    collect_random_frames(env, buf, n_frames, seed=0)
    env.close()
    collect_s = time.perf_counter() - t0
    collect_load = load()
    print(f"  collected {len(buf)} frames in {collect_s:.0f} s (load {collect_load})", flush=True)

    pos = np.arange(len(buf))
    ep = buf.episode_of(pos)
    length = 8
    episodes, counts = np.unique(ep, return_counts=True)
    episodes = episodes[counts > length]  # drops the unfinished last episode when it is short
    n_test = max(1, min(20, len(episodes) // 5))
    test_eps = episodes[-n_test:]
    is_test = np.isin(ep, test_eps)
    keep = np.isin(ep, episodes)
    train_pos, test_pos = pos[keep & ~is_test], pos[is_test]
    probe_train = train_pos[np.linspace(0, len(train_pos) - 1, min(4000, len(train_pos))).astype(int)]
    starts = buf.sequence_starts(length)
    fit_starts = starts[~np.isin(buf.episode_of(starts), test_eps)]
    held_starts = starts[np.isin(buf.episode_of(starts), test_eps)]

    model = probe_model(size)
    params = model.init(jax.random.key(seed))
    frames_tr, frames_te = buf.stacked_frames(probe_train, 3), buf.stacked_frames(test_pos, 3)
    s_tr, s_te = probe_targets(buf.states_at(probe_train)), probe_targets(buf.states_at(test_pos))

    def probe(p):
        return probe_r2(encode_frames(model, p, frames_tr), s_tr, encode_frames(model, p, frames_te), s_te)

    before = probe(params)
    load_before = load()
    t1 = time.perf_counter()
    fit = fit_latent(model, params, buf, jax.random.key(seed + 1), steps=steps, batch_size=32, length=length,
                     starts=fit_starts, progress=False, log_every=max(1, steps // 5))
    fit_s = time.perf_counter() - t1
    fit_load = load()
    after = probe(fit.params)
    reward_err = None
    if len(held_starts):
        seq = buf.sequences_at(held_starts, length, stack=3)
        err = open_loop_reward_error(model, fit.params, seq.frames, seq.actions, seq.rewards)
        reward_err = (err / max(float(seq.rewards.var()), 1e-12)).tolist()
    return {
        "env": "cartpole-swingup", "size": size, "frame_stack": 3, "action_repeat": 2, "episode_actions": 100,
        "frames": len(buf), "episodes": int(len(episodes)), "test_episodes": int(n_test),
        "probe_train_frames": int(len(probe_train)), "probe_test_frames": int(len(test_pos)),
        "collect_seconds": collect_s, "collect_load_average": collect_load,
        "model": {"latent_dim": model.latent_dim, "channels": list(model.channels), "hidden": model.hidden,
                  "objective": model.objective, "seed": seed},
        "fit": {"steps": steps, "batch_size": 32, "length": length, "seconds": fit_s, "load_average": fit_load,
                "history": fit.history},
        "targets": list(PROBE_NAMES),
        "r2_random": dict(zip(PROBE_NAMES, map(float, before))), "r2_random_mean": float(before.mean()),
        "r2_fit": dict(zip(PROBE_NAMES, map(float, after))), "r2_fit_mean": float(after.mean()),
        "random_probe_load_average": load_before,
        "open_loop_reward_error_share": reward_err,
    }


def plot(probe: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(PROBE_NAMES) + 1)
    names = [*PROBE_NAMES, "mean"]
    rnd = [probe["r2_random"][k] for k in PROBE_NAMES] + [probe["r2_random_mean"]]
    fit = [probe["r2_fit"][k] for k in PROBE_NAMES] + [probe["r2_fit_mean"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(x - 0.2, rnd, 0.4, label="random encoder")
    ax.bar(x + 0.2, fit, 0.4, label=f"self_predict, {probe['fit']['steps']} steps")
    ax.set_xticks(x, names)
    ax.set_ylabel("probe R^2 (held-out episodes)")
    ax.set_title(f"cart-pole {probe['size']}x{probe['size']}, {probe['frames']} frames")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000, help="random-policy cart-pole frames for the probe")
    ap.add_argument("--steps", type=int, default=300, help="self_predict fit steps")
    ap.add_argument("--size", type=int, default=32, help="frame size of the probe (multiple of 16)")
    ap.add_argument("--seed", type=int, default=0, help="model seed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--render-frames", type=int, default=40, help="frames per setting per repeat")
    ap.add_argument("--quick", action="store_true", help="a few hundred frames, 20 steps: checks the script runs")
    ap.add_argument("--out", default="pixels", help="results name (results/NAME.json and .png)")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.steps, args.repeats, args.render_frames = 400, 20, 2, 10
    t0 = time.time()
    cpu = cpu_model()
    print(f"CPU: {cpu}, {os.cpu_count()} cores, load {load()}", flush=True)

    render = bench_render(args.repeats, args.render_frames)
    memory = bench_memory()
    probe = common.MatmulProbe()
    encoders = [bench_encoder(probe, s, args.repeats) for s in dict.fromkeys((64, args.size))]
    roll = bench_rollout(probe, args.repeats)
    print("  encoder and rollout timed", flush=True)
    pr = bench_probe(args.size, args.frames, args.steps, args.seed)

    payload = {"machine": {**common.machine_info(), "cpu_model": cpu}, "args": vars(args), "render": render,
               "memory": memory, "encoder": encoders, "rollout": roll, "probe": pr,
               "seconds_total": time.time() - t0}
    path = common.save(f"{args.out}.json", payload)
    png = os.path.join(common.RESULTS_DIR, f"{args.out}.png")
    try:
        plot(pr, png)
    except Exception as e:  # noqa: BLE001  (the plot is optional)
        print(f"no plot: {e}")
        png = None

    common.print_table(f"rendering at 64x64 (frames/s, median of {args.repeats}; CPU {cpu})",
                       ["env", "shadows on", "shadows off", "off/on", "load"],
                       [[r["env"], f"{r['fps_shadows_on']:.0f}", f"{r['fps_shadows_off']:.0f}",
                         f"{r['speedup_off_vs_on']:.1f}x", r["load_average"][-1]] for r in render])
    common.print_table("FrameBuffer memory (1-D action, 4-D state)", ["size", "bytes/frame", "frames/GiB"],
                       [[f"{m['size']}x{m['size']}", f"{m['bytes_per_frame']:.0f}", f"{m['frames_per_gib']:,.0f}"]
                        for m in memory])
    rows = [["matmul 2048^2 (best mode)", common.fmt_rate(roll["matmul_flops_per_s"]), "", "", "", load()]]
    for e in encoders:
        rows.append([f"encode {e['size']}x{e['size']}x9, batch 256", common.fmt_rate(e["flops_per_s"]),
                     f"{e['fraction']:.1%}", f"{e['cpu_fraction']:.1%}", f"{e['frames_per_s']:,.0f} frames/s",
                     e["load_average"]])
    rows.append([f"latent rollout {roll['sequences']} x {roll['horizon']}", common.fmt_rate(roll["flops_per_s"]),
                 f"{roll['fraction']:.1%}", f"{roll['cpu_fraction']:.1%}",
                 f"{roll['steps_per_s'] / 1e3:,.0f}k steps/s", roll["load_average"]])
    common.print_table(f"encoder and latent rollout (interleaved with the matmul, {len(jax.devices())} devices)",
                       ["workload", "FLOP/s", "of matmul", "per CPU-s", "throughput", "load"], rows)
    prow = lambda name, r2, mean: [name, *(f"{r2[k]:.2f}" for k in PROBE_NAMES), f"{mean:.2f}"]  # noqa: E731
    common.print_table(
        f"probe R^2, cart-pole {pr['size']}x{pr['size']}, {pr['frames']} frames ({pr['probe_train_frames']} probe-train, "
        f"{pr['probe_test_frames']} held-out in {pr['test_episodes']} episodes)",
        ["encoder", *PROBE_NAMES, "mean"],
        [prow("random", pr["r2_random"], pr["r2_random_mean"]),
         prow(f"self_predict {pr['fit']['steps']} steps", pr["r2_fit"], pr["r2_fit_mean"])])
    err = pr["open_loop_reward_error_share"]
    print(f"fit: {pr['fit']['seconds']:.0f} s (load {pr['fit']['load_average']}); collecting the frames "
          f"{pr['collect_seconds']:.0f} s; open-loop reward error / variance, steps 1..8: "
          f"{', '.join(f'{x:.2f}' for x in err) if err else 'n/a'}")
    print(f"\ntotal {time.time() - t0:.0f} s, load {load()}; saved {path}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
