"""The built-in template library: one JSON file per template, shipped as package data."""
