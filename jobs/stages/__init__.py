"""The unit processors: what one work unit of each stage does (generate it, verify it), as plain classes a test calls without Ray."""
