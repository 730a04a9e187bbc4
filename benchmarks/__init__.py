"""Benchmarks: nnsave against raw Keras, joblib, pickle, skops, safetensors and the disk.

Run them with ``make bench`` (about twelve minutes on two cores) or
``make bench-quick`` (a few minutes); ``python -m benchmarks.run --help``
lists the options. The results land in ``benchmarks/results/`` as JSON, a
markdown table and a plot; the book's appendix, ``book/performance.ipynb``,
quotes their figures.
"""
