"""Data sets: each loader yields the two views (+ labels) as numpy arrays per split."""
