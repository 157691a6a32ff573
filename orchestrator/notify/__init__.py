"""Telling people and systems: subscriptions, event filters, Standard Webhooks signing,
Slack and PagerDuty formats, the delivery schedule, and safe HTTP targets. No Redis here
(that is `orchestrator.store.notify`); the loop is `orchestrator.service.notifier`."""
