"""Candidate -> metrics: tabular lookups, and sandboxed training of generated model code."""
