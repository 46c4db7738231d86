"""``python -m glamm``: the same as the ``glamm`` command (see :mod:`glamm.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
