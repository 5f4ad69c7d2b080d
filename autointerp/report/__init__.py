"""The autointerp report: per-latent examples with heatmap PNGs (``write_examples``, during
the pipeline) and a static HTML site built from the output folder alone (``write_report``)."""

from autointerp.report.examples import ExamplesConfig, write_examples
from autointerp.report.html import Column, ReportExtras, write_report

__all__ = ["Column", "ExamplesConfig", "ReportExtras", "write_examples", "write_report"]
