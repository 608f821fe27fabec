"""mbrlax: model-based reinforcement learning in JAX.

Data flows one way: envs -> data -> models -> planning -> agents -> algorithms -> cli.
"""

__version__ = "0.1.0"
