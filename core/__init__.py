"""The base every app builds on: errors, database helpers, parsing and batching.

It imports Django and DRF, never an app of this project.
"""
