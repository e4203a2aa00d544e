"""End-to-end pipelines (the `reasonkd demo` main job)."""
