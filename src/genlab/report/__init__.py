"""Self-contained HTML pages about runs (spec §9): one run's report, and a page comparing runs.

>>> from genlab.report import write_report, write_comparison
>>> write_report("runs/vae")                                        # doctest: +SKIP
PosixPath('runs/vae/report.html')
>>> write_comparison(["runs/ae", "runs/vae"], "runs/compare.html")  # doctest: +SKIP
PosixPath('runs/compare.html')

Every image is inlined as a base64 PNG and the pages load nothing from the network, so they open from disk in any
browser, on a laptop or a phone.
"""

from .compare import write_comparison
from .run import write_report

__all__ = ["write_comparison", "write_report"]
