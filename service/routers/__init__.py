"""One router per resource: scoring, segments, the model card, discoveries, events (and the
Stripe webhook), health and metrics, and the API documentation pages."""
