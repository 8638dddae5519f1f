"""The lab: data preparation, training and evaluation of the built-in engine.

Apart from the product by an import-linter contract (nothing in app, viewer, engines, explain imports lab)
and left out of the bundle by that same contract. The lab calls the product's public path (MedimPipeline)
so that what it measures is what the workstation runs.
"""
