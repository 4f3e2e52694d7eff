// Package push delivers results and approval requests to the citizen's app:
// installations and preferences, private-by-default notifications, a
// transactional outbox drained by workers, and the providers (FCM, APNs,
// Web Push) beneath it, one package per provider.
package push
