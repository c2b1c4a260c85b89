"""Network speed benchmark (issue #2): ``python benchmarks/network_speed.py [smaformer benchmark-network options]``.

Writes ``benchmark_network.json`` (or ``-o FILE``) and prints the figures; see the README.
"""
import sys

from nnunetv2_smaformer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["benchmark-network", *sys.argv[1:]]))
