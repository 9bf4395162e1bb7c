"""The cluster layer: the Ray session, placement of actors, and the one executor that runs the stages' unit processors on them."""
