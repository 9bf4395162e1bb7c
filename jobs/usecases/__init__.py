"""The use cases: `troop run`, `sweep`, `generate`, `verify`, `metrics`, `report`, `status`, `submit`, each a function with typed arguments and a summary (`jobs.api` is their front door)."""
