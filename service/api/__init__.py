"""The HTTP edge: ``app.create_app`` wires settings, lifespan, deps, schemas, errors, metrics and routes.

Only this package imports FastAPI; everything below it (pipelines, runtime, seams) is plain Python.
"""
