"""``python -m mbrlax ...``: the same as the ``mbrlax`` command."""

from mbrlax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
