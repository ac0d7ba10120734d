"""`python -m demtui` does what the `demtui` console script does (useful where scripts are not on PATH)."""

from demtui.cli import main

if __name__ == "__main__":
    main()
