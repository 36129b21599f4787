"""`python -m synthdof ...`: the command line (see synthdof.cli)."""
from .cli import main

if __name__ == "__main__":  # guarded: Dask's spawned worker processes import this module too
    raise SystemExit(main())
