"""Steering: edit generated reports with SAE feature directions."""
