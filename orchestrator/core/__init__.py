"""Pure decisions and the nouns they work on: no Redis, no HTTP, no Celery, no kombu."""
