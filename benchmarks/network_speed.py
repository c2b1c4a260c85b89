"""Network speed benchmark: ``python benchmarks/network_speed.py [smaformer benchmark-network options]``.

Writes ``benchmark_network.json`` (or ``-o FILE``) and prints the figures; pass
``--reference SMAFormerV2.py`` to time the authors' network in the same run (see the README).
"""
import sys

from nnunetv2_smaformer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["benchmark-network", *sys.argv[1:]]))
