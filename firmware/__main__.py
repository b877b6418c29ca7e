# python -m firmware (CPython) / micropython -m firmware (unix port): run the
# agent; options in firmware/main.py USAGE.
from firmware.main import cli

cli()
