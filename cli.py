"""Run the zoo's CLI from a checkout: ``python cli.py fit -c configs/linreg_synthetic.yaml``."""

from zoo.cli import main

if __name__ == "__main__":
    main()
