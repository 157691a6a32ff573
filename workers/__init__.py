"""The Celery edge: the app's configuration, thin tasks, and the producer API."""
