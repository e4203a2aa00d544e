"""OpenAI-compatible HTTP server for a student (or a teacher endpoint)."""
