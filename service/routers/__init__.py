"""One router per resource: scoring, segments, the model card, health and metrics."""
