"""Each protocol's declaration: its name, its help, its settings (typed dataclasses whose fields
carry their help and their checks, and which name their teacher's) and, for sweeps, its metrics
(typed: `metric.Metric`); the registry (`kdlab.protocols`) names each beside the protocol's module.

The command line, the docs and sweep files read these without running anything, so nothing
here imports torch when it is imported: the few checks that look at the data import it when
they run, once the data are loaded.
"""
