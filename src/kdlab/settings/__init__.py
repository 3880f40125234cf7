"""Each protocol's declaration: its name, its settings (typed dataclasses whose fields carry
their help and their checks) and, for sweeps, its metrics and its teacher.

The command line, the docs and sweep files read these without running anything, so nothing
here imports torch when it is imported: the few checks that look at the data import it when
they run, once the data are loaded.
"""
