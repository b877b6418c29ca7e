# `make bench`: runs every benchmarks/bench_*.py module in turn (or those
# named on the command line). Each prints its own figures and ratios.
import importlib
import os
import sys


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    names = sorted(n[:-3] for n in os.listdir(here) if n.startswith("bench_") and n.endswith(".py"))
    if argv:
        names = [n for n in names if n in argv or n[6:] in argv]
    for name in names:
        print("\n=== %s" % name, flush=True)
        importlib.import_module("benchmarks." + name).main()


if __name__ == "__main__":
    main(sys.argv[1:])
