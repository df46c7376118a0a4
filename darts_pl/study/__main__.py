"""``python -m darts_pl.study``: the ``darts-pl-study`` command."""
from darts_pl.study.cli import main

if __name__ == "__main__":
    main()
