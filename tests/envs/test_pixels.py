"""Pixel observations (PixelObservation, make_pixel_env) and uint8 frame storage (FrameBuffer)."""

import gc

import numpy as np
import pytest
from conftest import gl_problem as _gl_problem

from mbrlax.data.frames import FrameBuffer, collect_random_frames
from mbrlax.envs import make_env
from mbrlax.envs.pixels import PixelObservation, make_pixel_env
from mbrlax.errors import ConfigError, DataError




needs_gl = pytest.mark.skipif("_gl_problem() is not None", reason="no offscreen OpenGL here")


@needs_gl
def test_observation_shape_dtype_and_state():
    env = make_pixel_env("cartpole-swingup", seed=0, size=32, frame_stack=3)
    obs, info = env.reset(seed=0)
    assert obs.shape == (32, 32, 9) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert info["state"].shape == (4,)
    assert obs.std() > 1.0, "the frame should not be blank"
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (32, 32, 9) and isinstance(reward, float) and info["state"].shape == (4,)
    env.close()


@needs_gl
def test_frame_stack_holds_the_last_frames_oldest_first():
    single = make_pixel_env("cartpole-swingup", size=32, frame_stack=1)
    stacked = make_pixel_env("cartpole-swingup", size=32, frame_stack=3)
    frames = [single.reset(seed=3)[0]]
    obs = stacked.reset(seed=3)[0]
    assert all((obs[..., 3 * i:3 * i + 3] == frames[0]).all() for i in range(3)), "reset fills every slot"
    for t, a in enumerate([3.0, 3.0, -3.0, 3.0]):
        frames.append(single.step(np.array([a]))[0])
        obs = stacked.step(np.array([a]))[0]
        want = np.concatenate([frames[max(t + 1 - lag, 0)] for lag in (2, 1, 0)], axis=-1)
        assert (obs == want).all()
    assert not (frames[-1] == frames[0]).all(), "the cart-pole should have moved"
    single.close()
    stacked.close()


@needs_gl
def test_action_repeat_sums_rewards_and_matches_the_plain_env():
    plain = make_env("cartpole-swingup")
    plain.reset(seed=5)
    env = make_pixel_env("cartpole-swingup", size=32, action_repeat=3)
    env.reset(seed=5)
    a = np.array([1.5])
    want = sum(plain.step(a)[1] for _ in range(3))
    _, reward, _, _, info = env.step(a)
    assert reward == pytest.approx(want) and info["repeats"] == 3
    np.testing.assert_array_equal(info["state"], plain.unwrapped._get_obs())
    env.close()


@needs_gl
def test_action_repeat_stops_on_termination():
    plain = make_env("InvertedPendulum-v5")
    plain.reset(seed=0)
    a = np.array([3.0])
    rewards = []
    while True:  # the plain env until it falls
        _, r, terminated, _, _ = plain.step(a)
        rewards.append(r)
        if terminated:
            break
    env = make_pixel_env("InvertedPendulum-v5", size=32, action_repeat=4)
    env.reset(seed=0)
    total, steps = 0.0, 0
    while True:
        _, r, terminated, _, info = env.step(a)
        total, steps = total + r, steps + info["repeats"]
        if terminated:
            break
    assert steps == len(rewards) and total == pytest.approx(sum(rewards))
    assert len(rewards) % 4 != 0 or info["repeats"] == 4  # the last action ran only until the fall
    env.close()


@needs_gl
def test_a_collected_env_does_not_blank_another():
    a = make_pixel_env("cartpole-swingup", size=32)
    b = make_pixel_env("cartpole-swingup", size=32)
    want = b.reset(seed=0)[0]
    del a
    gc.collect()
    assert (b.reset(seed=0)[0] == want).all() and want.std() > 1.0
    b.close()


@needs_gl
def test_wrong_frame_size_or_render_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="rgb_array"):
        PixelObservation(make_env("cartpole-swingup"), size=32)
    env = PixelObservation(make_env("cartpole-swingup", render_mode="rgb_array", width=48, height=48), size=32)
    with pytest.raises(ConfigError, match="expected"):
        env.reset(seed=0)
    env.close()


# ------------------------------------------------------------------------- FrameBuffer (no GL needed)
def _fill(buf: FrameBuffer, lengths, terminate_last=True):
    """Episodes of the given lengths; pixel value = 10 * episode + t, action = t, reward = episode."""
    for e, n in enumerate(lengths):
        buf.add_first(np.full(buf.frame_shape, 10 * e, np.uint8), np.array([e, 0.0]))
        for t in range(n):
            done = t == n - 1
            buf.add([t], e, np.full(buf.frame_shape, 10 * e + t + 1, np.uint8), done and terminate_last,
                    done and not terminate_last, np.array([e, t + 1.0]))


def test_sequences_never_cross_an_episode_end():
    buf = FrameBuffer(100, (2, 2, 3), act_dim=1, state_dim=2)
    _fill(buf, [3, 7, 1, 5])
    seq = buf.sample_sequences(256, 4, np.random.default_rng(0))
    pix = seq.frames[:, :, 0, 0, 0].astype(int)  # [B, 5]
    assert seq.frames.shape == (256, 5, 2, 2, 3) and seq.frames.dtype == np.uint8
    assert (np.diff(pix, axis=1) == 1).all(), "consecutive frames of one episode"
    assert (seq.states[:, :, 0] == seq.states[:, :1, 0]).all()
    assert set(seq.states[:, 0, 0].astype(int)) == {1, 3}, "only episodes 1 and 3 hold 4 steps"
    np.testing.assert_array_equal(seq.actions[..., 0], seq.states[:, :-1, 1])
    assert not seq.terminated[:, :-1].any()
    np.testing.assert_array_equal(buf.sequence_starts(7), [4])  # episode 1 starts at row 4, has 7 steps


def test_partial_sequences_stop_at_the_episode_end_and_mask_the_rest():
    buf = FrameBuffer(100, (2, 2, 3), act_dim=1, state_dim=2)
    _fill(buf, [2, 6])  # episode 0: rows 0-2 (2 steps, the last terminated); episode 1: rows 3-9
    assert buf.sequence_starts(4, partial=True).tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    seq = buf.sequences_at(np.array([1, 3, 7]), 4, partial=True)
    assert seq.valid.tolist() == [[True, False, False, False], [True] * 4, [True, True, False, False]]
    assert seq.frames[:, :, 0, 0, 0].tolist() == [[1, 2, 2, 2, 2], [10, 11, 12, 13, 14], [14, 15, 16, 16, 16]]
    assert seq.terminated.tolist() == [[True, False, False, False], [False] * 4, [False, True, False, False]]
    assert (seq.actions[~seq.valid] == 0).all() and (seq.rewards[~seq.valid] == 0).all()
    with pytest.raises(ConfigError, match="partial=True"):
        buf.sequences_at(np.array([2]), 4, partial=True)  # the last frame of episode 0 has no step
    with pytest.raises(ConfigError, match="sequence of 4 steps"):
        buf.sequences_at(np.array([1]), 4)


def test_ring_buffer_wraps_without_crossing_and_stacks_clamp_at_episode_start():
    buf = FrameBuffer(12, (1, 1, 3), act_dim=1, state_dim=2)
    _fill(buf, [4, 4, 4], terminate_last=False)  # 15 rows: the first 3 are overwritten
    assert len(buf) == 12
    for start in buf.sequence_starts(2):
        seq = buf.sequences_at(np.array([start]), 2, stack=3)
        ep = seq.states[0, :, 0]
        assert (ep == ep[0]).all()
        frames = seq.frames[0, :, 0, 0].astype(int)  # [3, 9]: per step, 3 stacked frames x 3 channels
        t = seq.states[0, :, 1].astype(int)
        for k in range(3):
            first_stored = 0 if ep[0] > 0 else 3  # episode 0 lost its first 3 rows
            want = [10 * ep[0] + max(t[k] - lag, first_stored) for lag in (2, 1, 0)]
            assert frames[k, ::3].tolist() == want


def test_frame_buffer_save_and_load_continue_as_the_original(tmp_path):
    """A wrapped buffer with an open episode, saved and loaded, samples the same sequences and takes
    the next steps exactly as the original; a corrupt file is a DataError naming it."""
    buf = FrameBuffer(12, (1, 1, 3), act_dim=1, state_dim=2)
    _fill(buf, [4, 4, 4], terminate_last=False)
    buf.add_first(np.full((1, 1, 3), 200, np.uint8), np.array([9.0, 0.0]))  # an open episode
    buf.save(tmp_path / "f.npz")
    loaded = FrameBuffer.load(tmp_path / "f.npz")
    for b in (buf, loaded):
        b.add([1.0], 2.0, np.full((1, 1, 3), 201, np.uint8), False, False, np.array([9.0, 1.0]))
    assert (len(loaded), loaded.total_added, loaded.capacity) == (len(buf), buf.total_added, 12)
    a, b = (x.sample_sequences(16, 2, np.random.default_rng(0), stack=2) for x in (buf, loaded))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        FrameBuffer.load(tmp_path / "bad.npz")
    data = (tmp_path / "f.npz").read_bytes()
    for i in range(0, len(data), 7):  # any damaged byte: the same buffer, or a DataError naming the file
        (tmp_path / "flip.npz").write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        try:
            FrameBuffer.load(tmp_path / "flip.npz")
        except DataError as e:
            assert "flip.npz" in str(e)


def test_frame_buffer_checks_and_memory():
    buf = FrameBuffer(1000, (64, 64, 3), act_dim=1, state_dim=4)
    assert 2**30 / (buf.nbytes / 1000) > 80_000  # frames per GiB, see the module doc
    with pytest.raises(ConfigError):
        buf.add([0.0], 0.0, np.zeros((64, 64, 3), np.uint8), False, False)  # no open episode
    with pytest.raises(ConfigError, match="uint8"):
        buf.add_first(np.zeros((64, 64, 9), np.uint8))
    _fill(FrameBuffer(10, (1, 1, 3), 1, 2), [2])
    with pytest.raises(ConfigError, match="sequence"):
        b = FrameBuffer(10, (1, 1, 3), 1, 2)
        _fill(b, [2])
        b.sequence_starts(3)


@needs_gl
def test_collect_random_frames_matches_the_wrapper():
    env = make_pixel_env("cartpole-swingup", seed=0, size=32, frame_stack=2, action_repeat=2)
    buf = FrameBuffer(300, (32, 32, 3), act_dim=1, state_dim=4)
    collect_random_frames(env, buf, 120, seed=0)  # one episode of 100 steps, then 20 more
    assert len(buf) == 122 and len(buf.sequence_starts(100)) == 1
    obs, info = env.reset(seed=0)  # the same first frame as the collection's reset
    np.testing.assert_array_equal(buf.stacked_frames(np.array([0]), 2)[0], obs)
    np.testing.assert_array_equal(buf.states_at(np.array([0]))[0], info["state"].astype(np.float32))
    env.close()
