"""`python -m synthdof ...`: the command line (see synthdof.cli)."""

if __name__ == "__main__":  # guarded: Dask's spawned worker processes import this module too
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while the package loads: the same one line as later
        import sys
        print("synthdof: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(main())
