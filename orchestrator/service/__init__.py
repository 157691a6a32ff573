"""Use cases shared by the CLI, the tasks and any other door: compose core, providers, store."""
