"""Evaluation: report labeler, report quality, bridges, dashboards."""
