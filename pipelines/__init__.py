"""Pipelines that compose the feature store and the models: ingest, features, demo data, CLI."""
