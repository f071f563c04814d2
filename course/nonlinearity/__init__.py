"""Helpers shared by the course notebooks: plots, widgets, data and visible checks."""
