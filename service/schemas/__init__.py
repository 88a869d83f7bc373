"""Request and response schemas of the HTTP API, named by role (``ScoreRequest``, ``SegmentPublic``).

The assignment object itself is ``models.assignment.Assignment``, defined once for every output.
"""
