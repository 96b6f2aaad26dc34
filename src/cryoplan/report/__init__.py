"""The report: one self-contained HTML file (and a PDF on request) from a result directory."""

from cryoplan.report.html import write_report

__all__ = ["write_report"]
