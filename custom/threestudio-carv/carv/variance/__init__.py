"""`carv variance`: per-draw gradient probe, ECM report and recommendation for pipeline runs (adapters).

Import the modules by path (carv.variance.report); they need the pipeline (Lightning, diffusers).
"""
