"""The pure core: distributions in a flat parameter layout, the KL and PPD losses, λ schedules,
space checks, errors, and small helpers (files, optional extras, finiteness, seeds).

It imports nothing from the rest of ppdistill.
"""
